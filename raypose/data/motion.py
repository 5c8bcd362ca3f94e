"""The synthetic people and their motions: a HumanEva-like body per person, forward kinematics on the
15-joint skeleton, and the gaits, boxing, gestures and throws that `raypose.data.synthetic` records
(its docstring says how they are made and why); COCO's face points as virtual points on the head.
"""
import numpy as np

from raypose.datasets.keypoints import COCO, DIRECT
from raypose.datasets.skeleton import NUM_JOINTS

# HumanEva-like template in metres, for a body size of 1.
_TEMPLATE = {
    "hip_w": 0.10, "hip_drop": 0.03, "thigh": 0.43, "shin": 0.42, "ankle_h": 0.08,
    "spine": 0.50, "sh_w": 0.18, "sh_drop": 0.02, "upper_arm": 0.28, "forearm": 0.25,
    "neck": 0.22,
}

# COCO's face points in the head's frame (forward, left, up), metres from the head joint (14),
# which the template puts ~0.22 m above the thorax: about the centre of the skull, level with the
# brows. Adult head: ~20 cm long, ~15 cm wide, eyes ~6.4 cm apart; the nose tip sticks out ~10 cm
# ahead of the centre and sits ~3.5 cm below the eyes; the ear canals lie a little behind the
# centre and below eye level. Rows: nose, left eye, right eye, left ear, right ear (COCO 0-4).
FACE_OFFSETS = np.array([
    [0.10, 0.0, -0.05],
    [0.08, 0.032, -0.015],
    [0.08, -0.032, -0.015],
    [-0.01, 0.075, -0.025],
    [-0.01, -0.075, -0.025],
])

_D = np.pi / 180.0


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _apply(R, v):
    """R (T,3,3) applied to a constant vector v (3,) -> (T,3)."""
    return R @ np.asarray(v, dtype=np.float64)


def _smooth_noise(rng, t, amp, fmin=0.15, fmax=0.9, n=3):
    """Band-limited noise: a sum of n random sinusoids with peak amplitude about `amp`."""
    f = rng.uniform(fmin, fmax, n)
    ph = rng.uniform(0, 2 * np.pi, n)
    a = rng.uniform(0.5, 1.0, n)
    a *= amp / a.sum()
    return (a[:, None] * np.sin(2 * np.pi * f[:, None] * t[None] + ph[:, None])).sum(0)


def _keyframes(u, knots, values):
    """Periodic cosine-eased interpolation of keyframes; u phase in [0, 1), knots start at 0."""
    knots = np.append(np.asarray(knots, dtype=np.float64), 1.0)
    values = np.append(np.asarray(values, dtype=np.float64), values[0])
    u = np.mod(u, 1.0)
    i = np.clip(np.searchsorted(knots, u, side="right") - 1, 0, len(knots) - 2)
    s = (u - knots[i]) / (knots[i + 1] - knots[i])
    w = 0.5 - 0.5 * np.cos(np.pi * s)
    return values[i] + w * (values[i + 1] - values[i])


def _jitter_knots(rng, knots, amount=0.025):
    k = np.asarray(knots, dtype=np.float64)
    k[1:] += rng.uniform(-amount, amount, len(k) - 1)
    return np.maximum.accumulate(np.clip(k, 0, 0.99))


def _bump(p, centre, width):
    """Periodic bump in phase p (radians): 1 at `centre`, ~exp(-d^2 / (2 width^2)) nearby."""
    return np.exp((np.cos(p - centre) - 1) / width ** 2)


def _softmin(a, b, k=0.01):
    m = np.minimum(a, b)
    return m - k * np.log(np.exp(-(a - m) / k) + np.exp(-(b - m) / k))


# ----------------------------------------------------------------------------- body and FK

def _body(seed, person_index, sizes=(0.95, 1.06, 0.99), left_handed=1, stream=101):
    """Bone offsets of one person: template x body size x per-bone proportions (left = right)."""
    rng = np.random.default_rng([seed, stream, person_index])
    size = sizes[person_index] + rng.uniform(-0.03, 0.03)
    body = {k: v * size * rng.uniform(0.95, 1.05) for k, v in _TEMPLATE.items()}
    style = {
        "walk_freq": rng.uniform(0.85, 1.0),     # gait cycles per second (two steps)
        "walk_stride": rng.uniform(1.25, 1.45) * size,  # metres per gait cycle
        "jog_freq": rng.uniform(1.3, 1.5),
        "jog_stride": rng.uniform(1.7, 2.0) * size,
        "arm_swing": rng.uniform(0.8, 1.2),
        "handed": 1 if person_index != left_handed else -1,  # HumanEva's S2 gestures and throws left-handed
    }
    return body, style


_DOFS = ("yaw", "pelvis_pitch", "pelvis_roll", "twist", "lean", "side", "neck",
         "hip_flex_l", "hip_flex_r", "hip_abd_l", "hip_abd_r", "knee_l", "knee_r",
         "sh_flex_l", "sh_flex_r", "sh_abd_l", "sh_abd_r", "sh_rot_l", "sh_rot_r",
         "elbow_l", "elbow_r")


def _forward_kinematics(body, root_xy, dof):
    """Joint positions (T, 15, 3) in world metres; the pelvis height is set by soft foot contact.

    Segment frames: x forward, y left, z up. Left-side abduction/rotation angles are mirrored
    for the right side, so positive abduction always moves a limb outwards.
    """
    T = len(root_xy)
    Rp = _rz(dof["yaw"]) @ _ry(dof["pelvis_pitch"]) @ _rx(dof["pelvis_roll"])
    Rt = Rp @ _rz(dof["twist"]) @ _ry(dof["lean"]) @ _rx(dof["side"])
    out = np.zeros((T, NUM_JOINTS, 3))
    thorax = _apply(Rt, [0, 0, body["spine"]])
    out[:, 1] = thorax
    out[:, 14] = thorax + _apply(Rt @ _ry(dof["neck"]), [0, 0, body["neck"]])
    for side, s, (sh, el, wr, hip, kn, an) in (("l", 1.0, (2, 3, 4, 8, 9, 10)),
                                               ("r", -1.0, (5, 6, 7, 11, 12, 13))):
        shoulder = thorax + _apply(Rt, [0, s * body["sh_w"], -body["sh_drop"]])
        R_up = (Rt @ _ry(-dof["sh_flex_" + side]) @ _rx(s * dof["sh_abd_" + side])
                @ _rz(s * dof["sh_rot_" + side]))
        elbow = shoulder + _apply(R_up, [0, 0, -body["upper_arm"]])
        wrist = elbow + _apply(R_up @ _ry(-dof["elbow_" + side]), [0, 0, -body["forearm"]])
        hip_p = _apply(Rp, [0, s * body["hip_w"], -body["hip_drop"]])
        R_th = Rp @ _ry(-dof["hip_flex_" + side]) @ _rx(s * dof["hip_abd_" + side])
        knee = hip_p + _apply(R_th, [0, 0, -body["thigh"]])
        ankle = knee + _apply(R_th @ _ry(dof["knee_" + side]), [0, 0, -body["shin"]])
        out[:, [sh, el, wr, hip, kn, an]] = np.stack([shoulder, elbow, wrist, hip_p, knee, ankle], 1)
    ground = _softmin(out[:, 10, 2], out[:, 13, 2])
    out[:, :, 2] += (body["ankle_h"] - ground + dof.get("lift", 0.0))[:, None]
    out[:, :, :2] += root_xy[:, None, :]
    return out


# ----------------------------------------------------------------------------- actions

def _base_dofs(rng, t, noise_deg=2.0):
    """Neutral standing pose plus mild smooth noise on every angle (radians)."""
    dof = {k: _smooth_noise(rng, t, noise_deg * _D) for k in _DOFS}
    for s in "lr":
        dof["hip_abd_" + s] += 4 * _D
        dof["knee_" + s] += 6 * _D
        dof["sh_abd_" + s] += 8 * _D
        dof["elbow_" + s] += 15 * _D
    return dof


def _ellipse_path(rng, t, speed, scale=1.0):
    """Root xy moving at constant speed along an ellipse around the origin; yaw = heading."""
    a, b = rng.uniform(1.15, 1.4) * scale, rng.uniform(1.05, 1.3) * scale
    tilt = rng.uniform(0, np.pi)
    centre = rng.uniform(-0.1, 0.1, 2)
    direction = rng.choice([-1.0, 1.0])
    th = np.linspace(0, 2 * np.pi, 2049)
    pts = np.stack([a * np.cos(th), b * np.sin(th)], -1)
    arc = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    s = np.mod(rng.uniform(0, arc[-1]) + direction * speed * t, arc[-1])
    theta = np.interp(s, arc, th)
    c, sn = np.cos(tilt), np.sin(tilt)
    rot = np.array([[c, -sn], [sn, c]])
    xy = np.stack([a * np.cos(theta), b * np.sin(theta)], -1) @ rot.T + centre
    tangent = direction * np.stack([-a * np.sin(theta), b * np.cos(theta)], -1) @ rot.T
    return xy, np.arctan2(tangent[:, 1], tangent[:, 0])


def _gait(rng, t, style, jog):
    freq = style["jog_freq" if jog else "walk_freq"] * rng.uniform(0.95, 1.05)
    stride = style["jog_stride" if jog else "walk_stride"] * rng.uniform(0.95, 1.05)
    amp = rng.uniform(0.9, 1.1)
    phi = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
    xy, heading = _ellipse_path(rng, t, stride * freq, style.get("loop_scale", 1.0))
    dof = _base_dofs(rng, t, 1.5)
    # Leg phase p: hip flexion peaks (heel strike) at p = pi/2, toe-off near p = -0.6; the knee
    # flexes most in early swing and a little in the loading response after heel strike.
    hip_amp, hip_off = (32, 12) if jog else (22, 8)
    knee_base, knee_swing, knee_load = (15, 80, 15) if jog else (0, 52, 12)
    swing_at = -0.25 if jog else -0.15
    for side, p in (("l", phi), ("r", phi + np.pi)):
        dof["hip_flex_" + side] += (hip_off + amp * hip_amp * np.sin(p)) * _D
        dof["knee_" + side] += (knee_base + amp * knee_swing * _bump(p, swing_at, 0.75)
                                + knee_load * _bump(p, 2.3, 0.4)) * _D
        swing = -style["arm_swing"] * amp * (30 if jog else 18) * np.sin(p)  # counter-swing
        dof["sh_flex_" + side] += (swing + (10 if jog else 2)) * _D
        dof["elbow_" + side] += ((70 if jog else 10) + (15 if jog else 8) * np.maximum(0, -np.sin(p))) * _D
    dof["yaw"] += heading + 5 * _D * np.sin(phi)
    dof["twist"] += -8 * _D * np.sin(phi)
    dof["pelvis_roll"] += 3 * _D * np.sin(2 * phi)
    dof["lean"] += (10 if jog else 4) * _D
    dof["lift"] = (0.045 * np.maximum(0, np.sin(2 * phi - 0.6)) ** 2) if jog else np.zeros_like(t)
    sway = (0.03 if not jog else 0.02) * np.sin(phi)
    xy = xy + sway[:, None] * np.stack([-np.sin(heading), np.cos(heading)], -1)
    return xy, dof


def _stationary_root(rng, t):
    r, ang = rng.uniform(0, 0.5), rng.uniform(0, 2 * np.pi)
    xy = np.array([r * np.cos(ang), r * np.sin(ang)])[None] + np.stack(
        [_smooth_noise(rng, t, 0.06, 0.1, 0.5), _smooth_noise(rng, t, 0.06, 0.1, 0.5)], -1)
    yaw = rng.uniform(-np.pi, np.pi) + _smooth_noise(rng, t, 12 * _D, 0.05, 0.3)
    return xy, yaw


def _box(rng, t, style):
    xy, yaw = _stationary_root(rng, t)
    dof = _base_dofs(rng, t, 2.0)
    dof["yaw"] += yaw
    u = t / rng.uniform(1.2, 1.8) + rng.uniform(0, 1)
    knots = _jitter_knots(rng, [0, 0.12, 0.25, 0.5, 0.62, 0.75])
    amp = rng.uniform(0.85, 1.1)
    # guard -> left jab -> guard (hold) -> right cross -> guard
    punch_l = _keyframes(u, knots, [0, 1, 0, 0, 0, 0]) * amp
    punch_r = _keyframes(u, knots, [0, 0, 0, 0, 1, 0]) * amp
    for side, p in (("l", punch_l), ("r", punch_r)):
        dof["sh_flex_" + side] += (45 + 40 * p) * _D
        dof["sh_abd_" + side] += (-22 + 15 * p) * _D   # elbows in front of the ribs
        dof["elbow_" + side] += (110 - 105 * p) * _D
    dof["twist"] += (-20 * punch_l + 22 * punch_r) * _D
    bounce = 4 * np.sin(2 * np.pi * rng.uniform(1.5, 2.2) * t)
    # staggered stance, left foot forward, knees bent
    dof["hip_flex_l"] += 24 * _D
    dof["hip_flex_r"] += 6 * _D
    for s in "lr":
        dof["hip_abd_" + s] += 3 * _D
        dof["hip_flex_" + s] += 0.5 * bounce * _D
        dof["knee_" + s] += (20 + bounce) * _D
    dof["lean"] += 8 * _D
    dof["neck"] += 8 * _D
    return xy, dof


def _gestures(rng, t, style):
    xy, yaw = _stationary_root(rng, t)
    dof = _base_dofs(rng, t, 1.5)
    dof["yaw"] += yaw
    arm, other = ("r", "l") if style["handed"] > 0 else ("l", "r")
    u = t / rng.uniform(3.5, 5.0) + rng.uniform(0, 1)
    knots = _jitter_knots(rng, [0, 0.18, 0.5, 0.65, 0.85], 0.03)
    amp = rng.uniform(0.85, 1.1)
    #                        rest  wave-up  wave  point  point
    flex = _keyframes(u, knots, [0, -15, -15, 80, 80]) * amp
    abd = _keyframes(u, knots, [0, 105, 105, 15, 15]) * amp
    rot = _keyframes(u, knots, [0, 90, 90, 0, 0])
    elbow = _keyframes(u, knots, [0, 55, 55, 0, 0]) * amp
    wave = _keyframes(u, knots, [0, 1, 1, 0, 0])
    elbow = elbow + wave * 28 * np.sin(2 * np.pi * rng.uniform(1.0, 1.6) * t)
    dof["sh_flex_" + arm] += flex * _D
    dof["sh_abd_" + arm] += abd * _D
    dof["sh_rot_" + arm] += rot * _D
    dof["elbow_" + arm] += elbow * _D
    dof["sh_flex_" + other] += (4 + 5 * np.sin(2 * np.pi * t / 3.0)) * _D
    dof["elbow_" + other] += 10 * _D
    dof["side"] += (3 * wave * (1 if arm == "l" else -1)) * _D
    dof["neck"] += 5 * _D
    return xy, dof


def _throw_catch(rng, t, style):
    xy, yaw = _stationary_root(rng, t)
    dof = _base_dofs(rng, t, 2.0)
    dof["yaw"] += yaw
    h = style["handed"]
    arm, other = ("r", "l") if h > 0 else ("l", "r")
    u = t / rng.uniform(1.8, 2.5) + rng.uniform(0, 1)
    knots = _jitter_knots(rng, [0, 0.15, 0.3, 0.5, 0.65, 0.8])
    amp = rng.uniform(0.85, 1.1)
    #                ready catch  in   wind   release follow
    a_flex = [40, 70, 30, 20, 100, 55]
    a_abd = [10, 10, 5, 85, 30, 5]
    a_rot = [0, 0, 0, 90, 30, 0]
    a_elb = [60, 25, 90, 110, 20, 25]
    o_flex = [40, 70, 30, 60, 30, 20]
    o_elb = [60, 25, 90, 20, 40, 40]
    twist = [0, 0, 0, -28, 25, 15]   # throwing shoulder back, then forward
    lean = [0, 5, 0, -5, 10, 15]
    step = [0, 0, 0, 5, 20, 15]      # the opposite leg steps forward during the throw
    k = lambda v: _keyframes(u, knots, v)
    dof["sh_flex_" + arm] += k(a_flex) * amp * _D
    dof["sh_abd_" + arm] += k(a_abd) * amp * _D
    dof["sh_rot_" + arm] += k(a_rot) * _D
    dof["elbow_" + arm] += k(a_elb) * amp * _D
    dof["sh_flex_" + other] += k(o_flex) * amp * _D
    dof["elbow_" + other] += k(o_elb) * _D
    dof["twist"] += h * k(twist) * amp * _D
    dof["lean"] += k(lean) * _D
    dof["hip_flex_" + other] += k(step) * _D
    dof["hip_flex_" + arm] += -0.3 * k(step) * _D
    dof["knee_" + other] += 0.5 * k(step) * _D
    return xy, dof


_MAKERS = {
    "Walking": lambda rng, t, st: _gait(rng, t, st, jog=False),
    "Jog": lambda rng, t, st: _gait(rng, t, st, jog=True),
    "Box": _box,
    "Gestures": _gestures,
    "ThrowCatch": _throw_catch,
}


# ----------------------------------------------------------------------------- COCO keypoints

def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def face_points(pos3d):
    """COCO's nose, eyes and ears (T, 5, 3) on the synthetic head: FACE_OFFSETS in the head's frame.

    The frame: up along the neck (thorax -> head, so the face pitches with lean and neck), left
    from the right to the left shoulder squared to it (the kinematics turn the head with the
    thorax, whose left axis the shoulders give exactly; the hips turn with the pelvis, not the
    head), forward = left x up.
    """
    x = np.asarray(pos3d, dtype=np.float64)
    up = _unit(x[:, 14] - x[:, 1])
    left = x[:, 2] - x[:, 5]
    left = _unit(left - (left * up).sum(-1, keepdims=True) * up)
    frame = np.stack([np.cross(left, up), left, up], -1)     # columns: forward, left, up
    return x[:, 14, None] + np.einsum("tij,kj->tki", frame, FACE_OFFSETS)


def coco_points(pos3d):
    """The 17 COCO keypoints (T, 17, 3) of a HumanEva pose (T, 15, 3): limbs as they are, face
    points from `face_points`."""
    x = np.asarray(pos3d, dtype=np.float64)
    out = np.empty((len(x), COCO.num_joints, 3))
    he, co = (list(j) for j in zip(*DIRECT))
    out[:, co] = x[:, he]
    out[:, :len(FACE_OFFSETS)] = face_points(x)
    return out


# ----------------------------------------------------------------------------- Human3.6M

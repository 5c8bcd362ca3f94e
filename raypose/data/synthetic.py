"""Synthetic HumanEva-like data in the VideoPose3D npz layout.

Why this exists: HumanEva-I is licensed and its npz files must never be copied into the repo, yet the
tests and the CPU demo have to exercise the real pipeline end to end. `generate` builds a small,
deterministic stand-in with exactly the layout of `data_2d_humaneva15_gt.npz` and
`data_3d_humaneva15.npz` (same subjects, action names with chunks, 3 cameras, 15 joints, world
metres with z up, 640x480 pixels), and `write_synthetic` writes it through `raypose.data.npz`, so
everything downstream (loading, splits, training, evaluation) runs through the same code path as
with the real files.

How it is made: forward kinematics on the 15-joint skeleton of `raypose.skeleton` with constant
bone lengths per person (a HumanEva-like template scaled by a body size of 0.9..1.1 and small
per-bone proportions). Each person (S1, S2, S3) has one body, shared by its Train/ and Validate/
keys as in the real data set; motions differ per key and chunk. Walking and Jog are periodic gaits
(hip/knee swing, counter-swinging arms, pelvis bob from a soft foot contact, pelvis sway and
twist) around an ellipse of ~1.05-1.4 m radii about the world origin (a larger loop would take the
feet out of the nearest camera's image), facing the direction of travel, jogging faster; Box is a
guard stance with alternating punches; Gestures raises one arm to wave, then points; ThrowCatch
catches with both arms and throws with one, twisting the torso.
Every chunk gets its own random phase, amplitudes, timing and a mild smooth (low-frequency)
noise on all joint angles, so no two sequences are equal.

Cameras: the HumanEva extrinsics of `raypose.cameras` (world -> camera) and, since HumanEva gives
no intrinsics, a fixed pinhole with focal length FOCAL_PX = 500 px and principal point (320, 240):
near the world origin (~4 m from each camera) a person is ~180-240 px tall from ankles to head,
40-50% of the 480 px image height, and the whole walking loop stays inside all three 640x480
views (about 10 px margin at worst, checked over 40 seeds). The 2D is the exact projection of the 3D
(like ground-truth 2D); `noise_px` adds Gaussian pixel noise.

Layouts: the 2D is HumanEva's 15 joints by default; `layout="coco"` gives the same people's 17
COCO keypoints instead (what a detector reports), with the face points (nose, eyes, ears) placed
as virtual 3D points on the head (`face_points`), so the COCO -> HumanEva mapping of
`raypose.keypoints` can be measured against the native 15 joints. The 3D stays HumanEva's 15.

Human3.6M: `layout="h36m"` writes VideoPose3D's data_3d_h36m.npz / data_2d_h36m_gt.npz instead
(`generate_h36m`): the same people (7 of them, S1...S11) and motions, 50 fps, the 17 H36M joints
derived from the 15 (`h36m_joints`) and stored in 32 slots (`embed_32`), projected into H36M's 4
cameras (raypose.h36m's published extrinsics and pinhole focal/centre; the table's lens distortion
is left out, so the 2D is an exact pinhole projection). The walking loops (0.8 x HumanEva's size)
go around H36M_CENTRE, near the world origin where the four views overlap, and stay inside all four
1000x1000 images (>= 60 px margin over 40 seeds; tests/test_synth_h36m.py checks 12).
"""
import os

import numpy as np

from .. import cameras, h36m
from ..errors import UserError
from ..keypoints import COCO, DIRECT, LAYOUTS
from ..skeleton import NUM_JOINTS
from . import npz

FOCAL_PX = 500.0
PRINCIPAL_POINT = (cameras.IMAGE_WIDTH / 2, cameras.IMAGE_HEIGHT / 2)
FPS = cameras.FPS
SUBJECTS = ("Train/S1", "Train/S2", "Train/S3", "Validate/S1", "Validate/S2", "Validate/S3")
ACTIONS = (("Walking", 2), ("Jog", 2), ("Box", 1), ("Gestures", 1), ("ThrowCatch", 1))
MIN_CHUNK_FRAMES = 40
# Relative share of the frame budget per chunk of each action (gaits get more, so that a walking
# chunk covers more than a metre even at the default size).
_ACTION_WEIGHT = {"Walking": 1.35, "Jog": 1.0, "Box": 0.85, "Gestures": 0.85, "ThrowCatch": 0.85}
_PERSONS = ("S1", "S2", "S3")

# What `write_synthetic` writes per dataset (2D, 3D): a directory holding only these (and other
# data_2d_<dataset>_*.npz) with a 2D marked synthetic is one that synth --overwrite may replace.
FILES = {"humaneva15": (npz.FILE_2D.format("gt"), npz.FILE_3D),
         "h36m": ("data_2d_h36m_gt.npz", "data_3d_h36m.npz")}
LAYOUT_NAMES = ("humaneva15", "coco", "h36m")   # the 2D layouts synth writes; "h36m" also means H36M's 3D

# Human3.6M stand-ins: (H36M action name, motion of `_MAKERS`), each in takes " 1" and " 2".
H36M_ACTIONS = (("Directions", "Gestures"), ("Posing", "Box"), ("Walking", "Walking"))
H36M_TAKES = (1, 2)
_H36M_SIZES = (0.97, 0.93, 1.03, 0.95, 1.06, 1.0, 1.04)   # body size of h36m.SUBJECTS, in order
_H36M_LEFT_HANDED = 3                                       # S7 waves and points with the left arm
# Where H36M's four views overlap: the walking loops (radii 0.92-1.12 m, 0.8 x HumanEva's) go around
# H36M_CENTRE (world metres; the cameras' optical axes pass within ~0.4 m of it), and so does everyone
# standing. A loop of HumanEva's size about the origin takes the feet out of cameras 3 and 4.
H36M_LOOP_SCALE = 0.8
H36M_CENTRE = (0.25, 0.6)
# H36M's neck (its "neck/nose") and head top on the line thorax -> synthetic head centre (the template
# puts that 0.22 m above the thorax, level with the brows): 0.11 m and ~0.32 m above the thorax.
NECK_FRACTION = 0.5
HEAD_TOP_FRACTION = 1.45

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


def _layout(layout):
    if layout not in LAYOUT_NAMES or (layout != "h36m" and layout not in LAYOUTS):
        raise UserError(f"synthetic data: layout={layout!r}; expected one of {', '.join(LAYOUT_NAMES)}")
    return LAYOUTS[layout]


def dataset_of(layout):
    """The dataset (a key of FILES) whose files a layout's synthetic data goes into."""
    return "h36m" if layout == "h36m" else "humaneva15"


def metadata(layout="humaneva15"):
    """The real file's metadata plus two synthetic-only keys; `layout` is the 2D's."""
    if layout == "h36m":   # VideoPose3D's num_joints and keypoints_symmetry, no single focal
        sk = h36m.SKELETON
        return {"layout_name": "h36m", "num_joints": sk.num_joints,
                "keypoints_symmetry": [list(sk.left), list(sk.right)], "synthetic": True}
    lay = _layout(layout)
    return {
        "layout_name": lay.name,
        "num_joints": lay.num_joints,
        "keypoints_symmetry": [list(lay.symmetry[0]), list(lay.symmetry[1])],
        "synthetic": True,
        "focal_px": FOCAL_PX,
    }


def project_to_camera(points_world, subject, cam_index):
    """World points (..., 3) in metres -> float32 pixels (..., 2) with the synthetic intrinsics."""
    return cameras.project(cameras.world_to_camera(points_world, subject, cam_index),
                           FOCAL_PX, PRINCIPAL_POINT)


# ----------------------------------------------------------------------------- small helpers

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

# The H36M joint each of HumanEva's limbs and trunk joints gives (None: built in `h36m_joints`).
_H36M_FROM_15 = (0, 11, 12, 13, 8, 9, 10, None, 1, None, None, 2, 3, 4, 5, 6, 7)


def h36m_joints(pos15):
    """H36M's 17 joints (T, 17, 3) of a synthetic HumanEva pose (T, 15, 3).

    Limbs, pelvis (H36M's hip) and thorax one to one; spine halfway from pelvis to thorax; neck and
    head top on the line from the thorax through the synthetic head centre (NECK_FRACTION,
    HEAD_TOP_FRACTION). Each is fixed in one rigid segment, so every H36M bone keeps its length.
    """
    x = np.asarray(pos15, dtype=np.float64)
    out = np.empty((len(x), h36m.SKELETON.num_joints, 3))
    kept = [j for j, src in enumerate(_H36M_FROM_15) if src is not None]
    out[:, kept] = x[:, [_H36M_FROM_15[j] for j in kept]]
    thorax, up = x[:, 1], x[:, 14] - x[:, 1]
    out[:, 7] = 0.5 * (x[:, 0] + thorax)
    out[:, 9] = thorax + NECK_FRACTION * up
    out[:, 10] = thorax + HEAD_TOP_FRACTION * up
    return out


def _slot_sources():
    """For each of the 32 slots, the index among the 17 of its nearest kept ancestor (itself if kept)."""
    out = []
    for j in range(len(h36m.PARENTS_32)):
        while j not in h36m.KEEP_32:
            j = h36m.PARENTS_32[j]
        out.append(h36m.KEEP_32.index(j))
    return out


def embed_32(pos17):
    """(T, 32, 3) as data_3d_h36m.npz holds it: the 17 in KEEP_32, each other slot a copy of its
    nearest kept ancestor (VideoPose3D drops those 15 anyway)."""
    return np.asarray(pos17)[:, _slot_sources()]


def project_h36m(points_world, subject, index):
    """World points (..., 3) metres -> float32 pixels (..., 2) in cameras.H36M_CAMERAS' camera: X_cam =
    R^T (X - t) as Camera.to_camera, but kept in float64 up to the pixels (to_camera's float32 camera
    coordinates would move them by ~1e-4 px), then a pinhole with the camera's focal and centre
    (VideoPose3D also applies the lens distortion; not here)."""
    cam = cameras.H36M_CAMERAS.get(subject, index)
    R, t = cameras.quaternion_to_matrix(cam.orientation), np.asarray(cam.translation, dtype=np.float64)
    return cameras.project((np.asarray(points_world, dtype=np.float64) - t) @ R, cam.focal, cam.centre)


def _h36m_plan(frames, seed):
    plan = [(subject, f"{name} {take}", kind)
            for subject in h36m.SUBJECTS for name, kind in H36M_ACTIONS for take in H36M_TAKES]
    return _lengths(plan, frames, np.random.default_rng([seed, 8]))


def generate_h36m(frames=3000, seed=0, noise_px=0.0):
    """Synthetic data in VideoPose3D's Human3.6M layout: (positions_2d, positions_3d, metadata) with
    positions_3d[subject][action] float32 (T, 32, 3) world metres (z up) and positions_2d[subject][action]
    = 4 float32 (T, 17, 2) pixel arrays (the KEEP_32 joints in the cameras of h36m.CAMERA_IDS)."""
    bodies = [_body(seed, i, _H36M_SIZES, _H36M_LEFT_HANDED, stream=103) for i in range(len(h36m.SUBJECTS))]
    for _, style in bodies:
        style["loop_scale"] = H36M_LOOP_SCALE
    noise_rng = np.random.default_rng([seed, 13])
    keep = list(h36m.KEEP_32)
    positions_2d, positions_3d = {}, {}
    for ci, (subject, action, kind, n) in enumerate(_h36m_plan(frames, seed)):
        body, style = bodies[h36m.SUBJECTS.index(subject)]
        rng = np.random.default_rng([seed, 31, ci])
        xy, dof = _MAKERS[kind](rng, np.arange(n) / h36m.FPS, style)
        pos3d = embed_32(h36m_joints(_forward_kinematics(body, xy + H36M_CENTRE, dof))).astype(np.float32)
        positions_3d.setdefault(subject, {})[action] = pos3d
        positions_2d.setdefault(subject, {})[action] = [
            _noisy(project_h36m(pos3d[:, keep], subject, c), noise_rng, noise_px)
            for c in range(len(h36m.CAMERA_IDS))]
    return positions_2d, positions_3d, metadata("h36m")


# ----------------------------------------------------------------------------- public API

def _chunk_plan(frames, seed):
    """[(subject, action name, kind, frames)] with lengths summing to about `frames`."""
    plan = [(subject, f"{name} 1 chunk{c}", name)
            for subject in SUBJECTS for name, n in ACTIONS for c in range(n)]
    return _lengths(plan, frames, np.random.default_rng([seed, 7]))


def _lengths(plan, frames, rng):
    """The plan's (subject, action, kind) with frame counts summing to about `frames`, by action weight."""
    w = np.array([_ACTION_WEIGHT[kind] for _, _, kind in plan]) * rng.uniform(0.85, 1.15, len(plan))
    lengths = np.maximum(MIN_CHUNK_FRAMES, np.round(frames * w / w.sum())).astype(int)
    return [(s, a, k, int(n)) for (s, a, k), n in zip(plan, lengths)]


def _noisy(kp, noise_rng, noise_px):
    if noise_px > 0:
        kp = (kp + noise_rng.normal(0, noise_px, kp.shape)).astype(np.float32)
    return kp


def generate(frames=3000, seed=0, noise_px=0.0, layout="humaneva15"):
    """Deterministic synthetic data set in the VideoPose3D HumanEva layout.

    Returns (positions_2d, positions_3d, metadata):
      positions_2d[subject][action] = [C1, C2, C3] float32 (T, 15, 2) pixels of a 640x480 image
        ((T, 17, 2) COCO keypoints with layout="coco"),
      positions_3d[subject][action] = float32 (T, 15, 3) world metres (z up), shared by the cameras,
      metadata = {'layout_name': 'humaneva15', 'num_joints': 15, 'keypoints_symmetry': [...],
                  'synthetic': True, 'focal_px': FOCAL_PX} (the 2D layout's name, count, symmetry).
    layout="h36m" gives Human3.6M's layout instead (see `generate_h36m`).
    `frames` is the approximate total number of 3D frames over all subjects and actions; every
    chunk has at least MIN_CHUNK_FRAMES frames, so totals below ~1700 come out larger.
    `noise_px` > 0 adds Gaussian noise (that standard deviation, pixels) to the 2D. The 3D and the
    2D of the joints both layouts share do not depend on `layout` (without noise).
    """
    meta = metadata(layout)   # checks the layout
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise UserError(f"synthetic data: frames={frames!r}, expected a positive integer")
    if not np.isfinite(noise_px) or noise_px < 0:
        raise UserError(f"synthetic data: noise_px={noise_px!r}, expected a finite value >= 0")
    if layout == "h36m":
        return generate_h36m(int(frames), seed, noise_px)
    bodies = [_body(seed, i) for i in range(len(_PERSONS))]
    noise_rng = np.random.default_rng([seed, 13])
    positions_2d, positions_3d = {}, {}
    for ci, (subject, action, kind, n) in enumerate(_chunk_plan(int(frames), seed)):
        body, style = bodies[_PERSONS.index(cameras.subject_base(subject))]
        rng = np.random.default_rng([seed, 29, ci])
        t = np.arange(n) / FPS
        xy, dof = _MAKERS[kind](rng, t, style)
        pos3d = _forward_kinematics(body, xy, dof).astype(np.float32)
        points = pos3d if layout == "humaneva15" else coco_points(pos3d)
        cams = [_noisy(project_to_camera(points, subject, c), noise_rng, noise_px)
                for c in range(len(cameras.CAMERA_NAMES))]
        positions_3d.setdefault(subject, {})[action] = pos3d
        positions_2d.setdefault(subject, {})[action] = cams
    return positions_2d, positions_3d, meta


def write_synthetic(out_dir, frames=3000, seed=0, noise_px=0.0, overwrite=False, layout="humaneva15"):
    """Write data_2d_humaneva15_gt.npz and data_3d_humaneva15.npz into out_dir (created).

    With layout="coco" the 2D file holds the same people's 17 COCO keypoints (exact projections,
    so still `gt`; its metadata names the layout), the 3D file is the same. With layout="h36m" the
    pair is data_2d_h36m_gt.npz and data_3d_h36m.npz (`generate_h36m`).

    out_dir is new, empty, or (with `overwrite`) a former synth output, whose pair is replaced
    (other data_2d_<dataset>_*.npz stay) and the other dataset's synthetic pair removed, so that the
    directory names one dataset. Both files are written in a temporary sibling directory first, then
    renamed in. Returns (path_2d, path_3d).
    """
    import shutil
    import tempfile

    from ..outputs import check_replaceable
    out_dir = os.fspath(out_dir)
    check_replaceable(out_dir, overwrite, kind="synthetic")
    positions_2d, positions_3d, meta = generate(frames, seed, noise_px, layout)   # checks the arguments
    names = FILES[dataset_of(layout)]
    parent, base = os.path.split(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=base + ".tmp-", dir=parent)
    try:
        npz.save_2d(os.path.join(tmp, names[0]), positions_2d, meta)
        npz.save_3d(os.path.join(tmp, names[1]), positions_3d)
        os.makedirs(out_dir, exist_ok=True)
        for name in names:
            os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
        for name in (n for pair in FILES.values() if pair != names for n in pair):
            if os.path.isfile(os.path.join(out_dir, name)):
                os.remove(os.path.join(out_dir, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tuple(os.path.join(out_dir, name) for name in names)


def is_synthetic_dir(path, names):
    """Whether the directory `path` (holding `names`) is only `write_synthetic`'s output: every name a
    data_2d_<dataset>_*.npz or data_3d_<dataset>.npz of FILES, and each dataset's 2D gt file present
    and marked synthetic (real files have the same names). raypose.outputs asks this for --overwrite."""
    import fnmatch
    used = set()
    for name in names:
        owner = [d for d, (_, f3d) in FILES.items()
                 if name == f3d or fnmatch.fnmatchcase(name, f"data_2d_{d}_*.npz")]
        if not owner or not os.path.isfile(os.path.join(path, name)):
            return False
        used.update(owner)
    for dataset in used:
        try:
            meta = npz.read_npz(os.path.join(path, FILES[dataset][0]), keys=("metadata",)).get("metadata")
        except UserError:
            return False
        if not (isinstance(meta, dict) and meta.get("synthetic") is True):
            return False
    return bool(used)

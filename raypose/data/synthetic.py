"""Synthetic HumanEva-like data in the VideoPose3D npz layout.

Why this exists: HumanEva-I is licensed and its npz files must never be copied into the repo, yet the
tests and the CPU demo have to exercise the real pipeline end to end. `generate` builds a small,
deterministic stand-in with exactly the layout of `data_2d_humaneva15_gt.npz` and
`data_3d_humaneva15.npz` (same subjects, action names with chunks, 3 cameras, 15 joints, world
metres with z up, 640x480 pixels), and `write_synthetic` writes it through `raypose.data.npz`, so
everything downstream (loading, splits, training, evaluation) runs through the same code path as
with the real files.

How it is made: forward kinematics on the 15-joint skeleton of `raypose.datasets.skeleton` with constant
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

Cameras: the HumanEva extrinsics of `raypose.datasets.cameras` (world -> camera) and, since HumanEva gives
no intrinsics, a fixed pinhole with focal length FOCAL_PX = 500 px and principal point (320, 240):
near the world origin (~4 m from each camera) a person is ~180-240 px tall from ankles to head,
40-50% of the 480 px image height, and the whole walking loop stays inside all three 640x480
views (about 10 px margin at worst, checked over 40 seeds). The 2D is the exact projection of the 3D
(like ground-truth 2D); `noise_px` adds Gaussian pixel noise.

Layouts: the 2D is HumanEva's 15 joints by default; `layout="coco"` gives the same people's 17
COCO keypoints instead (what a detector reports), with the face points (nose, eyes, ears) placed
as virtual 3D points on the head (`face_points`), so the COCO -> HumanEva mapping of
`raypose.datasets.keypoints` can be measured against the native 15 joints. The 3D stays HumanEva's 15.

Human3.6M: `layout="h36m"` writes VideoPose3D's data_3d_h36m.npz / data_2d_h36m_gt.npz instead
(`generate_h36m`): the same people (7 of them, S1...S11) and motions, 50 fps, the 17 H36M joints
derived from the 15 (`h36m_joints`) and stored in 32 slots (`embed_32`), projected into H36M's 4
cameras (raypose.datasets.h36m's published extrinsics and pinhole focal/centre; the table's lens distortion
is left out, so the 2D is an exact pinhole projection). The walking loops (0.8 x HumanEva's size)
go around H36M_CENTRE, near the world origin where the four views overlap, and stay inside all four
1000x1000 images (>= 60 px margin over 40 seeds; tests/test_synth_h36m.py checks 12).
"""
import os
import shutil

import numpy as np

from raypose.data import npz
from raypose.data.motion import _MAKERS, _body, _forward_kinematics, coco_points
from raypose.datasets import cameras, h36m
from raypose.datasets.keypoints import LAYOUTS
from raypose.datasets.skeleton import PARENTS
from raypose.errors import UserError

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


def min_frames(layout="humaneva15"):
    """The fewest frames synthetic data has: every chunk has at least MIN_CHUNK_FRAMES (1680 in both layouts)."""
    chunks = (len(h36m.SUBJECTS) * len(H36M_ACTIONS) * len(H36M_TAKES) if layout == "h36m"
              else len(SUBJECTS) * sum(n for _, n in ACTIONS))
    return MIN_CHUNK_FRAMES * chunks


def bytes_per_frame(layout="humaneva15"):
    """Bytes of one frame of synthetic data, in memory and in the npz files: float32 3D and every camera's 2D."""
    if layout == "h36m":
        return 4 * (3 * len(h36m.PARENTS_32) + 2 * len(h36m.CAMERA_IDS) * h36m.SKELETON.num_joints)
    return 4 * (3 * len(PARENTS) + 2 * len(cameras.CAMERA_NAMES) * _layout(layout).num_joints)


def check_size(frames, layout="humaneva15", folder=None):
    """Refuse, in one line, data that would not fit: twice its bytes in free memory (the arrays, and
    their copy while written), and once on the disk of `folder` where it is to be written."""
    need = max(int(frames), min_frames(layout)) * bytes_per_frame(layout)
    free = _free_memory()
    if free is not None and 2 * need > free:
        raise UserError(f"synthetic data: frames={frames} would take about {_size(2 * need)} of memory "
                        f"({bytes_per_frame(layout)} bytes a frame, twice while written), and {_size(free)} is "
                        "free; expected fewer frames (synth --frames, data.synthetic_frames)")
    if folder is not None:
        while not os.path.isdir(folder):
            folder = os.path.dirname(os.path.abspath(folder))
        disk = shutil.disk_usage(folder).free
        if need > disk:
            raise UserError(f"synthetic data: frames={frames} would take about {_size(need)} on disk, and "
                            f"{folder} has {_size(disk)} free; expected fewer frames (--frames)")


def _free_memory():
    """Bytes this process may still take: the system's available memory, less where a cgroup limit
    is lower; None where neither is known."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            found += [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            limit = f.read().strip()
            if limit != "max":
                found.append(int(limit) - int(g.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def _size(n):
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000


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
    check_size(frames, layout)
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
    import tempfile

    from raypose.outputs import check_replaceable
    out_dir = os.fspath(out_dir)
    check_replaceable(out_dir, overwrite, kind="synthetic")
    if isinstance(frames, (int, np.integer)) and not isinstance(frames, bool) and frames >= 1:
        check_size(frames, layout, out_dir)   # the disk too, before anything is made
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

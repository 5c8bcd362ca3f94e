"""What is known about a pose without its 3D: the camera's focal length, the 2D it projects to,
the subject's bone lengths; and poses made to agree with them.

A lifting network only estimates the x, y that its own 2D input pins down (given depth and the
focal length). Fitting its output back onto the input's rays removes that error, which pays
wherever the 2D is exact (ground truth, motion capture) and hurts where it is noisy (measured:
docs/method.md, "Fitting to the 2D"). The semi-supervised pseudo-labels use the same fits.
"""
import numpy as np

from raypose.datasets.skeleton import HUMANEVA, bone_lengths


def fit_to_2d(pose, keypoints, focal=None):
    """Poses corrected by the 2D they were predicted from, which the ensemble only estimates.

    With a focal length (normalised units, per frame or one for all): perspective. Per frame the
    translation (tx, ty, tz) that best reprojects the pose onto the keypoints (linear least
    squares), then x, y = keypoint * (z + tz) / f - (tx, ty): each joint lands on its ray, depth
    is kept. Without one: weak perspective (a scale and offset), which is off by the body's
    depth over its distance from the camera. Needs the 2D in the 3D skeleton's joint order.
    """
    q = np.asarray(keypoints, np.float32)
    out = pose.copy()
    if focal is None:
        xy = pose[..., :2]
        xy_m, q_m = xy.mean(1, keepdims=True), q.mean(1, keepdims=True)
        s = ((xy - xy_m) * (q - q_m)).sum((1, 2)) / np.maximum(((xy - xy_m) ** 2).sum((1, 2)), 1e-12)
        ok = s > 1e-6   # a degenerate or mirrored fit keeps the ensemble's guess
        out[ok, :, :2] = (q[ok] - q_m[ok]) / s[ok, None, None] + xy_m[ok]
    else:
        f = np.broadcast_to(np.asarray(focal, np.float64), (len(pose),))[:, None, None]
        t, _ = _translation(pose, q, f)
        depth = pose[..., 2] + t[:, :1]
        ok = (depth > 0.1).all(1)   # a solution behind the camera keeps the ensemble's guess
        out[ok, :, :2] = (q[ok] * depth[ok, :, None] / f[ok] - t[ok, None, 1:]).astype(out.dtype)
    return out - out[:, :1]


def trajectory(pose, keypoints, focal):
    """(N, 3) the root's position in camera coordinates (metres): per frame the translation that
    best reprojects the root-relative pose onto its 2D (normalised, principal point at the image
    centre) with focal length `focal` (normalised units, per frame or one for all). The scale of
    the pose sets the distance, so an error in the pose's size is one in depth (docs/usage.md)."""
    q = np.asarray(keypoints, np.float32)
    f = np.broadcast_to(np.asarray(focal, np.float64), (len(pose),))[:, None, None]
    t, _ = _translation(np.asarray(pose, np.float64), q, f)
    return np.stack([t[:, 1], t[:, 2], t[:, 0]], 1).astype(np.float32)   # (tx, ty, tz)


def _translation(pose, q, f):
    """Per frame (tz, tx, ty) minimising sum |q (z + tz) - f (xy + txy)|^2, and the 2D residual."""
    n, j = pose.shape[:2]
    a = np.zeros((n, j, 2, 3))
    a[..., 0] = q
    a[:, :, 0, 1] = a[:, :, 1, 2] = -f[..., 0]
    b = f * pose[..., :2] - q * pose[..., 2:3]
    a, b = a.reshape(n, 2 * j, 3), b.reshape(n, 2 * j)
    ata = np.einsum("nki,nkj->nij", a, a) + 1e-9 * np.eye(3)
    t = np.linalg.solve(ata, np.einsum("nki,nk->ni", a, b)[..., None])[..., 0]
    depth = np.maximum(pose[..., 2] + t[:, :1], 1e-3)
    proj = f * (pose[..., :2] + t[:, None, 1:]) / depth[..., None]
    return t, np.linalg.norm(proj - q, axis=-1).mean(1)


FOCAL_GRID = np.geomspace(0.2, 50, 25)   # normalised units: from fisheye to long telephoto
REFINE_ROUNDS = 4                          # each narrows the step 3x: 26% -> 0.3%


def fit_focal(pose, keypoints, grid=FOCAL_GRID):
    """The focal length (normalised units) that best reprojects known 3D onto its 2D.

    Root-relative 3D leaves each frame's translation free, so f is chosen by the median
    per-frame reprojection residual: the best point of a coarse log grid, then a few rounds of
    7 points within a step either side of the best so far.
    """
    q = np.asarray(keypoints, np.float64)
    pose = np.asarray(pose, np.float64)

    def cost(f):
        return float(np.median(_translation(pose, q, np.full((len(pose), 1, 1), f))[1]))
    best, step = min(grid, key=cost), grid[1] / grid[0]
    for _ in range(REFINE_ROUNDS):
        best = min(best * np.geomspace(1 / step, step, 7), key=cost)
        step **= 1 / 3
    return float(best)


ALL_CAMERAS = "*"
MIN_WINDOWS = 50   # fewer windows of a camera than this: it gets the fit over all cameras


def focal_table(targets, keypoints, labelled, cameras, sample=2000, seed=0):
    """{camera name: focal length}, each fitted on that camera's labelled windows, and under
    ALL_CAMERAS the fit over every labelled window, for cameras with too few."""
    rng = np.random.default_rng(seed)

    def fit(mask):
        idx = np.flatnonzero(mask)
        idx = rng.choice(idx, min(sample, len(idx)), replace=False)
        return fit_focal(targets[idx], keypoints[idx])
    table = {ALL_CAMERAS: fit(labelled)}
    for c in np.unique(cameras):
        mine = (cameras == c) & labelled
        if mine.sum() >= MIN_WINDOWS:
            table[str(c)] = fit(mine)
    return table


def window_focals(table, cameras):
    """(N,) each window's focal length from a focal_table, by its camera name."""
    return np.array([table.get(str(c), table[ALL_CAMERAS]) for c in cameras], np.float64)


def fit_windows(pose, windows, focals):
    """Each window's pose fitted onto its own 2D frame (`fit_to_2d`) with its camera's focal
    length from a focal_table; the pose as is where the 2D is not in the 3D skeleton's order
    (a different joint count: the run's 2D joints are its skeleton's only where the counts agree)."""
    if windows.inputs.shape[1] != pose.shape[1]:
        return pose
    return fit_to_2d(pose, windows.centre(), window_focals(focals, windows.key_per_target(2)))


def _parents(parents, joints, what):
    """The skeleton's parents as an array, checked against the poses' joint count."""
    parents = np.asarray(parents, dtype=int)
    if len(parents) != joints:
        raise ValueError(f"{what}: poses of {joints} joints for a skeleton of {len(parents)}")
    return parents


def subject_bones(targets, labelled, subjects, parents=HUMANEVA.parents):
    """(N, J - 1) each window's reference bone lengths on the skeleton of `parents` (the run's):
    the median over its subject's labelled windows, or over all labelled windows where the
    subject has none."""
    parents = _parents(parents, targets.shape[1], "subject_bones")
    lengths = bone_lengths(targets[labelled], parents)
    out = np.empty((len(labelled), len(parents) - 1), np.float32)
    out[:] = np.median(lengths, 0)
    for s in np.unique(subjects):
        mine = subjects[labelled] == s
        if mine.any():
            out[subjects == s] = np.median(lengths[mine], 0)
    return out


def fit_bones(pose, lengths, parents=HUMANEVA.parents):
    """Keep every bone's direction, give it the reference length, rebuild from the root, on the
    skeleton of `parents` (the run's; `subject_bones`' lengths).

    The ensemble's mean pose shrinks towards the mean pose and its bones with it; the subject's
    own bones undo that (measured on HumanEva: docs/method.md, semi-supervised ensembles).
    """
    parents = _parents(parents, pose.shape[1], "fit_bones")
    out = np.zeros_like(pose)
    for j in range(1, len(parents)):   # parents come before children (Skeleton's rule)
        d = pose[:, j] - pose[:, parents[j]]
        norm = np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-6)
        out[:, j] = out[:, parents[j]] + d / norm * lengths[:, j - 1:j]
    return out

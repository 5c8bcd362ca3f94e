"""Pseudo-labels from the ensemble for windows without 3D, gated by the ensemble's own spread.

schedule (the 2022 method): after `warmup` iterations, iteration i labels (j + 1) * K random
unlabelled windows with the ensemble mean, j = i - warmup, whatever the members think of them.

gated: label the windows on which the members agree, i.e. frame spread <= threshold_scale x the
median frame spread on the labelled windows, and weight each by tau^2 / (tau^2 + spread^2), so
the least sure count about half. Before use, each pseudo-label is made to agree with what is
known without 3D: its x, y are fitted to the window's own 2D through the camera's focal length,
itself fitted on labelled windows (`fit_to_2d`, `camera_focals`), and its bones get the
subject's lengths from the labelled chunks (`fit_bones`). The raw ensemble mean is shrunk
towards the mean pose; retrained on it, members shrink further, and pseudo-labels hurt
(measured: README, "Semi-supervised ensembles"). The two fits undo the shrinking, so the
labels can be remade every iteration as the members improve.
"""
import numpy as np

from .ensemble import aggregate, frame_spread, spread
from .skeleton import PARENTS


def due(cfg, iteration):
    """Whether pseudo-labels are (re)made after this iteration.

    The 2022 schedule relabels every iteration; gated does too unless `refresh` is off, which
    keeps the warm-up teacher's labels (the safer choice without the geometric fits).
    """
    if cfg.mode == "off" or iteration < cfg.warmup:
        return False
    return cfg.mode == "schedule" or cfg.refresh or iteration == cfg.warmup


def fit_to_2d(pose, keypoints, focal=None):
    """Pseudo-labels corrected by the 2D they were predicted from, which the ensemble only estimates.

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


FOCAL_GRID = np.geomspace(0.2, 50, 97)   # normalised units: from fisheye to long telephoto


def fit_focal(pose, keypoints, grid=FOCAL_GRID):
    """The focal length (normalised units) that best reprojects known 3D onto its 2D.

    Root-relative 3D leaves each frame's translation free, so f is chosen by the median
    per-frame reprojection residual over a log grid, refined once around the best point.
    """
    q = np.asarray(keypoints, np.float64)
    pose = np.asarray(pose, np.float64)

    def cost(f):
        return float(np.median(_translation(pose, q, np.full((len(pose), 1, 1), f))[1]))
    best = min(grid, key=cost)
    fine = best * np.geomspace(grid[0] / grid[1], grid[1] / grid[0], 21)
    return float(min(fine, key=cost))


def camera_focals(targets, keypoints, labelled, cameras, sample=2000, seed=0):
    """(N,) each window's focal length, fitted on the labelled windows of its camera name (all
    labelled windows where a camera has none)."""
    rng = np.random.default_rng(seed)

    def fit(mask):
        idx = np.flatnonzero(mask)
        idx = rng.choice(idx, min(sample, len(idx)), replace=False)
        return fit_focal(targets[idx], keypoints[idx])
    out = np.full(len(labelled), fit(labelled))
    for c in np.unique(cameras):
        mine = (cameras == c) & labelled
        if mine.sum() >= 50:
            out[cameras == c] = fit(mine)
    return out


def bone_lengths(pose):
    """(N, 14) lengths of the bones from each joint but the root to its parent."""
    return np.linalg.norm(pose[:, 1:] - pose[:, PARENTS[1:]], axis=-1)


def subject_bones(targets, labelled, subjects):
    """(N, 14) each window's reference bone lengths: the median over its subject's labelled
    windows, or over all labelled windows where the subject has none."""
    lengths = bone_lengths(targets[labelled])
    out = np.empty((len(labelled), len(PARENTS) - 1), np.float32)
    out[:] = np.median(lengths, 0)
    for s in np.unique(subjects):
        mine = subjects[labelled] == s
        if mine.any():
            out[subjects == s] = np.median(lengths[mine], 0)
    return out


def fit_bones(pose, lengths):
    """Keep every bone's direction, give it the reference length, rebuild from the root.

    The ensemble's mean pose shrinks towards the mean pose and its bones with it; the subject's
    own bones undo that (measured on HumanEva: see the README's semi notes).
    """
    out = np.zeros_like(pose)
    for j in range(1, len(PARENTS)):   # parents come before children in this order
        d = pose[:, j] - pose[:, PARENTS[j]]
        norm = np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-6)
        out[:, j] = out[:, PARENTS[j]] + d / norm * lengths[:, j - 1:j]
    return out


def select(cfg, iteration, preds, labelled, seed, keypoints=None, bones=None, focal=None):
    """Pseudo-labels for the next iteration.

    preds: (K, N, 15, 3) the members' predictions on every training window; labelled: (N,) bool.
    Returns (indices into the N windows, poses (k, 15, 3), weights (k,), info dict).
    """
    unl = np.flatnonzero(~labelled)
    empty = (np.zeros(0, np.int64), np.zeros((0, 15, 3), np.float32), np.zeros(0, np.float32))
    if cfg.mode == "off" or iteration < cfg.warmup or len(unl) == 0:
        return (*empty, {"mode": cfg.mode, "pseudo": 0})
    mean = aggregate(preds[:, unl], "mean")
    if cfg.mode == "schedule":
        count = min(len(unl), (iteration - cfg.warmup + 1) * cfg.per_iteration)
        pick = np.sort(np.random.default_rng([seed, iteration, 11]).choice(len(unl), count, replace=False))
        weights = np.ones(count, np.float32)
        info = {"mode": "schedule", "pseudo": int(count)}
    else:
        s_unl = frame_spread(spread(preds[:, unl], mean))
        s_lab = frame_spread(spread(preds[:, labelled]))
        tau = cfg.threshold_scale * float(np.median(s_lab))
        pick = np.flatnonzero(s_unl <= tau)
        weights = (tau ** 2 / (tau ** 2 + s_unl[pick] ** 2) if cfg.weighted
                   else np.ones(len(pick))).astype(np.float32)
        info = {"mode": "gated", "pseudo": len(pick), "threshold_mm": 1000 * tau,
                "median_spread_unlabelled_mm": 1000 * float(np.median(s_unl))}
        weights = cfg.pseudo_weight * weights
        if cfg.fit_2d and keypoints is not None:   # `mean` is this call's own array
            mean[pick] = fit_to_2d(mean[pick], np.asarray(keypoints)[unl[pick]],
                                   None if focal is None else focal[unl[pick]])
        if cfg.fit_bones and bones is not None:
            mean[pick] = fit_bones(mean[pick], bones[unl[pick]])
    return unl[pick], mean[pick].astype(np.float32), weights.astype(np.float32), info

"""Pseudo-labels from the ensemble for windows without 3D, gated by the ensemble's own spread.

schedule (the 2022 method): after `warmup` iterations, iteration i labels (j + 1) * K random
unlabelled windows with the ensemble mean, j = i - warmup, whatever the members think of them.

gated: label the windows on which the members agree, i.e. frame spread <= threshold_scale x the
median frame spread on the labelled windows, and weight each by tau^2 / (tau^2 + spread^2), so
the least sure count about half. Before use, each pseudo-label is made to agree with what is
known without 3D: its x, y are fitted to the window's own 2D (`fit_to_2d`) and its bones get the
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


def fit_to_2d(pose, keypoints):
    """Pseudo-labels corrected by the 2D they were predicted from, which the ensemble only estimates.

    Weak perspective: per frame the scale s and offset that best map the pose's x, y onto the
    2D keypoints (least squares, centroids aligned); x, y are then replaced by the keypoints
    mapped back, and depth is kept. Needs the 2D in the 3D skeleton's joint order.
    """
    xy, q = pose[..., :2], np.asarray(keypoints, np.float32)
    xy_m, q_m = xy.mean(1, keepdims=True), q.mean(1, keepdims=True)
    s = ((xy - xy_m) * (q - q_m)).sum((1, 2)) / np.maximum(((xy - xy_m) ** 2).sum((1, 2)), 1e-12)
    out = pose.copy()
    ok = s > 1e-6   # a degenerate or mirrored fit keeps the ensemble's guess
    out[ok, :, :2] = (q[ok] - q_m[ok]) / s[ok, None, None] + xy_m[ok]
    return out - out[:, :1]


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


def select(cfg, iteration, preds, labelled, seed, keypoints=None, bones=None):
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
        if cfg.fit_2d and keypoints is not None:
            mean = mean.copy()
            mean[pick] = fit_to_2d(mean[pick], np.asarray(keypoints)[unl[pick]])
        if cfg.fit_bones and bones is not None:
            mean = mean.copy()
            mean[pick] = fit_bones(mean[pick], bones[unl[pick]])
    return unl[pick], mean[pick].astype(np.float32), weights.astype(np.float32), info

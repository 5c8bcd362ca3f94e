"""Pseudo-labels from the ensemble for windows without 3D, gated by the ensemble's own spread.

schedule (the 2022 method): after `warmup` iterations, iteration i labels (j + 1) * K random
unlabelled windows with the ensemble mean, j = i - warmup, whatever the members think of them.

gated: label the windows on which the members agree, i.e. frame spread <= threshold_scale x the
median frame spread on the labelled windows, and weight each by tau^2 / (tau^2 + spread^2), so
the least sure count about half. Before use, each pseudo-label is made to agree with what is
known without 3D: its x, y are fitted to the window's own 2D through the camera's focal length,
itself fitted on labelled windows (`geometry.fit_to_2d`, `geometry.focal_table`), and its bones get the
subject's lengths from the labelled chunks (`geometry.fit_bones`). The raw ensemble mean is shrunk
towards the mean pose; retrained on it, members shrink further, and pseudo-labels hurt
(measured: docs/method.md, "Semi-supervised ensembles"). The two fits undo the shrinking, so the
labels can be remade every iteration as the members improve.
"""
import numpy as np

from raypose.datasets.skeleton import HUMANEVA
from raypose.ensemble.aggregate import aggregate, frame_spread, spread
from raypose.model.geometry import fit_bones, fit_to_2d


def due(cfg, iteration):
    """Whether pseudo-labels are (re)made after this iteration.

    The 2022 schedule relabels every iteration; gated does too unless `refresh` is off, which
    keeps the warm-up teacher's labels (the safer choice without the geometric fits).
    """
    if cfg.mode == "off" or iteration < cfg.warmup:
        return False
    return cfg.mode == "schedule" or cfg.refresh or iteration == cfg.warmup


def select(cfg, iteration, preds, labelled, seed, keypoints=None, bones=None, focal=None,
           parents=HUMANEVA.parents):
    """Pseudo-labels for the next iteration.

    preds: (K, N, J, 3) the members' predictions on every training window; labelled: (N,) bool;
    bones (N, J - 1) and `parents` (J,): the run's skeleton (`geometry.subject_bones`).
    Returns (indices into the N windows, poses (k, J, 3), weights (k,), info dict).
    """
    unl = np.flatnonzero(~labelled)
    empty = (np.zeros(0, np.int64), np.zeros((0, *preds.shape[2:]), np.float32), np.zeros(0, np.float32))
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
            mean[pick] = fit_bones(mean[pick], bones[unl[pick]], parents)
    return unl[pick], mean[pick].astype(np.float32), weights.astype(np.float32), info

"""Can an uncertainty be trusted? Coverage, calibration error, likelihood, ranking.

Radii should hold the true joint as often as they promise: coverage(q) against q (the
reliability diagram) and the quantile calibration error, mean |coverage(q) - q| over
q = 0.05 ... 0.95. A useful uncertainty also ranks joints by their error: Spearman's rho
between uncertainty and error, and the sparsification curve (mean error left after removing the
most uncertain fraction) against the oracle that removes by the error itself; AUSE is the area
between them. The root joint (0 on both sides, root-relative) is left out of every figure.
"""
import math

import numpy as np

FRACTIONS = np.linspace(0.0, 0.99, 100)
QCE_LEVELS = np.round(np.arange(0.05, 0.951, 0.05), 2)     # 19 levels, as the calibrated-flow papers


def _ranks(x):
    """Average ranks (ties share their mean rank), 0-based."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    sx = x[order]
    bounds = np.flatnonzero(np.diff(sx) != 0) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(x)]])
    for lo, hi in zip(starts, ends):
        if hi - lo > 1:
            ranks[order[lo:hi]] = (lo + hi - 1) / 2
    return ranks


def spearman(x, y):
    x, y = np.ravel(x), np.ravel(y)
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(np.corrcoef(_ranks(x), _ranks(y))[0, 1])


def spearman_per_joint(spread, error):
    """(J,) rho per joint over frames; nan where one side is constant (the root)."""
    return np.array([spearman(spread[:, j], error[:, j]) for j in range(spread.shape[1])])


def sparsification(uncertainty, error, fractions=FRACTIONS):
    """Mean error of what is left after removing the most uncertain fraction, and the oracle.

    Curves are in the error's units; AUSE is the mean gap between curve and oracle over the
    fractions (trapezoid), also given normalised by the error at fraction 0.
    """
    u, e = np.ravel(uncertainty), np.ravel(error)
    n = len(e)
    keep = np.maximum(1, np.round((1 - np.asarray(fractions)) * n).astype(int))

    def curve(order):
        csum = np.cumsum(e[order])
        return csum[keep - 1] / keep

    by_u = curve(np.argsort(u, kind="mergesort"))       # ascending: most uncertain removed first
    oracle = curve(np.argsort(e, kind="mergesort"))
    f = np.asarray(fractions)
    gap = by_u - oracle
    ause = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(f)) / max(f[-1] - f[0], 1e-12))
    return {"fractions": f.tolist(), "curve": by_u.tolist(), "oracle": oracle.tolist(),
            "random": float(e.mean()), "ause": ause, "ause_normalised": ause / max(float(e.mean()), 1e-12)}


def calibration_report(spread, error):
    """JSON-ready summary for per-joint spread and error (N, J) in metres; curves in mm."""
    spread, error = np.asarray(spread), np.asarray(error)
    per_joint = spearman_per_joint(spread, error)
    body = slice(1, None)  # the root is 0 on both sides
    fs, fe = spread[:, body].mean(1), error[:, body].mean(1)
    sp = sparsification(fs, 1000 * fe)
    return {
        "spearman_per_joint": [None if np.isnan(r) else float(r) for r in per_joint],
        "spearman": spearman(spread[:, body], error[:, body]),
        "spearman_frame": spearman(fs, fe),
        "sparsification": sp,
        "ause": sp["ause_normalised"],
        "ause_mm": sp["ause"],
    }


def coverage(radius, error):
    """(Q,) share of joint-frames (root left out) whose error is within radius[..., q]."""
    return (error[:, 1:, None] <= radius[:, 1:]).reshape(-1, radius.shape[-1]).mean(0)


def qce(levels, cover):
    """Quantile calibration error: mean |coverage(q) - q|."""
    return float(np.mean(np.abs(np.asarray(cover) - np.asarray(levels))))


def gaussian_nll(error, sd):
    """Mean negative log-likelihood of the true 3D joint (root left out) under an isotropic
    Gaussian of per-axis `sd` around the prediction; in millimetres, so lower is better and
    the numbers read as in the pose literature."""
    e, s = 1000 * error[:, 1:], np.maximum(1000 * sd[:, 1:], 1e-3)
    return float(np.mean(1.5 * np.log(2 * np.pi * s ** 2) + e ** 2 / (2 * s ** 2)))


_R = np.linspace(0.0, 12.0, 4801)
_MAXWELL_CDF = np.array([math.erf(r / math.sqrt(2)) - math.sqrt(2 / math.pi) * r * math.exp(-r * r / 2)
                         for r in _R])


def gaussian_radius(sd, quantiles):
    """(..., Q) the distance holding probability q of an isotropic 3D Gaussian of per-axis `sd`
    (the Maxwell distribution's quantiles): how a raw spread would be read as a radius."""
    return np.asarray(sd)[..., None] * np.interp(quantiles, _MAXWELL_CDF, _R)


def radius_report(radius, error, levels, quantiles, groups=None, sd=None):
    """JSON-ready figures for radii (N, J, L) at `levels` (QCE_LEVELS then the user's quantiles)
    against the error (N, J) in metres; per group (subject) too where `groups` (N,) is given."""
    cover = coverage(radius, error)
    nq = len(QCE_LEVELS)
    body_r, body_e = radius[:, 1:, nq], error[:, 1:]     # the first user quantile ranks joints
    sp = sparsification(body_r, 1000 * body_e)
    out = {"levels": [float(x) for x in levels], "coverage": cover.tolist(), "qce": qce(QCE_LEVELS, cover[:nq]),
           "quantiles": [float(q) for q in quantiles],
           "coverage_at": {f"{q:g}": float(c) for q, c in zip(quantiles, cover[nq:])},
           "mean_radius_mm": {f"{q:g}": float(1000 * radius[:, 1:, nq + i].mean()) for i, q in enumerate(quantiles)},
           "spearman": spearman(body_r, body_e), "ause": sp["ause_normalised"], "ause_mm": sp["ause"]}
    if sd is not None:
        out["nll"] = gaussian_nll(error, sd)
    if groups is not None:
        out["per_subject"] = {}
        for g in dict.fromkeys(groups):
            m = groups == g
            c = coverage(radius[m], error[m])
            out["per_subject"][str(g)] = {"qce": qce(QCE_LEVELS, c[:nq]),
                                          "coverage_at": {f"{q:g}": float(v) for q, v in zip(quantiles, c[nq:])}}
    return out

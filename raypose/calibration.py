"""Can the members' spread be trusted as an uncertainty? Rank correlation and sparsification.

A useful uncertainty ranks frames and joints by their error: Spearman's rho between spread and
error, and the sparsification curve (mean error left after removing the most uncertain
fraction) against the oracle that removes by the error itself. AUSE is the area between them.
"""
import numpy as np

FRACTIONS = np.linspace(0.0, 0.99, 100)


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

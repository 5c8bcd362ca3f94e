"""From members' predictions (K, N, J, 3) to the ensemble's pose and its spread. Numpy only.

Aggregation is per joint on root-relative poses, so members never disagree merely about where
the root is.
"""
import numpy as np

from raypose.errors import UserError

AGGREGATES = ("mean", "median", "trimmed", "geomedian", "weighted")
# ties the mean on a clean ensemble and shrugs off a broken member (docs/benchmarks.md, "ensemble")
DEFAULT_AGGREGATE = "weighted"


def _distances(preds, center):
    return np.linalg.norm(preds - center[None], axis=-1)           # (K, N, J)


def geometric_median(preds, iterations=30, eps=1e-7, tol=1e-6):
    """Per joint, the 3D point minimising the summed distance to the members (Weiszfeld).

    Starts from the coordinate-wise median; eps keeps a member that sits on the estimate from
    dividing by zero.
    """
    z = np.median(preds, axis=0)
    for _ in range(iterations):
        w = 1.0 / np.maximum(_distances(preds, z), eps)              # (K, N, J)
        z_new = (w[..., None] * preds).sum(0) / w.sum(0)[..., None]
        if np.max(np.abs(z_new - z)) < tol:   # a micrometre
            return z_new
        z = z_new
    return z


def trimmed_mean(preds, trim=None):
    """Mean of the members left after dropping the `trim` farthest from the median (per joint).

    trim defaults to ceil(0.2 K) for K >= 3 (one of five), none below three members.
    """
    k = len(preds)
    trim = (int(np.ceil(0.2 * k)) if k >= 3 else 0) if trim is None else trim
    if trim == 0:
        return preds.mean(0)
    d = _distances(preds, np.median(preds, axis=0))
    keep = np.argsort(d, axis=0, kind="stable")[: k - trim]          # (K - trim, N, J)
    return np.take_along_axis(preds, keep[..., None], axis=0).mean(0)


def agreement_weighted(preds):
    """Members weighted per joint by agreement with the others, never by test error.

    Cauchy weights w_k = 1 / (1 + (d_k / s)^2), d_k the distance to the coordinate-wise median
    and s = 3 x the median of the d_k (at least 1 mm): a member far outside the others' scatter
    gets a weight near zero, members inside it count nearly equally, so on a clean ensemble it
    stays close to the mean. Label-free, so usable at test time.
    """
    d = _distances(preds, np.median(preds, axis=0))
    s = np.maximum(3.0 * np.median(d, axis=0), 1e-3)
    w = 1.0 / (1.0 + (d / s) ** 2)
    return (w[..., None] * preds).sum(0) / w.sum(0)[..., None]


def check(method):
    """The aggregate's name (the default for None), or the user's one-line error."""
    method = method or DEFAULT_AGGREGATE
    if method not in AGGREGATES:
        raise UserError(f"--aggregate {method!r}: unknown, expected one of {', '.join(AGGREGATES)}")
    return method


def aggregate(preds, method=DEFAULT_AGGREGATE):
    """preds (K, N, J, 3) root-relative -> (N, J, 3), per joint."""
    method = check(method)
    preds = np.asarray(preds, dtype=np.float32)
    if method == "mean":
        return preds.mean(axis=0)
    if method == "median":
        return np.median(preds, axis=0)
    if method == "trimmed":
        return trimmed_mean(preds).astype(np.float32)
    if method == "geomedian":
        return geometric_median(preds).astype(np.float32)
    return agreement_weighted(preds).astype(np.float32)   # "weighted"


def spread(preds, center=None):
    """Per joint: root-mean-square distance of the members from the ensemble (metres), (N, J).

    The members' standard deviation in 3D; 0 for a single member.
    """
    preds = np.asarray(preds, dtype=np.float32)
    center = preds.mean(axis=0) if center is None else center
    return np.sqrt(np.mean(np.sum((preds - center) ** 2, axis=-1), axis=0))


def frame_spread(spread_nj):
    """Per-frame summary (N,) of a per-joint spread (N, J): mean over joints but the root."""
    return np.asarray(spread_nj)[..., 1:].mean(-1)

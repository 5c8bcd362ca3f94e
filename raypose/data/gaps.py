"""Missing and low-confidence joints in 2D detector tracks, filled from their neighbours in time.

Detectors drop joints (NaN) and guess at occluded ones (low confidence); the lifting networks need a
value at every joint-frame, so each gap is interpolated, marked, and its distance to a real
observation kept, so that callers can weigh or report what was made up.
"""
import numpy as np

from raypose.errors import UserError


def _observed(keypoints, confidence, threshold, where):
    """(T, J) True where a joint-frame is usable: finite coordinates and, if given, confidence >= threshold."""
    observed = np.isfinite(keypoints).all(axis=-1)
    if confidence is not None:
        confidence = np.asarray(confidence, dtype=np.float64)
        if confidence.shape != observed.shape:
            raise UserError(f"{where}: confidence has shape {confidence.shape}; "
                            f"expected {observed.shape} (frames, joints)")
        observed &= confidence >= threshold              # NaN compares False: missing
    return observed


def _neighbours(observed):
    """(T, J) frame of the last observation at or before each frame, and of the first at or after;
    -1 / T where there is none. Cumulative max/min keep this one pass over all joints at once."""
    t = observed.shape[0]
    frames = np.arange(t)[:, None]
    prev = np.maximum.accumulate(np.where(observed, frames, -1), axis=0)
    nxt = np.minimum.accumulate(np.where(observed, frames, t)[::-1], axis=0)[::-1]
    return prev, nxt


def fill_gaps(keypoints, confidence=None, threshold=0.3, where="track"):
    """Fill missing joint-frames of a (T, J, 2) track; return (filled float32, mask, distance).

    Missing: any non-finite coordinate, or `confidence` (T, J) below `threshold` (NaN included).
    Inside a gap a joint is linearly interpolated between its observations; before the first and
    after the last it holds the nearest one. A joint never observed gets the centre of the other
    joints in each frame and distance T, so it is told apart from any real gap (at most T - 1).
    `mask` is True where a value was filled; `distance` counts frames to the joint's nearest
    observation (0 where observed). The inputs are not modified.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
        raise UserError(f"{where}: keypoints have shape {keypoints.shape}; expected (frames, joints, 2)")
    if not 0.0 <= threshold <= 1.0:
        raise UserError(f"{where}: confidence threshold {threshold}; expected a number in [0, 1]")
    t, j = keypoints.shape[:2]
    observed = _observed(keypoints, confidence, threshold, where)
    if t == 0:
        return np.zeros((0, j, 2), np.float32), np.zeros((0, j), bool), np.zeros((0, j), np.int64)
    seen = observed.any(axis=0)
    if not seen.any():
        raise UserError(f"{where}: no usable keypoint (every joint missing or below confidence {threshold}); "
                        f"expected at least one detected joint")

    prev, nxt = _neighbours(observed)
    frames = np.arange(t)[:, None]
    has_prev, has_next = prev >= 0, nxt < t
    # Edges hold the one observation there is; between two, the weight of the later one.
    lo = np.where(has_prev, prev, nxt).clip(0, t - 1)
    hi = np.where(has_next, nxt, prev).clip(0, t - 1)
    span = hi - lo
    w = np.where(span > 0, (frames - lo) / np.maximum(span, 1), 0.0)[..., None]
    clean = np.where(observed[..., None], keypoints, 0.0)   # no inf or NaN reaches the arithmetic
    joints = np.arange(j)
    a, b = clean[lo, joints], clean[hi, joints]
    filled = np.where(observed[..., None], keypoints, a + w * (b - a))

    distance = np.minimum(np.where(has_prev, frames - prev, t), np.where(has_next, nxt - frames, t))
    if not seen.all():                                   # never observed: the body's centre, frame by frame
        filled[:, ~seen] = filled[:, seen].mean(axis=1, keepdims=True)
        distance[:, ~seen] = t
    return filled.astype(np.float32), ~observed, distance.astype(np.int64)


def gap_summary(mask, distance):
    """What was filled, for output metadata (plain Python numbers, JSON-ready)."""
    mask, distance = np.asarray(mask, bool), np.asarray(distance)
    t, j = mask.shape
    # Longest run of filled frames of any joint: run starts and ends from the edges of the padded mask.
    edges = np.diff(np.pad(mask, ((1, 1), (0, 0))).astype(np.int8), axis=0).T
    starts, ends = np.nonzero(edges == 1)[1], np.nonzero(edges == -1)[1]
    return {
        "filled_share": float(mask.mean()) if mask.size else 0.0,
        "longest_gap_frames": int((ends - starts).max()) if starts.size else 0,
        "frames_all_filled": int(mask.all(axis=1).sum()) if j else 0,
        "joints_never_observed": int((distance >= t).all(axis=0).sum()) if t else 0,
    }

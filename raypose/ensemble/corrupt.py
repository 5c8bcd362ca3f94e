"""What real 2D does to keypoints: noise, gross errors, left/right swaps, missed joints filled in
from their neighbours. Applied to windows.

Used to calibrate the uncertainty on inputs worse than ground truth (the training run) and to
test it under corruptions (`evaluate`, `scripts/bench_uncertainty.py`). Amounts are in pixels of
an image `width` wide (normalised units are px x 2 / width): the run's dataset's images
(`image_width`: Human3.6M's are 1000 wide, HumanEva's 640); every corruption is seeded.
"""
import dataclasses

import numpy as np

from raypose.data.gaps import fill_gaps
from raypose.datasets.cameras import IMAGE_WIDTH

# evaluate's corruptions: name -> (kind, parameters)
EVAL_CORRUPTIONS = {"gaussian 2px": ("gaussian", 2.0), "gaussian 6px": ("gaussian", 6.0),
                    "gaussian 10px": ("gaussian", 10.0), "detector-like": ("detector", None),
                    "gaps 10%": ("gaps", 0.1)}
GAP_FRAMES = (1, 45)      # a detector's misses: runs of 1 to 45 frames at the dataset's rate (3/4 s at 60 Hz,
                          # 0.9 s at 50 Hz), log-uniform
WHOLE_FRAME_SHARE = 0.2   # of the gaps, the share where the whole person is lost, not one joint


def image_width(layout):
    """Pixels across the images of a run's dataset (`Layout.dataset`), which pixel amounts are of:
    the widest camera's where they differ (Human3.6M's are all 1000), HumanEva's 640 where the
    layout names no image size."""
    sizes = (layout.dataset or {}).get("image_sizes") or {}
    return max((float(w) for w, _ in sizes.values()), default=IMAGE_WIDTH)


def _rows(windows):
    """(P,) the sequence index of every row of `windows.inputs` (sequences stored back to back)."""
    lengths = np.diff(windows.offsets) + windows.receptive_field - 1
    return np.repeat(np.arange(len(lengths)), lengths)


def _replace(windows, inputs, gaps=None):
    """The windows with corrupted inputs (and, where given, new gap distances (P, J)), padded
    again from the corrupted first and last frames (as `make_windows` pads a real noisy track),
    so padding never carries noise of its own."""
    pad = windows.receptive_field // 2
    lengths = np.diff(windows.offsets)
    seq = _rows(windows)
    first = np.repeat(windows.starts[windows.offsets[:-1]], lengths + 2 * pad)   # each row's sequence start
    at = np.arange(len(seq)) - first                                             # row within its sequence
    source = first + np.clip(at, pad, pad + lengths[seq] - 1)
    gaps = windows.gaps if gaps is None else np.asarray(gaps)[source]
    return dataclasses.replace(windows, inputs=inputs[source].astype(np.float32), gaps=gaps)


def gaussian(windows, sigma_px, seed=0, width=IMAGE_WIDTH):
    """White Gaussian noise of `sigma_px` (a number, or one per sequence) on every coordinate."""
    rng = np.random.default_rng(seed)
    sigma = np.broadcast_to(np.asarray(sigma_px, np.float64), (len(windows.keys),))[_rows(windows)]
    noise = rng.normal(0.0, 1.0, windows.inputs.shape) * (sigma * 2 / width)[:, None, None]
    return _replace(windows, windows.inputs + noise)


def gaussian_mixed(windows, low_px=1.0, high_px=15.0, seed=0, width=IMAGE_WIDTH):
    """Gaussian noise of a level drawn per sequence, log-uniform in [low, high] pixels."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.uniform(np.log(low_px), np.log(high_px), len(windows.keys)))
    return gaussian(windows, sigma, seed + 1, width)


def detector(windows, left, right, seed=0, width=IMAGE_WIDTH, jitter_px=2.0, outlier_rate=0.02,
             outlier_px=(20.0, 80.0), swap_rate=0.01, swap_frames=(1, 6)):
    """What a 2D detector does to ground truth: `jitter_px` of noise, a share `outlier_rate` of
    joint-frames thrown `outlier_px` away in a random direction, and left/right confusions
    (every symmetric pair swapped) starting at a share `swap_rate` of frames for 1-5 frames."""
    rng = np.random.default_rng(seed)
    x = np.array(windows.inputs, np.float64)
    p, j = x.shape[:2]
    unit = 2 / width
    x += rng.normal(0.0, jitter_px * unit, x.shape)
    hit = rng.random((p, j)) < outlier_rate
    angle = rng.uniform(0, 2 * np.pi, hit.sum())
    dist = rng.uniform(*outlier_px, hit.sum()) * unit
    x[hit] += np.stack([np.cos(angle), np.sin(angle)], -1) * dist[:, None]
    swapped = np.zeros(p, bool)
    for start in np.flatnonzero(rng.random(p) < swap_rate):
        swapped[start:start + rng.integers(*swap_frames)] = True
    left, right = list(left), list(right)
    x[np.ix_(swapped, left + right)] = x[np.ix_(swapped, right + left)]
    return _replace(windows, x)


def _gap_mask(rng, frames, joints, rate, gap_frames=GAP_FRAMES, whole=WHOLE_FRAME_SHARE):
    """(T, J) True for about `rate` of the joint-frames, lost in runs (`dropped`); one stays seen."""
    missing = np.zeros((frames, joints), bool)
    target = rate * frames * joints
    while (left := target - missing.sum()) > 0:
        length = int(np.exp(rng.uniform(np.log(gap_frames[0]), np.log(gap_frames[1] + 1))))
        start = rng.integers(0, frames)
        if rng.random() < whole:   # a run no longer than what is left to lose
            missing[start:start + max(1, min(length, int(left // joints))), :] = True
        else:
            missing[start:start + max(1, min(length, int(left))), rng.integers(0, joints)] = True
    if missing.all():
        missing[rng.integers(0, frames), rng.integers(0, joints)] = False
    return missing


def dropped(windows, rate, seed=0):
    """What a detector's misses leave after `gaps.fill_gaps` (as `predict` fills a user's track):
    a share `rate` (a number, or one per sequence) of joint-frames lost in runs of GAP_FRAMES,
    some whole frames, each filled from its neighbours in time; `windows.gaps` gets each joint-
    frame's distance to an observation (joints filled before count as observed)."""
    rng = np.random.default_rng(seed)
    rates = np.broadcast_to(np.asarray(rate, np.float64), (len(windows.keys),))
    x = np.array(windows.inputs, np.float64)
    gaps = np.zeros(x.shape[:2], np.int32)
    pad = windows.receptive_field // 2
    for s, (lo, hi) in enumerate(zip(windows.offsets[:-1], windows.offsets[1:])):
        first = windows.starts[lo] + pad   # the row of the sequence's first frame
        kp = x[first:first + hi - lo]
        kp[_gap_mask(rng, hi - lo, x.shape[1], rates[s])] = np.nan
        x[first:first + hi - lo], _, gaps[first:first + hi - lo] = fill_gaps(kp)
    return _replace(windows, x, gaps)


def apply(windows, kind, value, layout, seed=0, width=None):
    """One named corruption (`EVAL_CORRUPTIONS`' kinds) of `windows`, pixels of `width` (default:
    the layout's `image_width`)."""
    width = image_width(layout) if width is None else width
    if kind == "gaussian":
        return gaussian(windows, value, seed, width)
    if kind == "detector":
        return detector(windows, layout.left_2d, layout.right_2d, seed, width)
    if kind == "gaps":
        return dropped(windows, value, seed)
    raise ValueError(f"unknown corruption {kind!r}")

"""Error radii a user can act on: the members' spread and the 2D input's roughness, turned into
the distance within which the true joint lies with probability q.

The members' spread alone is in the wrong units (about a quarter of the error) and hardly grows
on bad 2D: members trained on the same clean 2D agree with each other on noisy input. So a
joint-frame's error scale is a log-linear function of
  - its joint (a per-joint intercept: wrists err more than hips),
  - the members' spread around the ensemble's pose,
  - how rough its 27-frame 2D window is (second differences: noise, gross errors and swaps
    make a 2D track jagged where a body moves smoothly at 60 Hz),
  - how far its 2D joint is from a real observation where a detector missed it and the gap was
    filled (`data.gaps`), and how much of its window was filled,
fitted on a calibration split the members never trained on, clean and corrupted (`corrupt.py`).
Then split conformal prediction: the q-quantile of error / scale on the clean calibration
joints scales every radius, which makes the radii cover q of the joints wherever the
calibration split is exchangeable with the input (docs/method.md, "Uncertainty").
"""
from dataclasses import dataclass, field

import numpy as np

from raypose.ensemble import corrupt
from raypose.ensemble.aggregate import DEFAULT_AGGREGATE, aggregate, spread

QUANTILES = (0.5, 0.9, 0.95)
GRID = np.round(np.linspace(0.0, 1.0, 201), 3)    # levels at which the score's quantiles are kept
FEATURES = ("log_spread", "log_spread_1s", "log_jitter", "log_worst_joint", "log_centre_worst", "log_gap",
            "gap_share")
GAP_FEATURES = ("log_gap", "gap_share")   # older calibrations lack them: they never saw filled 2D
GAP_CAP = 60           # frames: a joint's 2D this far from any observation says nothing more
SMOOTH = 30            # frames either side over which the spread is also averaged (1 s at 60 Hz)
SPREAD_FLOOR = 1e-3    # metres: a single member's spread (0) stays finite in log
ROUGH_FLOOR = 1e-3     # normalised units (0.3 px at 640 wide, 0.5 px at 1000)
ERROR_FLOOR = 1e-4     # metres
RIDGE = 1e-3
CENTRE = 2             # frames either side of the target for the local feature
RADIUS_BLOCK = 65536   # frames whose radii are computed at once (in float64, then stored as float32)


@dataclass
class Carry:
    """What the features of a sequence take over from the sequences windowed before it.

    `roughness` and `gap_features` difference cumulative sums that run through every sequence of a
    `Windows` back to back (and through the two rows that straddle each pair of neighbours), so a
    sequence windowed alone would get features a rounding apart from the same sequence windowed
    among others. Predict windows one track at a time; carried from track to track (`after`),
    these sums give it bit for bit the radii of the whole file windowed at once."""
    rough: np.ndarray = field(default_factory=lambda: np.zeros(2))   # roughness' sum so far
    gap: float = 0.0                                                  # gap share's sum so far
    tail: np.ndarray | None = None   # (2, J, 2) float64: the last two padded 2D rows before

    def _rows(self, windows):
        """(2D rows with the tail before them, float64; the windows' starts in those rows)."""
        x = windows.inputs.astype(np.float64)
        if self.tail is None:
            return x, windows.starts
        return np.concatenate([self.tail, x]), windows.starts + len(self.tail)

    def after(self, windows):
        """The Carry for the sequences that follow `windows`."""
        x, _ = self._rows(windows)
        rough = _cumsum(_row_roughness(x)[0], self.rough)[-1] if len(x) > 2 else self.rough
        gap = self.gap if windows.gaps is None else float(_cumsum(_gap_rows(windows.gaps), self.gap)[-1])
        return Carry(rough, gap, x[-2:].copy())


def _cumsum(rows, start):
    """[start, start + rows[0], ...]: the running sum from `start`, added in order, so that one
    carried over from earlier rows continues it exactly."""
    start = np.asarray(start, np.float64)
    return np.cumsum(np.concatenate([start.reshape(1, *rows.shape[1:]), rows]), 0)


def _row_roughness(x):
    """Per row of 2D (P, J, 2), row r centred on frame r + 1: (P - 2, 2) the median and the worst
    joint's 2D acceleration, and (P - 2, J) every joint's."""
    acc = np.linalg.norm(x[2:] - 2 * x[1:-1] + x[:-2], axis=-1)       # (P - 2, J)
    return np.stack([np.median(acc, 1), acc.max(1)], -1), acc


def _gap_rows(gaps):
    """(P,) per 2D row, the share of its joints that were filled in."""
    return (gaps > 0).mean(1)


def roughness(windows, carry=None):
    """(N, 3) per target: log of the window's typical and worst-joint 2D acceleration (mean over its
    frames of the median and the maximum over joints), and the worst joint's near the target.
    `carry`: from the sequences windowed before these (`Carry`)."""
    if windows.receptive_field < 3:   # no second difference inside a window
        return np.full((len(windows), 3), np.log(ROUGH_FLOOR))
    carry = carry or Carry()
    x, s = carry._rows(windows)
    per_row, acc = _row_roughness(x)                                    # (P - 2, 2), (P - 2, J)
    span = windows.receptive_field - 2                                  # rows centred inside the window
    csum = _cumsum(per_row, carry.rough)
    window_mean = (csum[s + span] - csum[s]) / span
    c = s + windows.receptive_field // 2 - 1                            # the target's own row
    worst = acc.max(1)
    near = np.max(np.stack([worst[np.clip(c + d, s, s + span - 1)] for d in range(-CENTRE, CENTRE + 1)]), 0)
    return np.log(ROUGH_FLOOR + np.column_stack([window_mean, near]))


def view_spread(views, center):
    """(N, J) RMS distance from `center` of every member's every view (K, V, N, J, 3): with flip
    averaging, twice the samples of the members' own spread, so a better-ranked uncertainty."""
    k, v = views.shape[:2]
    return spread(views.reshape(k * v, *views.shape[2:]), center)


def smoothed(x, offsets, k=SMOOTH):
    """(N, ...) the mean of x over the frames within k of each frame, within its own sequence."""
    out = np.empty(x.shape, np.float64)
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        c = np.cumsum(np.concatenate([np.zeros((1, *x.shape[1:])), x[lo:hi]]), 0)
        t = np.arange(hi - lo)
        a, b = np.maximum(t - k, 0), np.minimum(t + k + 1, hi - lo)
        out[lo:hi] = (c[b] - c[a]) / (b - a)[(...,) + (None,) * (x.ndim - 1)]
    return out


def gap_features(windows, joints, carry=None):
    """(N, J, 2) per joint-frame: log(1 + frames from its 2D joint to an observation) at the target
    (capped at GAP_CAP; the mean over 2D joints where the 2D joints are not the 3D skeleton's),
    and the share of the window's 2D joint-frames that were filled in. Zero without gaps."""
    n = len(windows)
    if windows.gaps is None:
        return np.zeros((n, joints, 2))
    d = np.log1p(np.minimum(windows.gaps, GAP_CAP).astype(np.float64))
    own = d[windows.starts + windows.receptive_field // 2]                   # (N, J2)
    own = own if own.shape[1] == joints else np.repeat(own.mean(1, keepdims=True), joints, 1)
    csum = _cumsum(_gap_rows(windows.gaps), 0.0 if carry is None else carry.gap)
    share = (csum[windows.starts + windows.receptive_field] - csum[windows.starts]) / windows.receptive_field
    return np.stack([own, np.broadcast_to(share[:, None], (n, joints))], -1)


def features(windows, spread_nj, carry=None):
    """(N, J, F) the scale model's inputs for every joint-frame, in FEATURES' order, from the
    windows' 2D (and gaps) and the view spread (`view_spread`) of each joint-frame; `carry` from
    the sequences windowed before these (`Carry`)."""
    n, j = spread_nj.shape
    rough = roughness(windows, carry)
    return np.concatenate([np.log(SPREAD_FLOOR + spread_nj)[..., None],
                           np.log(SPREAD_FLOOR + smoothed(spread_nj, windows.offsets))[..., None],
                           np.broadcast_to(rough[:, None, :], (n, j, rough.shape[1])),
                           gap_features(windows, j, carry)], -1)


def _design(feats, joints):
    """Rows (joint-frames but the root) of per-joint one-hots then features."""
    n, j, f = feats.shape
    onehot = np.broadcast_to(np.eye(j)[None, 1:, 1:], (n, j - 1, j - 1))
    return np.concatenate([onehot, feats[:, 1:]], -1).reshape(-1, j - 1 + f)


class Calibration:
    """A fitted scale model and the conformal quantiles of error / scale; JSON both ways."""

    def __init__(self, coef, score_quantiles, density_scale, info=None):
        self.coef = np.asarray(coef, np.float64)          # (J - 1) joint intercepts, then FEATURES
        self.score_quantiles = np.asarray(score_quantiles, np.float64)   # at GRID
        self.density_scale = float(density_scale)
        self.info = dict(info or {})
        self.fitted_on_gaps = True   # whether filled-in 2D was among what it was fitted on

    def to_dict(self):
        return {"method": "log-linear scale + split conformal", "features": list(FEATURES),
                "coef": self.coef.tolist(), "grid": GRID.tolist(), "score_quantiles": self.score_quantiles.tolist(),
                "density_scale": self.density_scale, **self.info}

    @classmethod
    def from_dict(cls, d):
        """The Calibration a record holds, or None where it was fitted on features this raypose
        does not compute (its coefficients would mean something else). One fitted on fewer
        (before GAP_FEATURES) is the same model with zero weight on the rest, and a range of 0
        for them, so filled 2D counts as beyond what it saw."""
        names = list(d.get("features", ()))
        if not names or not set(names) <= set(FEATURES):
            return None
        at = [FEATURES.index(f) for f in names]
        coef = np.asarray(d["coef"], np.float64)
        joints = len(coef) - len(names) + 1
        full = np.zeros(joints - 1 + len(FEATURES))
        full[:joints - 1], full[joints - 1 + np.array(at)] = coef[:joints - 1], coef[joints - 1:]
        info = {k: v for k, v in d.items() if k not in ("coef", "grid", "score_quantiles", "density_scale",
                                                         "method", "features")}
        if "feature_range" in info:
            rng = np.zeros((len(FEATURES), 2))
            rng[at] = np.asarray(info["feature_range"], np.float64)
            info["feature_range"] = rng.tolist()
        cal = cls(full, np.interp(GRID, d["grid"], d["score_quantiles"]), d["density_scale"], info)
        cal.fitted_on_gaps = set(GAP_FEATURES) <= set(names)
        return cal

    @property
    def joints(self):
        return len(self.coef) - len(FEATURES) + 1

    def scale(self, windows, spread_nj):
        """(N, J) each joint-frame's error scale in metres; 0 at the root."""
        return self.scale_of(features(windows, spread_nj))

    def scale_of(self, feats):
        """(N, J) the error scale for features (N, J, F) (`features`)."""
        n, j = feats.shape[:2]
        out = np.zeros((n, j))
        out[:, 1:] = np.exp(_design(feats, j) @ self.coef).reshape(n, j - 1)
        return out

    def factor(self, quantiles):
        """(Q,) radius / scale at each probability: the conformal quantiles of the scores."""
        return np.interp(np.asarray(quantiles, np.float64), GRID, self.score_quantiles)

    def radius(self, windows, spread_nj, quantiles=QUANTILES):
        """(N, J, Q) metres: the true joint lies within radius[..., i] of the predicted one
        (root-relative) with probability quantiles[i]."""
        return self.radius_of(self.scale(windows, spread_nj), quantiles)

    def radius_of(self, scale, quantiles=QUANTILES):
        """`radius` from scales (N, J) already computed (`scale`)."""
        factor = self.factor(quantiles)
        out = np.empty((*scale.shape, len(factor)), np.float32)
        for lo in range(0, len(scale), RADIUS_BLOCK):   # not a float64 copy of every radius on the way
            out[lo:lo + RADIUS_BLOCK] = scale[lo:lo + RADIUS_BLOCK, ..., None] * factor
        return out

    def outside(self, windows, spread_nj):
        """(S,) per sequence of `windows`, the share of joint-frames (root left out) with a feature
        beyond what calibration saw (its 99.9th percentile): there the radii extrapolate."""
        if not self.info.get("feature_range"):
            return np.zeros(len(windows.keys))
        return self.outside_of(features(windows, spread_nj), windows.offsets)

    def outside_of(self, feats, offsets):
        """`outside` from features (N, J, F) already computed (`features`), per sequence of `offsets`."""
        rng = self.info.get("feature_range")
        if not rng:
            return np.zeros(len(offsets) - 1)
        beyond = np.any(feats[:, 1:] > np.asarray(rng)[:, 1], axis=-1).mean(1)
        return np.array([beyond[lo:hi].mean() for lo, hi in zip(offsets[:-1], offsets[1:])])

    def mismatch(self, method, tta):
        """Why radii computed around this aggregate with this flip setting are not the calibrated
        ones (an empty list where they are)."""
        why = []
        if method != self.info.get("aggregate", method):
            why.append(f"calibrated for the {self.info['aggregate']} aggregate, predicted with {method}")
        if tta != self.info.get("tta", tta):
            why.append(f"calibrated with flip averaging {'on' if self.info['tta'] else 'off'}, used with it "
                       f"{'on' if tta else 'off'}")
        return why

    def gaussian_sd(self, scale):
        """(N, J) per-axis standard deviation of the isotropic Gaussian fitted to the same scores,
        from the scales (`scale`)."""
        return self.density_scale * scale


def fit(scale_sets, conformal_sets, joints, info=None, use=FEATURES):
    """A Calibration from [(features (N, J, F), error (N, J))]: the scale model on `scale_sets`,
    the score quantiles on `conformal_sets` (the root joint left out of both). Features not in
    `use` get a zero coefficient (the benchmark's alternatives)."""
    cols = np.r_[np.arange(joints - 1), [joints - 1 + FEATURES.index(f) for f in use]].astype(int)
    x = np.concatenate([_design(f, joints) for f, _ in scale_sets])[:, cols]
    y = np.log(ERROR_FLOOR + np.concatenate([e[:, 1:].ravel() for _, e in scale_sets]))
    a = x.T @ x + RIDGE * len(x) * np.diag(np.r_[np.zeros(joints - 1), np.ones(len(use))])
    coef = np.zeros(joints - 1 + len(FEATURES))
    coef[cols] = np.linalg.solve(a, x.T @ y)
    scores = np.concatenate([e[:, 1:].ravel() / np.exp(_design(f, joints) @ coef) for f, e in conformal_sets])
    n = len(scores)
    levels = np.minimum(1.0, GRID * (n + 1) / n)       # split conformal's finite-sample correction
    q = np.quantile(scores, levels, method="higher")
    density = np.sqrt(np.mean(scores ** 2) / 3)          # Gaussian per-axis sd by maximum likelihood
    feats = np.concatenate([f[:, 1:].reshape(-1, len(FEATURES)) for f, _ in scale_sets])
    seen = np.quantile(feats, [0.0, 0.999], axis=0).T
    return Calibration(coef, q, density, {"calibration_joint_frames": int(n), "feature_range": seen.tolist(),
                                          **(info or {})})


def variants(windows, layout, seed=0):
    """[(name, windows)]: the calibration windows clean and corrupted (levels drawn per sequence,
    seeds apart from evaluate's, so the test corruptions are never the calibration's draws), in
    pixels of the run's images (`corrupt.image_width`)."""
    s, width = 1000 + 10 * seed, corrupt.image_width(layout)
    return [("clean", windows),
            ("gaussian 1-15px, draw 1", corrupt.gaussian_mixed(windows, seed=s, width=width)),   # two draws of
            ("gaussian 1-15px, draw 2", corrupt.gaussian_mixed(windows, seed=s + 2, width=width)),   # the levels
            ("detector-like", corrupt.detector(windows, layout.left_2d, layout.right_2d, seed=s + 4, width=width)),
            ("gaps 2-40% + gaussian 1-15px",
             corrupt.dropped(corrupt.gaussian_mixed(windows, seed=s + 6, width=width),
                             np.random.default_rng(s + 8).uniform(0.02, 0.4, len(windows.keys)), seed=s + 9))]


def calibration_sets(views_per_variant, variant_windows, method=DEFAULT_AGGREGATE):
    """[(features, error)] per calibration variant from every member's views (K, V, N, J, 3)."""
    sets = []
    for views, (_, w) in zip(views_per_variant, variant_windows):
        ens = aggregate(views.mean(1), method)
        sets.append((features(w, view_spread(views, ens)), np.linalg.norm(ens - w.targets, axis=-1)))
    return sets


def fit_from_predictions(views_per_variant, variant_windows, method=DEFAULT_AGGREGATE, info=None):
    """The run's calibration from every member's views (K, V, N, J, 3) on each calibration variant
    (`variants`): the scale model on all of them, the conformal quantiles on the first, clean
    one (scripts/bench_uncertainty.py measured the alternatives)."""
    sets = calibration_sets(views_per_variant, variant_windows, method)
    meta = {"aggregate": method, "variants": [name for name, _ in variant_windows],
            "frames": int(len(variant_windows[0][1])), "conformal_on": "clean", **(info or {})}
    return fit(sets, sets[:1], sets[0][1].shape[1], meta)

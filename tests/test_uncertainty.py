"""Error radii: corruptions, the roughness features, the fit's coverage on a case with a known
answer, the calibration split, and the figures evaluate reports. Numpy only, no training."""
import numpy as np
import pytest

from raypose.data.gaps import fill_gaps
from raypose.data.splits import calibration_split, calibration_tail
from raypose.data.windows import make_windows
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import LEFT, RIGHT
from raypose.ensemble import corrupt
from raypose.ensemble import uncertainty as U
from raypose.evaluation.calibration import QCE_LEVELS, coverage, gaussian_nll, gaussian_radius, qce, radius_report

LAYOUT = Layout.of(15, (LEFT, RIGHT))


def smooth_windows(sequences=6, frames=240, seed=0):
    """Smooth 2D tracks (a body moving at 60 Hz) with 3D targets, in normalised units."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None] / 60.0
    seqs = []
    for s in range(sequences):
        freq, phase = rng.uniform(0.5, 2.0, (1, 15, 2)), rng.uniform(0, 6.3, (1, 15, 2))
        kp = 0.2 * np.sin(2 * np.pi * freq * t + phase) + rng.uniform(-0.5, 0.5, (1, 15, 2))
        pose = rng.normal(0, 0.2, (frames, 15, 3))
        pose[:, 0] = 0
        seqs.append((("Train/S1", f"Walking {s}", "C1"), kp.astype(np.float32), pose.astype(np.float32)))
    return make_windows(seqs, 27)


def test_gaussian_noise_has_its_level_per_sequence():
    w = smooth_windows()
    before = w.inputs.copy()
    sigma = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 0.5])
    noisy = corrupt.gaussian(w, sigma, seed=1)
    rows = corrupt._rows(w)
    diff_px = (noisy.inputs - w.inputs) * 640 / 2
    measured = np.array([diff_px[rows == s].std() for s in range(6)])
    np.testing.assert_allclose(measured, sigma, rtol=0.05)
    assert noisy.inputs.dtype == np.float32 and np.array_equal(w.inputs, before)   # the input stays clean
    # padding repeats the corrupted first and last frames, as a real noisy track is padded
    pad = w.receptive_field // 2
    lo, t = w.starts[0], w.offsets[1]
    assert np.all(noisy.inputs[lo:lo + pad] == noisy.inputs[lo + pad])
    assert np.all(noisy.inputs[lo + pad + t:lo + 2 * pad + t] == noisy.inputs[lo + pad + t - 1])


def test_detector_corruption_swaps_and_throws_joints():
    w = smooth_windows()
    swaps = corrupt.detector(w, LEFT, RIGHT, seed=3, jitter_px=0.0, outlier_rate=0.0)
    swapped = np.all(np.isclose(swaps.inputs[:, list(LEFT)], w.inputs[:, list(RIGHT)]), axis=(1, 2))
    assert 0.005 < swapped.mean() < 0.1                                 # a few frames, 1-5 long
    assert np.array_equal(swaps.inputs[~swapped], w.inputs[~swapped])
    thrown = corrupt.detector(w, LEFT, RIGHT, seed=3, jitter_px=0.0, swap_rate=0.0)
    moved = np.linalg.norm(thrown.inputs - w.inputs, axis=-1) * 640 / 2   # (P, J) pixels
    hit = moved > 19.9
    assert 0.01 < hit.mean() < 0.03 and moved.max() <= 80.01
    assert np.all(moved[~hit] < 1e-3)                                    # the rest untouched


def test_roughness_grows_with_noise_and_with_gross_errors():
    w = smooth_windows()
    clean = U.roughness(w)
    levels = [U.roughness(corrupt.gaussian(w, px, seed=2)).mean(0) for px in (2.0, 6.0, 10.0)]
    assert np.all(clean.mean(0) < levels[0]) and np.all(levels[0] < levels[1]) and np.all(levels[1] < levels[2])
    spikes = U.roughness(corrupt.detector(w, LEFT, RIGHT, seed=4, jitter_px=0.0))
    assert spikes[:, 1].mean() > clean[:, 1].mean() + 1.0               # the worst joint's feature
    assert spikes.shape == (len(w), 3) and np.all(np.isfinite(spikes))


def test_dropped_joints_are_filled_as_predict_fills_them():
    w = smooth_windows()
    gone = corrupt.dropped(w, 0.15, seed=5)
    pad, rf = w.receptive_field // 2, w.receptive_field
    centre = gone.gaps[gone.starts + pad]                               # (N, J) at each target
    assert 0.13 < (centre > 0).mean() < 0.17 and centre.max() <= 240
    assert np.array_equal(gone.inputs[gone.gaps == 0], w.inputs[gone.gaps == 0])   # observed ones untouched
    for s in range(len(w.keys)):                                         # filled = gaps.fill_gaps of the track
        lo, hi = w.offsets[s], w.offsets[s + 1]
        first = w.starts[lo] + pad
        kp = w.inputs[first:first + hi - lo].astype(np.float64)
        kp[gone.gaps[first:first + hi - lo] > 0] = np.nan
        filled, _, dist = fill_gaps(kp)
        np.testing.assert_allclose(gone.inputs[first:first + hi - lo], filled, atol=1e-6)
        assert np.array_equal(gone.gaps[first:first + hi - lo], dist)
    lo, t = w.starts[0], w.offsets[1]                                    # padding from the filled edge frames
    assert np.all(gone.gaps[lo:lo + pad] == gone.gaps[lo + pad]) and np.all(gone.inputs[lo:lo + pad] ==
                                                                             gone.inputs[lo + pad])
    assert gone.gaps[lo + pad + t:lo + rf - 1 + t].shape[0] == pad and np.array_equal(w.targets, gone.targets)
    assert U.gap_features(w, 15).max() == 0                              # no gaps: zero features
    f = U.gap_features(gone, 15)
    np.testing.assert_allclose(f[..., 0], np.log1p(np.minimum(centre, U.GAP_CAP)))
    share = np.array([(gone.gaps[a:a + rf] > 0).mean() for a in gone.starts])
    np.testing.assert_allclose(f[:, 0, 1], share)
    np.testing.assert_allclose(U.gap_features(gone, 17)[..., 0], np.repeat(f[..., 0].mean(1, keepdims=True), 17, 1))


def test_a_calibration_from_before_gaps_reads_as_the_same_model():
    """A record fitted on the five features before GAP_FEATURES: the same scales on observed 2D,
    no weight on gaps, and any filled joint beyond what it saw (so predict flags it)."""
    feats, err = toy_sets(800, 3)
    feats[..., 5:] = 0
    old_cols = [f for f in U.FEATURES if f not in U.GAP_FEATURES]
    cal = U.fit([(feats, err)], [(feats, err)], 6, use=old_cols)
    d = cal.to_dict()
    keep = [U.FEATURES.index(f) for f in old_cols]
    d["features"], d["coef"] = old_cols, d["coef"][:5] + [d["coef"][5 + i] for i in keep]
    d["feature_range"] = [d["feature_range"][i] for i in keep]
    back = U.Calibration.from_dict(d)
    assert not back.fitted_on_gaps and cal.fitted_on_gaps
    np.testing.assert_allclose(back.scale_of(feats), cal.scale_of(feats))
    assert np.asarray(back.info["feature_range"])[5:].max() == 0
    assert U.Calibration.from_dict({**d, "features": old_cols[:-1] + ["something else"]}) is None


def test_radii_grow_where_the_fit_saw_filled_joints_err_more():
    rng = np.random.default_rng(7)
    feats, _ = toy_sets(6000, 4)
    gap = np.where(rng.random(feats.shape[:2]) < 0.2, np.log1p(rng.integers(1, 40, feats.shape[:2])), 0.0)
    feats[..., 5], feats[..., 6] = gap, 0.0
    noise = np.linalg.norm(rng.normal(size=(*gap.shape, 3)), axis=-1)
    err = np.exp(-3.5 + 0.8 * (feats[..., 0] + 4) + 0.6 * gap) * noise
    err[:, 0] = 0
    cal = U.fit([(feats, err)], [(feats, err)], 6)
    assert cal.coef[5 + 5] == pytest.approx(0.6, abs=0.05)
    radius = cal.scale_of(feats)[..., None] * cal.factor([0.9])
    filled = gap[:, 1:] > 0
    cover = err[:, 1:, None] <= radius[:, 1:]
    assert abs(cover[filled].mean() - 0.9) < 0.03 and abs(cover[~filled].mean() - 0.9) < 0.03
    assert radius[:, 1:][filled].mean() > 2 * radius[:, 1:][~filled].mean()


def toy_sets(n, seed):
    """Features and 3D errors whose scale is a known log-linear function of the features."""
    rng = np.random.default_rng(seed)
    joints = 6
    feats = rng.normal(-4, 1, (n, joints, len(U.FEATURES)))
    log_scale = -3.5 + 0.1 * np.arange(joints) + 0.8 * (feats[..., 0] + 4) + 0.4 * (feats[..., 1] + 4)
    err = np.exp(log_scale) * np.linalg.norm(rng.normal(size=(n, joints, 3)), axis=-1)
    err[:, 0] = 0
    return feats, err


def test_a_calibrated_toy_case_covers_every_quantile():
    train, test = toy_sets(4000, 0), toy_sets(4000, 1)
    cal = U.fit([train], [train], 6)
    np.testing.assert_allclose(cal.coef[5:7], [0.8, 0.4], atol=0.03)   # after 5 joint intercepts: found
    scale = cal.scale_of(test[0])
    assert np.all(scale[:, 0] == 0)
    radius = scale[..., None] * cal.factor(QCE_LEVELS)
    cover = coverage(radius, test[1])
    np.testing.assert_allclose(cover, QCE_LEVELS, atol=0.015)
    assert qce(QCE_LEVELS, cover) < 0.01
    assert np.all(np.diff(radius[:, 1:], axis=-1) >= 0)                  # monotone in q
    # read as a Gaussian: the scores' own scale makes a likelihood better than a wrong one
    sd = cal.density_scale * scale
    assert gaussian_nll(test[1], sd) < min(gaussian_nll(test[1], 0.5 * sd), gaussian_nll(test[1], 2 * sd))


def test_calibration_round_trips_through_json():
    cal = U.fit([toy_sets(500, 0)], [toy_sets(500, 0)], 6, info={"aggregate": "weighted"})
    back = U.Calibration.from_dict(cal.to_dict())
    feats = toy_sets(50, 2)[0]
    np.testing.assert_allclose(back.scale_of(feats), cal.scale_of(feats))
    np.testing.assert_allclose(back.factor([0.5, 0.9]), cal.factor([0.5, 0.9]))
    assert back.info["aggregate"] == "weighted" and back.joints == 6


def test_maxwell_quantiles_match_sampling():
    rng = np.random.default_rng(0)
    d = np.linalg.norm(rng.normal(size=(200000, 3)), axis=-1)
    qs = np.array([0.05, 0.5, 0.9, 0.95])
    np.testing.assert_allclose(gaussian_radius(np.ones(1), qs)[0], np.quantile(d, qs), rtol=0.01)


def test_calibration_tail_holds_out_the_last_frames_of_labelled_sequences():
    kp, pose = np.zeros((100, 15, 2)), np.zeros((100, 15, 3))
    seqs = [(("S1", "Walk", c), kp, pose) for c in ("C1", "C2")] + [(("S1", "Box", "C1"), kp[:4], pose[:4]),
                                                                      (("S2", "Jog", "C1"), kp, None)]
    train, calib = calibration_tail(seqs, 0.1)
    assert [len(k) for _, k, _ in train] == [90, 90, 4, 100]   # 0.4 frames round to none; unlabelled stay
    assert [(key, len(k)) for key, k, _ in calib] == [(("S1", "Walk", "C1"), 10), (("S1", "Walk", "C2"), 10)]
    assert calibration_tail(seqs, 0.0) == (seqs, [])
    assert len(calibration_tail([(("S", "A", "C1"), kp[:2], pose[:2])], 0.5)[0][0][1]) == 1   # never all


def test_radius_report_figures():
    feats, err = toy_sets(2000, 5)
    cal = U.fit([(feats, err)], [(feats, err)], 6)
    levels = np.concatenate([QCE_LEVELS, [0.5, 0.9]])
    radius = cal.scale_of(feats)[..., None] * cal.factor(levels)
    groups = np.repeat(["Validate/S1", "Validate/S2"], 1000)
    rep = radius_report(radius, err, levels, (0.5, 0.9), groups, cal.density_scale * cal.scale_of(feats))
    assert rep["coverage_at"]["0.9"] == pytest.approx(0.9, abs=0.01) and rep["qce"] < 0.01
    assert rep["spearman"] > 0.5 and 0 <= rep["ause"] < 0.5 and np.isfinite(rep["nll"])
    assert set(rep["per_subject"]) == {"Validate/S1", "Validate/S2"}
    assert rep["mean_radius_mm"]["0.9"] > rep["mean_radius_mm"]["0.5"] > 0


def test_calibration_split_by_chunk_keeps_every_action_and_whole_chunks():
    def seqs(subject, action, frames):
        return [((subject, action, c), np.zeros((frames, 15, 2)), np.zeros((frames, 15, 3))) for c in ("C1", "C2")]
    data = (seqs("S1", "Box 1 chunk0", 30) + seqs("S1", "Box 1 chunk1", 40) + seqs("S1", "Box 1 chunk2", 100)
            + seqs("S1", "Box 1 chunk3", 20) + seqs("S1", "Walking 1 chunk0", 300) + seqs("S2", "Jog 1 chunk0", 50)
            + [(("S2", "Jog 1 chunk1", "C1"), np.zeros((80, 15, 2)), None)])
    train, calib = calibration_split(data, 0.1, "chunk", seed=0)
    held = {k[:2]: len(kp) for k, kp, _ in calib}
    box = [a for s, a in held if a.startswith("Box")]
    assert len(box) == 1 and held[("S1", box[0])] in (20, 30)       # whole: the chunk closest to 19 frames
    assert held[("S1", "Walking 1 chunk0")] == 30                      # one chunk: its last tenth
    assert held[("S2", "Jog 1 chunk0")] == 5                           # the only labelled Jog chunk
    assert sorted(k[2] for k, _, _ in calib if k[1] == box[0]) == ["C1", "C2"]   # every camera of it
    assert (("S2", "Jog 1 chunk1", "C1")) in [k for k, _, _ in train]  # unlabelled: always trains
    assert sum(len(kp) for _, kp, _ in train + calib) == sum(len(kp) for _, kp, _ in data)
    again = calibration_split(data, 0.1, "chunk", seed=0)[1]
    assert [k for k, _, _ in again] == [k for k, _, _ in calib]
    assert calibration_split(data, 0.1, "tail")[1][0][1].shape[0] == 3   # the tail mode: 10% of 30 frames


def test_features_of_one_sequence_at_a_time_carried_are_those_of_all_at_once(walk_jog_windows):
    """Predict windows a file one track at a time: with the running sums carried over (`Carry`),
    every feature is bit for bit the one of all tracks windowed back to back; without, the
    cumulative sums start from 0 per track and come out a rounding apart."""
    windows = walk_jog_windows[1]
    rng = np.random.default_rng(3)
    pad = windows.receptive_field // 2
    seqs, gaps = [], []
    for s, key in enumerate(windows.keys):
        t = windows.offsets[s + 1] - windows.offsets[s]
        seqs.append((key, windows.sequence(s)[0][pad:pad + t], None))
        gaps.append(rng.integers(0, 4, (t, windows.inputs.shape[1])) * (rng.random((t, 1)) < 0.3))
    whole = make_windows(seqs, windows.receptive_field, gaps)
    spread = rng.uniform(0.005, 0.05, (len(whole), 15))
    want = U.features(whole, spread)
    carry, carried, fresh = U.Carry(), [], []
    for s, (seq, g) in enumerate(zip(seqs, gaps)):
        one = make_windows([seq], windows.receptive_field, [g])
        part = spread[whole.offsets[s]:whole.offsets[s + 1]]
        carried.append(U.features(one, part, carry))
        fresh.append(U.features(one, part))
        carry = carry.after(one)
    assert len(seqs) > 2 and np.array_equal(np.concatenate(carried), want)
    np.testing.assert_allclose(np.concatenate(fresh), want, rtol=1e-9, atol=1e-12)
    assert not np.array_equal(np.concatenate(fresh), want)   # what the carry is for

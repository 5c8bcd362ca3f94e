"""Gap filling of 2D tracks against hand-computed answers and a per-joint np.interp reference."""
import time

import numpy as np
import pytest

from raypose.data.gaps import fill_gaps, gap_summary
from raypose.errors import UserError

NAN = np.nan


def test_interpolates_inside_a_gap():
    kp = np.array([[[0, 10]], [[NAN, NAN]], [[NAN, 3]], [[7, NAN]], [[8, 30]]], float)  # (5, 1, 2)
    filled, mask, distance = fill_gaps(kp)
    np.testing.assert_allclose(filled[:, 0], [[0, 10], [2, 15], [4, 20], [6, 25], [8, 30]])
    assert mask[:, 0].tolist() == [False, True, True, True, False]
    assert distance[:, 0].tolist() == [0, 1, 2, 1, 0]


def test_holds_the_nearest_observation_at_the_edges():
    kp = np.full((6, 1, 2), NAN)
    kp[2, 0], kp[3, 0] = (3, 4), (5, 6)
    filled, mask, distance = fill_gaps(kp)
    np.testing.assert_array_equal(filled[:, 0], [[3, 4], [3, 4], [3, 4], [5, 6], [5, 6], [5, 6]])
    assert mask[:, 0].tolist() == [True, True, False, False, True, True]
    assert distance[:, 0].tolist() == [2, 1, 0, 0, 1, 2]


def test_whole_missing_frame():
    kp = np.array([[[0, 0], [10, 10], [20, 0]],
                   [[NAN, NAN], [NAN, NAN], [NAN, NAN]],
                   [[2, 4], [12, 14], [24, 8]]], float)
    filled, mask, distance = fill_gaps(kp)
    np.testing.assert_allclose(filled[1], [[1, 2], [11, 12], [22, 4]])
    assert mask.tolist() == [[False] * 3, [True] * 3, [False] * 3]
    assert distance.tolist() == [[0] * 3, [1] * 3, [0] * 3]
    assert gap_summary(mask, distance) == {"filled_share": 1 / 3, "longest_gap_frames": 1,
                                           "frames_all_filled": 1, "joints_never_observed": 0}


def test_confidence_below_threshold_or_nan_is_missing():
    kp = np.array([[[0, 0]], [[99, 99]], [[99, 99]], [[6, 6]], [[9, 9]]], float)
    conf = np.array([[0.9], [0.1], [NAN], [0.3], [0.5]])       # 0.3 == threshold: kept
    filled, mask, distance = fill_gaps(kp, conf, threshold=0.3)
    np.testing.assert_allclose(filled[:, 0], [[0, 0], [2, 2], [4, 4], [6, 6], [9, 9]])
    assert mask[:, 0].tolist() == [False, True, True, False, False]
    assert distance[:, 0].tolist() == [0, 1, 1, 0, 0]
    # a stricter threshold drops frame 3 as well: frames 1-3 lie between 0 and 9
    filled, mask, _ = fill_gaps(kp, conf, threshold=0.31)
    np.testing.assert_allclose(filled[1:4, 0], [[2.25, 2.25], [4.5, 4.5], [6.75, 6.75]])
    assert mask[:, 0].tolist() == [False, True, True, True, False]


def test_never_observed_joint_gets_the_frame_centre_and_distance_t():
    kp = np.array([[[0, 0], [4, 2], [NAN, NAN]],
                   [[2, 2], [NAN, NAN], [NAN, NAN]],          # joint 1 filled first: (6, 4)
                   [[4, 4], [8, 6], [NAN, NAN]]], float)
    filled, mask, distance = fill_gaps(kp)
    np.testing.assert_allclose(filled[:, 2], [[2, 1], [4, 3], [6, 5]])
    np.testing.assert_allclose(filled[1, 1], [6, 4])
    assert mask[:, 2].all() and mask[1, 1] and mask.sum() == 4
    assert distance[:, 2].tolist() == [3, 3, 3]
    assert gap_summary(mask, distance) == {"filled_share": 4 / 9, "longest_gap_frames": 3,
                                           "frames_all_filled": 0, "joints_never_observed": 1}


@pytest.mark.parametrize("confidence", [None, np.zeros((4, 2))])
def test_all_missing_track_is_one_line_user_error(confidence):
    kp = np.full((4, 2, 2), NAN) if confidence is None else np.ones((4, 2, 2))
    with pytest.raises(UserError) as err:
        fill_gaps(kp, confidence, threshold=0.3, where="clips/s1.npz:walk")
    msg = str(err.value)
    assert msg == ("clips/s1.npz:walk: no usable keypoint (every joint missing or below confidence 0.3); "
                   "expected at least one detected joint")
    assert "\n" not in msg


def test_inputs_unchanged():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(20, 4, 2)).astype(np.float32)
    kp[3:7, 1] = NAN
    kp[:, 3, 0] = NAN
    conf = rng.uniform(size=(20, 4))
    conf[5, 2] = NAN
    kp0, conf0 = kp.copy(), conf.copy()
    fill_gaps(kp, conf)
    np.testing.assert_array_equal(kp, kp0)
    np.testing.assert_array_equal(conf, conf0)
    assert kp.dtype == np.float32


def test_dtypes_shapes_and_observed_values_kept():
    kp = [[[1.5, 2.5], [NAN, 0.0]], [[3.5, 4.5], [5.0, 6.0]], [[NAN, 1.0], [7.0, 8.0]]]   # a list works too
    filled, mask, distance = fill_gaps(kp)
    assert (filled.dtype, filled.shape) == (np.float32, (3, 2, 2))
    assert (mask.dtype, mask.shape) == (np.bool_, (3, 2))
    assert np.issubdtype(distance.dtype, np.integer) and distance.shape == (3, 2)
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[~mask], np.asarray(kp, np.float32)[~mask])
    np.testing.assert_array_equal(filled[2, 0], [3.5, 4.5])        # one coordinate NaN: both replaced


def test_empty_track():
    filled, mask, distance = fill_gaps(np.zeros((0, 17, 2)), np.zeros((0, 17)))
    assert filled.shape == (0, 17, 2) and filled.dtype == np.float32
    assert mask.shape == (0, 17) and distance.shape == (0, 17)
    assert gap_summary(mask, distance) == {"filled_share": 0.0, "longest_gap_frames": 0,
                                           "frames_all_filled": 0, "joints_never_observed": 0}


@pytest.mark.parametrize("threshold", [-0.1, 1.5, NAN])
def test_bad_threshold(threshold):
    with pytest.raises(UserError, match=r"^seq: confidence threshold .*; expected a number in \[0, 1\]$"):
        fill_gaps(np.zeros((3, 2, 2)), threshold=threshold, where="seq")


def test_bad_confidence_shape():
    with pytest.raises(UserError, match=r"^seq: confidence has shape \(3, 3\); expected \(3, 2\) \(frames, joints\)$"):
        fill_gaps(np.zeros((3, 2, 2)), np.ones((3, 3)), where="seq")


def test_bad_keypoints_shape():
    with pytest.raises(UserError, match=r"^seq: keypoints have shape \(3, 2, 3\); expected \(frames, joints, 2\)$"):
        fill_gaps(np.zeros((3, 2, 3)), where="seq")


def test_matches_np_interp_on_a_long_track_quickly():
    rng = np.random.default_rng(1)
    t, j = 100_000, 17
    kp = rng.normal(size=(t, j, 2))
    conf = rng.uniform(size=(t, j))
    kp[rng.uniform(size=(t, j)) < 0.2] = NAN
    kp[40_000:41_000] = NAN                                      # whole missing frames
    start = time.perf_counter()
    filled, mask, distance = fill_gaps(kp, conf, threshold=0.3)
    assert time.perf_counter() - start < 2.0
    observed = np.isfinite(kp).all(-1) & (conf >= 0.3)
    frames = np.arange(t)
    for k in range(j):
        obs = np.flatnonzero(observed[:, k])
        for c in range(2):
            np.testing.assert_allclose(filled[:, k, c], np.interp(frames, obs, kp[obs, k, c]), rtol=1e-6, atol=1e-6)
        i = np.searchsorted(obs, frames).clip(1, len(obs) - 1)      # nearest observation: one of two neighbours
        d = np.minimum(np.abs(frames - obs[i - 1]), np.abs(obs[i] - frames))
        np.testing.assert_array_equal(distance[:, k], d)
    np.testing.assert_array_equal(mask, ~observed)
    assert gap_summary(mask, distance)["frames_all_filled"] >= 1000

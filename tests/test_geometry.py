"""Skeleton, cameras, splits and windows: the small pieces everything else relies on."""
import numpy as np
import pytest

from raypose import cameras, skeleton
from raypose.data import splits, windows
from raypose.errors import UserError


def test_skeleton_tables():
    assert len(skeleton.JOINT_NAMES) == skeleton.NUM_JOINTS == 15
    assert skeleton.PARENTS[0] == -1 and all(skeleton.PARENTS[1:] < np.arange(1, 15))
    perm = skeleton.flip_permutation()
    assert sorted(perm) == list(range(15)) and perm[2] == 5 and perm[13] == 10 and perm[14] == 14


def test_flip_is_an_involution_and_mirrors():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(4, 15, 3))
    f = skeleton.flip(p)
    np.testing.assert_allclose(skeleton.flip(f), p)
    np.testing.assert_allclose(f[:, 5, 0], -p[:, 2, 0])      # left shoulder -> right, x negated
    np.testing.assert_allclose(f[:, 5, 1:], p[:, 2, 1:])
    np.testing.assert_allclose(skeleton.flip(p[..., :2]), f[..., :2])      # 2D mirrors the same way


def test_world_to_camera_matches_reference_point():
    np.testing.assert_allclose(cameras.world_to_camera(np.array([0, 0, 1.0]), "Train/S1", 0),
                               [-0.08, -0.18, 4.15], atol=0.01)
    p = np.random.default_rng(1).normal(size=(10, 3))
    for s in ("Train/S1", "Validate/S2", "Train/S3"):
        for c in range(3):
            back = cameras.camera_to_world(cameras.world_to_camera(p, s, c), s, c)
            np.testing.assert_allclose(back, p, atol=1e-5)
            R, _ = cameras.camera(s, c)
            np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)
    with pytest.raises(UserError, match="S9"):
        cameras.camera("Train/S9", 0)


def test_normalisation_round_trip():
    px = np.array([[0, 0], [640, 480], [320, 240]], dtype=np.float32)
    n = cameras.normalize_screen(px)
    np.testing.assert_allclose(n, [[-1, -0.75], [1, 0.75], [0, 0]])
    np.testing.assert_allclose(cameras.image_coordinates(n), px, atol=1e-4)


KEYS = [("Train/S1", "Walking 1 chunk0"), ("Train/S1", "Box 1 chunk1"), ("Train/S1", "Box 1 chunk3"),
        ("Train/S1", "Box 1 chunk5"), ("Train/S1", "Jog 1 chunk1"), ("Validate/S1", "Walking 1 chunk0"),
        ("Validate/S1", "Walking 1 chunk2"), ("Validate/S1", "Walking 1 chunk4"), ("Validate/S1", "Gestures 1 chunk0")]


def test_videopose3d_split():
    train, test = splits.split_chunks(KEYS, "videopose3d")
    assert all(s.startswith("Train/") for s, _ in train) and len(train) == 5
    assert all(s.startswith("Validate/") for s, _ in test) and len(test) == 4


def test_seed_split_takes_second_chunk_in_key_order():
    train, test = splits.split_chunks(KEYS, "seed")
    assert test == [("Train/S1", "Box 1 chunk3"), ("Validate/S1", "Walking 1 chunk2")]
    assert len(train) + len(test) == len(KEYS) and not set(train) & set(test)


def test_action_prefix_filter():
    assert splits.filter_actions(KEYS, "Walk") == [k for k in KEYS if "Walking" in k[1]]
    assert len(splits.filter_actions(KEYS, ["Walk", "Jog"])) == 5
    assert splits.filter_actions(KEYS, None) == KEYS
    with pytest.raises(UserError, match="selects no"):
        splits.select(KEYS, "videopose3d", "ThrowCatch")
    with pytest.raises(UserError, match="unknown"):
        splits.select(KEYS, "random")


def test_labelled_split_by_chunk():
    train, _ = splits.split_chunks(KEYS, "seed")
    lab, unl = splits.labelled_split(train, 0.4, seed=3)
    assert len(lab) == round(0.4 * len(train)) and set(lab) | set(unl) == set(train)
    assert not set(lab) & set(unl)
    assert splits.labelled_split(train, 0.4, seed=3) == (lab, unl)
    assert {tuple(splits.labelled_split(train, 0.4, seed=s)[0]) for s in range(10)} != {tuple(lab)}
    assert splits.labelled_split(train, 1.0, 0)[1] == []
    for bad in (0, -0.5, 1.5, "half"):
        with pytest.raises(UserError, match="fraction"):
            splits.labelled_split(train, bad, 0)


def test_windows_cover_every_frame_with_edge_padding():
    a = np.arange(5 * 15 * 2, dtype=np.float32).reshape(5, 15, 2)
    b = -np.arange(40 * 15 * 2, dtype=np.float32).reshape(40, 15, 2)
    ta, tb = np.ones((5, 15, 3)), np.zeros((40, 15, 3))
    w = windows.make_windows([(("s", "a", "C1"), a, ta), (("s", "b", "C1"), b, tb)], receptive_field=27)
    assert len(w) == 45 and w.targets.shape == (45, 15, 3)
    x = w.gather(np.arange(45))
    assert x.shape == (45, 27, 15, 2)
    np.testing.assert_array_equal(x[:, 13], np.concatenate([a, b]))          # centre = target frame
    np.testing.assert_array_equal(x[0, :13], np.repeat(a[:1], 13, 0))        # left edge replicated
    np.testing.assert_array_equal(x[4, 14:], np.repeat(a[-1:], 13, 0))       # right edge replicated
    np.testing.assert_array_equal(x[5 + 20], b[20 - 13:20 + 14])             # interior: plain slice
    seq, tgt = w.sequence(1)
    assert seq.shape == (40 + 26, 15, 2) and tgt.shape == (40, 15, 3)
    unl = windows.make_windows([(("s", "a", "C1"), a, None)], receptive_field=9)
    assert unl.targets is None and unl.gather(np.array([2])).shape == (1, 9, 15, 2)

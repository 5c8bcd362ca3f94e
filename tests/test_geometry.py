"""Skeleton, cameras, splits, windows and the geometric fits: the small pieces everything else relies on."""
import numpy as np
import pytest

from raypose.data import npz, splits, windows
from raypose.datasets import cameras, skeleton
from raypose.datasets.skeleton import bone_lengths
from raypose.errors import UserError
from raypose.model.geometry import (
    ALL_CAMERAS,
    fit_bones,
    fit_focal,
    fit_to_2d,
    fit_windows,
    focal_table,
    subject_bones,
    window_focals,
)


def test_skeleton_tables():
    assert len(skeleton.JOINT_NAMES) == skeleton.NUM_JOINTS == 15
    assert skeleton.PARENTS[0] == -1 and all(skeleton.PARENTS[1:] < np.arange(1, 15))
    perm = skeleton.flip_permutation()
    assert sorted(perm) == list(range(15)) and perm[2] == 5 and perm[13] == 10 and perm[14] == 14


def test_flip_is_an_involution_and_mirrors():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(4, 15, 3))
    perm = skeleton.flip_permutation()
    f = skeleton.mirror(p, perm)
    np.testing.assert_allclose(skeleton.mirror(f, perm), p)
    torch = pytest.importorskip("torch")
    np.testing.assert_allclose(skeleton.mirror(torch.from_numpy(p), perm).numpy(), f)   # one flip for both
    np.testing.assert_allclose(f[:, 5, 0], -p[:, 2, 0])      # left shoulder -> right, x negated
    np.testing.assert_allclose(f[:, 5, 1:], p[:, 2, 1:])
    np.testing.assert_allclose(skeleton.mirror(p[..., :2], perm), f[..., :2])      # 2D mirrors the same way


def test_world_to_camera_matches_reference_point():
    np.testing.assert_allclose(cameras.world_to_camera(np.array([0, 0, 1.0]), "Train/S1", 0),
                               [-0.08, -0.18, 4.15], atol=0.01)
    p = np.random.default_rng(1).normal(size=(10, 3))
    for s in ("Train/S1", "Validate/S2", "Train/S3"):
        for c in range(3):
            R, t = cameras.camera(s, c)
            back = cameras.world_to_camera(p, s, c).astype(np.float64) @ R.T + t
            np.testing.assert_allclose(back, p, atol=1e-5)
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
    x = w.inputs[w.starts[np.arange(45), None] + np.arange(w.receptive_field)]
    assert x.shape == (45, 27, 15, 2)
    np.testing.assert_array_equal(x[:, 13], np.concatenate([a, b]))          # centre = target frame
    np.testing.assert_array_equal(x[0, :13], np.repeat(a[:1], 13, 0))        # left edge replicated
    np.testing.assert_array_equal(x[4, 14:], np.repeat(a[-1:], 13, 0))       # right edge replicated
    np.testing.assert_array_equal(x[5 + 20], b[20 - 13:20 + 14])             # interior: plain slice
    seq, tgt = w.sequence(1)
    assert seq.shape == (40 + 26, 15, 2) and tgt.shape == (40, 15, 3)
    unl = windows.make_windows([(("s", "a", "C1"), a, None)], receptive_field=9)
    assert unl.targets is None and unl.inputs[unl.starts[[2], None] + np.arange(9)].shape == (1, 9, 15, 2)


def test_geometric_fits_undo_a_shrunk_noisy_pseudo_label(synth_dir):
    """The ensemble's failure mode: poses shrunk towards the mean pose, plus noise. Fitting x, y
    to the window's 2D, then the bones to the subject's lengths, must each take error away."""
    d = npz.load_humaneva(synth_dir)
    truth = d.positions_3d["Train/S1"]["Walking 1 chunk0"][:200]          # world frame, metres
    cam = truth - truth[:, :1]                                           # a camera looking along world y
    cam = np.stack([cam[..., 0], -cam[..., 2], cam[..., 1]], -1).astype(np.float32)
    depth = 2.5 + cam[..., 2]                                            # close: perspective matters
    keypoints = 1.2 * (cam[..., :2] + [0.1, -0.2]) / depth[..., None]    # root off the optical axis
    assert fit_focal(cam, keypoints) == pytest.approx(1.2, rel=0.02)     # the camera, from known 3D
    np.testing.assert_allclose(fit_to_2d(cam, keypoints, 1.2), cam, atol=1e-4)   # the truth is a fixed point
    rng = np.random.default_rng(0)
    mean_pose = cam.mean(0, keepdims=True)
    guess = 0.6 * cam + 0.4 * mean_pose + rng.normal(0, 0.01, cam.shape).astype(np.float32)
    guess -= guess[:, :1]

    def err(p):
        return np.linalg.norm(p - cam, axis=-1)[:, 1:].mean()
    weak = fit_to_2d(guess, keypoints)
    fitted = fit_to_2d(guess, keypoints, 1.2)
    both = fit_bones(fitted, np.repeat(bone_lengths(cam)[:1], len(cam), 0))
    assert err(weak) < 0.8 * err(guess), (err(guess), err(weak))
    assert err(fitted) < err(weak), (err(weak), err(fitted))
    assert err(both) < 0.95 * err(fitted), (err(fitted), err(both))
    np.testing.assert_allclose(bone_lengths(both), bone_lengths(cam)[:1].repeat(len(cam), 0), rtol=1e-4)
    assert np.all(both[:, 0] == 0)


def test_focal_table_per_camera_from_labelled_windows_only(synth_dir):
    d = npz.load_humaneva(synth_dir)
    pose = np.concatenate(list(d.positions_3d["Train/S1"].values()))[:300]
    pose = pose - pose[:, :1]
    pose = np.stack([pose[..., 0], -pose[..., 2], pose[..., 1]], -1)
    poses = np.concatenate([pose, pose, pose]).astype(np.float32)
    cameras = np.repeat(["C1", "C2", "C3"], len(pose))
    f = np.repeat([1.0, 2.0, 3.0], len(pose))[:, None, None]
    keypoints = f * (poses[..., :2] + [0.05, 0.1]) / (3.0 + poses[..., 2:3])
    labelled = cameras != "C3"                     # C3 has no labelled window
    hidden = poses.copy()
    hidden[~labelled] = 7.0                        # and its 3D is never looked at
    table = focal_table(hidden, keypoints, labelled, cameras)
    assert set(table) == {"C1", "C2", ALL_CAMERAS}
    focal = window_focals(table, cameras)
    assert focal[cameras == "C1"] == pytest.approx(1.0, rel=0.02)
    assert focal[cameras == "C2"] == pytest.approx(2.0, rel=0.02)
    everyone = table[ALL_CAMERAS]
    assert np.all(focal[cameras == "C3"] == everyone) and 0.98 < everyone < 2.04   # C3: the fit over all


def test_subject_bones_use_labelled_windows_only():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(60, 15, 3)).astype(np.float32)
    labelled = np.arange(60) % 3 != 0
    subjects = np.array(["S1"] * 20 + ["S2"] * 20 + ["S3"] * 20)
    labelled[40:] = False                                  # S3 has no labelled window
    ref = subject_bones(targets, labelled, subjects)
    hidden = targets.copy()
    hidden[~labelled] = 1e3                                # unlabelled 3D is never looked at
    np.testing.assert_array_equal(subject_bones(hidden, labelled, subjects), ref)
    s1 = (subjects == "S1") & labelled
    np.testing.assert_allclose(ref[0], np.median(bone_lengths(targets[s1]), 0))
    np.testing.assert_allclose(ref[50], np.median(bone_lengths(targets[labelled]), 0))   # S3: everyone's


def test_focal_table_falls_back_for_cameras_with_few_windows():
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, (200, 15, 3)).astype(np.float32)
    pose -= pose[:, :1]
    cameras = np.array(["C1"] * 150 + ["C9"] * 50)
    f = np.where(cameras == "C1", 2.0, 1.0)[:, None, None]
    keypoints = f * (pose[..., :2] + [0.1, 0.0]) / (4.0 + pose[..., 2:3])
    labelled = np.arange(200) < 180                     # C9 keeps 30 labelled windows: too few
    table = focal_table(pose, keypoints, labelled, cameras)
    assert set(table) == {"C1", ALL_CAMERAS} and table["C1"] == pytest.approx(2.0, rel=0.02)
    per = window_focals(table, cameras)
    assert per[0] == table["C1"] and per[-1] == table[ALL_CAMERAS]
    assert 0.98 < table[ALL_CAMERAS] < 2.04   # the fit over both cameras' labelled windows


def test_fit_windows_puts_every_joint_on_its_input_ray():
    """A lifting network's output, fitted per window with its camera's focal length: each joint
    reprojects onto the window's centre 2D frame, depth and root stay."""
    rng = np.random.default_rng(1)
    truth = rng.normal(0, 0.25, (2, 40, 15, 3)).astype(np.float32)
    truth -= truth[:, :, :1]
    focals = {"C1": 1.5, "C2": 2.5, ALL_CAMERAS: 2.0}
    seqs = []
    for s, (cam, f) in enumerate([("C1", 1.5), ("C2", 2.5)]):
        kp = f * (truth[s, ..., :2] + [0.2, -0.1]) / (5.0 + truth[s, ..., 2:3])
        seqs.append((("S1", "Walk", cam), kp, truth[s]))
    w = windows.make_windows(seqs, 9)
    guess = w.targets + rng.normal(0, 0.02, w.targets.shape).astype(np.float32)
    guess -= guess[:, :1]
    fitted = fit_windows(guess, w, focals)
    err = lambda p: np.linalg.norm(p - w.targets, axis=-1)[:, 1:].mean()  # noqa: E731
    assert err(fitted) < 0.7 * err(guess), (err(guess), err(fitted))
    np.testing.assert_allclose(fitted[..., 2], guess[..., 2] - guess[:, :1, 2], atol=1e-6)
    np.testing.assert_allclose(fit_windows(w.targets, w, focals), w.targets, atol=1e-4)
    wrong = fit_windows(guess, w, {ALL_CAMERAS: 2.0})   # one focal length for both cameras is worse
    assert err(fitted) < err(wrong)
    other = windows.make_windows([(k, kp[:, :12], p) for k, kp, p in seqs], 9)
    assert fit_windows(guess, other, focals) is guess   # 2D in another joint order: left alone


def test_trajectory_recovers_the_root_of_an_exact_projection():
    from raypose.model.geometry import trajectory
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 0.3, (20, 15, 3))
    pose[:, 0] = 0
    root = np.column_stack([rng.uniform(-1, 1, 20), rng.uniform(-0.5, 0.5, 20), rng.uniform(3, 8, 20)])
    cam = pose + root[:, None]
    f = 1.6
    q = f * cam[..., :2] / cam[..., 2:3]
    np.testing.assert_allclose(trajectory(pose, q, f), root, atol=1e-4)
    np.testing.assert_allclose(trajectory(pose, q, np.full(20, f)), root, atol=1e-4)

"""The synthetic HumanEva stand-in: layout, determinism, plausible kinematics, exact projection."""
import numpy as np
import pytest

from raypose.data import npz, synthetic
from raypose.datasets import cameras
from raypose.datasets.skeleton import NUM_JOINTS, bone_lengths
from raypose.errors import UserError

SUBJECTS = {"Train/S1", "Train/S2", "Train/S3", "Validate/S1", "Validate/S2", "Validate/S3"}
ACTIONS = {"Walking 1 chunk0", "Walking 1 chunk1", "Jog 1 chunk0", "Jog 1 chunk1",
           "Box 1 chunk0", "Gestures 1 chunk0", "ThrowCatch 1 chunk0"}
ELBOWS_WRISTS = [3, 4, 6, 7]
KNEES_ANKLES = [9, 10, 12, 13]


@pytest.fixture(scope="module")
def data():
    return synthetic.generate()


def _items(pos3d):
    for subject in sorted(pos3d):
        for action in sorted(pos3d[subject]):
            yield subject, action, pos3d[subject][action]


def _speed(x):
    """Mean horizontal pelvis speed (m/s) and path length (m)."""
    step = np.linalg.norm(np.diff(x[:, 0, :2].astype(np.float64), axis=0), axis=1)
    return step.sum() / (len(step) / synthetic.FPS), step.sum()


def test_layout(data):
    pos2d, pos3d, meta = data
    assert set(pos2d) == SUBJECTS and set(pos3d) == SUBJECTS
    assert meta["layout_name"] == "humaneva15"
    assert meta["num_joints"] == 15
    assert meta["keypoints_symmetry"] == [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]]
    assert meta["synthetic"] is True and meta["focal_px"] == synthetic.FOCAL_PX
    for subject in SUBJECTS:
        assert set(pos2d[subject]) == ACTIONS and set(pos3d[subject]) == ACTIONS
        for action in ACTIONS:
            x = pos3d[subject][action]
            assert isinstance(x, np.ndarray) and x.dtype == np.float32
            assert x.ndim == 3 and x.shape[1:] == (NUM_JOINTS, 3)
            assert x.shape[0] >= synthetic.MIN_CHUNK_FRAMES
            assert np.isfinite(x).all()
            cams = pos2d[subject][action]
            assert isinstance(cams, list) and len(cams) == 3
            for kp in cams:
                assert kp.dtype == np.float32 and kp.shape == (x.shape[0], NUM_JOINTS, 2)
                assert np.isfinite(kp).all()


def test_gaits_have_two_chunks_per_subject(data):
    for subject, actions in data[1].items():
        for name in ("Walking", "Jog"):
            chunks = [a for a in actions if a.startswith(name + " 1 chunk")]
            assert len(chunks) >= 2, (subject, name, chunks)


@pytest.mark.parametrize("frames", [3000, 6000])
def test_total_frames_close_to_request(frames):
    _, pos3d, _ = synthetic.generate(frames=frames)
    total = sum(len(x) for _, _, x in _items(pos3d))
    assert abs(total - frames) <= 0.2 * frames


def test_deterministic_and_seed_dependent(data):
    pos2d, pos3d, meta = data
    again2d, again3d, again_meta = synthetic.generate(frames=3000, seed=0)
    assert meta == again_meta
    for subject, action, x in _items(pos3d):
        np.testing.assert_array_equal(x, again3d[subject][action])
        for a, b in zip(pos2d[subject][action], again2d[subject][action]):
            np.testing.assert_array_equal(a, b)
    _, other3d, _ = synthetic.generate(frames=3000, seed=1)
    diffs = [not (x.shape == other3d[s][a].shape and np.allclose(x, other3d[s][a]))
             for s, a, x in _items(pos3d)]
    assert all(diffs)


def test_bone_lengths_constant_in_time_and_per_person(data):
    pos3d = data[1]
    means = {}
    for subject, action, x in _items(pos3d):
        bl = bone_lengths(x.astype(np.float64))
        assert (bl.std(0) / bl.mean(0)).max() < 1e-4, (subject, action)
        means.setdefault(subject, []).append(bl.mean(0))
    per_subject = {s: np.mean(m, axis=0) for s, m in means.items()}
    for s, m in means.items():   # one body per subject over all its actions
        assert np.abs(np.array(m) - per_subject[s]).max() < 1e-4
    for a in ("S1", "S2", "S3"):
        # the same person in both splits, as in HumanEva
        np.testing.assert_allclose(per_subject[f"Train/{a}"], per_subject[f"Validate/{a}"], atol=1e-4)
        for b in ("S1", "S2", "S3"):
            if a < b:
                assert np.abs(per_subject[f"Train/{a}"] - per_subject[f"Train/{b}"]).max() > 0.005
    # HumanEva-like proportions: thigh ~0.43, upper arm ~0.28 m
    m = per_subject["Train/S1"]
    assert 0.35 < m[8] < 0.5 and 0.22 < m[2] < 0.33   # thigh (bone of joint 9) and upper arm (joint 3)


def test_root_moves_for_gaits_and_jog_is_faster(data):
    pos3d = data[1]
    for subject, actions in pos3d.items():
        walk = [_speed(x) for a, x in actions.items() if a.startswith("Walking")]
        jog = [_speed(x) for a, x in actions.items() if a.startswith("Jog")]
        for _s, dist in walk + jog:
            assert dist > 1.0, subject
        assert 0.8 < min(s for s, _ in walk) and max(s for s, _ in walk) < 1.9
        assert min(s for s, _ in jog) > max(s for s, _ in walk), subject
        for a in ("Box 1 chunk0", "Gestures 1 chunk0", "ThrowCatch 1 chunk0"):
            assert np.ptp(actions[a][:, 0, :2], axis=0).max() < 0.5   # stationary-ish


def test_gait_faces_direction_of_travel(data):
    x = data[1]["Train/S2"]["Walking 1 chunk0"].astype(np.float64)
    velocity = np.gradient(x[:, 0, :2], axis=0)
    left = x[:, 8, :2] - x[:, 11, :2]
    forward = np.stack([left[:, 1], -left[:, 0]], -1)   # left rotated by -90 degrees
    cos = (forward * velocity).sum(-1) / np.linalg.norm(forward, axis=-1) / np.linalg.norm(velocity, axis=-1)
    assert cos.mean() > 0.9


def test_motion_not_static_and_periodic(data):
    pos3d = data[1]
    for subject, action, x in _items(pos3d):
        rel = x - x[:, :1]
        sd = np.linalg.norm(rel.std(0), axis=-1)
        assert sd[ELBOWS_WRISTS].max() > 0.01, (subject, action)
        if action.startswith(("Walking", "Jog")):
            assert sd[ELBOWS_WRISTS + KNEES_ANKLES].min() > 0.01, (subject, action)
            # legs alternate: the left-minus-right ankle offset along the heading changes sign
            heading = np.gradient(x[:, 0, :2], axis=0)
            heading /= np.linalg.norm(heading, axis=-1, keepdims=True)
            ahead = ((x[:, 10, :2] - x[:, 13, :2]) * heading).sum(-1)
            assert np.count_nonzero(np.diff(np.sign(ahead))) >= 1, (subject, action)
            assert np.ptp(ahead) > 0.3


def test_heights_plausible(data):
    for subject, action, x in _items(data[1]):
        pelvis, head = x[:, 0, 2], x[:, 14, 2]
        assert (pelvis > 0.65).all() and (pelvis < 1.15).all(), (subject, action)   # jog dips
        if action.startswith(("Gestures", "ThrowCatch")):   # upright standing
            assert 0.85 < np.median(pelvis) < 1.1, (subject, action)
        assert (head > pelvis + 0.5).all() and (head < 2.0).all()
        ankles = x[:, [10, 13], 2]
        assert ankles.min() > 0.0 and np.abs(ankles.min(1) - ankles.min()).max() < 0.1
        assert x[..., 2].min() > -1e-6   # nothing below the floor


def test_2d_inside_image(data):
    for _subject, actions in data[0].items():
        for _action, cams in actions.items():
            for kp in cams:
                assert (kp[..., 0] >= 0).all() and (kp[..., 0] < cameras.IMAGE_WIDTH).all()
                assert (kp[..., 1] >= 0).all() and (kp[..., 1] < cameras.IMAGE_HEIGHT).all()


def test_2d_is_projection_of_3d(data):
    pos2d, pos3d, _ = data
    for subject, action, x in _items(pos3d):
        for c, kp in enumerate(pos2d[subject][action]):
            R, t = cameras.camera(subject, c)
            cam = (x.astype(np.float64) - t) @ R
            assert (cam[..., 2] > 0.5).all()   # in front of the camera
            ref = cam[..., :2] / cam[..., 2:] * synthetic.FOCAL_PX + np.array([320.0, 240.0])
            assert np.abs(kp - ref).max() < 1e-3, (subject, action, c)


def test_noise_px():
    clean2d, clean3d, _ = synthetic.generate(seed=3)
    noisy2d, noisy3d, _ = synthetic.generate(seed=3, noise_px=2.0)
    res = np.concatenate([(n - c).ravel() for s in clean2d for a in clean2d[s]
                          for n, c in zip(noisy2d[s][a], clean2d[s][a])])
    assert 1.7 < res.std() < 2.3 and abs(res.mean()) < 0.1
    for s, a, x in _items(clean3d):
        np.testing.assert_array_equal(x, noisy3d[s][a])
    with pytest.raises(UserError):
        synthetic.generate(noise_px=-1.0)
    with pytest.raises(UserError):
        synthetic.generate(frames=0)


def test_write_synthetic_round_trip(tmp_path):
    out = tmp_path / "nested" / "npz"
    path_2d, path_3d = synthetic.write_synthetic(out, frames=2000, seed=5)
    assert path_2d.endswith("data_2d_humaneva15_gt.npz") and path_3d.endswith("data_3d_humaneva15.npz")
    loaded = npz.load_humaneva(out)
    pos2d, pos3d, meta = synthetic.generate(frames=2000, seed=5)
    assert loaded.metadata["layout_name"] == "humaneva15"
    assert loaded.metadata["keypoints_symmetry"] == meta["keypoints_symmetry"]
    for s, a, x in _items(pos3d):
        np.testing.assert_array_equal(loaded.positions_3d[s][a], x)
        for c in range(3):
            np.testing.assert_array_equal(loaded.positions_2d[s][a][c], pos2d[s][a][c])

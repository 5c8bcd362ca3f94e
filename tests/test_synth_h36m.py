"""Synthetic Human3.6M in VideoPose3D's layout: files, 32 -> 17 joints, cameras, pixels, a rigid body.

The projection is recomputed here with VideoPose3D's own quaternion formula (qrot of the inverse
orientation), independent of the matrix code in raypose; the 17-joint skeleton is re-derived from
VideoPose3D's 32-joint one with its `remove_joints` rule.
"""
import os

import numpy as np
import pytest

from raypose.cli import main
from raypose.data import npz, synthetic
from raypose.datasets import h36m
from raypose.outputs import _is_synthetic

FILES = ("data_2d_h36m_gt.npz", "data_3d_h36m.npz")
ACTIONS = {"Directions 1", "Directions 2", "Posing 1", "Posing 2", "Walking 1", "Walking 2"}
# VideoPose3D common/h36m_dataset.py: h36m_skeleton, then remove_joints(REMOVED), shoulders rewired to 8
PARENTS_32 = [-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26,
              27, 28, 27, 30]
LEFT_32 = [6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23]
RIGHT_32 = [1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31]
REMOVED = [4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """`raypose synth --layout h36m` through the CLI, read back from disk."""
    out = tmp_path_factory.mktemp("h36m") / "synth"
    assert main(["synth", "--layout", "h36m", "--out", str(out), "--seed", "4"]) == 0
    return out, npz.read_npz(out / FILES[0]), npz.read_npz(out / FILES[1])


def _items(d):
    for subject in sorted(d):
        for action in sorted(d[subject]):
            yield subject, action, d[subject][action]


def _remove_joints(parents, left, right, removed):
    """VideoPose3D's Skeleton.remove_joints: skip removed parents, then renumber."""
    parents = list(parents)
    valid = [j for j in range(len(parents)) if j not in removed]
    for i in range(len(parents)):
        while parents[i] in removed:
            parents[i] = parents[parents[i]]
    offset = np.zeros(len(parents), dtype=int)
    new = []
    for i, p in enumerate(parents):
        if i in removed:
            offset[i:] += 1
        else:
            new.append(p - offset[p] if p >= 0 else -1)
    return valid, new, [j - offset[j] for j in left if j in valid], [j - offset[j] for j in right if j in valid]


def test_32_to_17_is_videopose3d_remove_joints():
    assert list(h36m.PARENTS_32) == PARENTS_32 and list(h36m.REMOVED_32) == REMOVED
    valid, parents, left, right = _remove_joints(PARENTS_32, LEFT_32, RIGHT_32, REMOVED)
    parents[11] = parents[14] = 8
    sk = h36m.SKELETON
    assert tuple(valid) == h36m.KEEP_32
    assert tuple(parents) == sk.parents == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    assert tuple(left) == sk.left == (4, 5, 6, 11, 12, 13) and tuple(right) == sk.right == (1, 2, 3, 14, 15, 16)
    assert len(sk.joint_names) == 17 and sk.name == "h36m"
    assert all(sk.joint_names[j].startswith("l_") for j in sk.left)
    assert all(sk.joint_names[j].startswith("r_") for j in sk.right)


def test_camera_table_as_published():
    """Spot values of VideoPose3D's h36m_cameras_*_params; units mm; unit quaternions."""
    assert h36m.CAMERA_IDS == ("54138969", "55011271", "58860488", "60457274")
    assert h36m.INTRINSICS[0]["focal"] == (1145.0494384765625, 1143.7811279296875)
    assert h36m.INTRINSICS[2]["centre"] == (519.8158569335938, 501.40264892578125)
    assert [c["res"] for c in h36m.INTRINSICS] == [(1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002)]
    assert set(h36m.EXTRINSICS) == set(h36m.SUBJECTS) == {"S1", "S5", "S6", "S7", "S8", "S9", "S11"}
    assert h36m.EXTRINSICS["S1"][0][0][0] == 0.1407056450843811
    assert h36m.EXTRINSICS["S11"][3][1] == (-1590.738037109375, -3854.1689453125, 1578.017578125)
    for cams in h36m.EXTRINSICS.values():
        assert len(cams) == 4
        for q, t in cams:
            assert abs(np.linalg.norm(q) - 1) < 1e-6 and 3000 < np.linalg.norm(t) < 6000   # mm, not m
    assert h36m.TRAIN_SUBJECTS + h36m.TEST_SUBJECTS == h36m.SUBJECTS and h36m.FPS == 50
    assert len(h36m.ACTIONS) == 15 and {a.split()[0] for a in ACTIONS} <= set(h36m.ACTIONS)


def test_files_keys_shapes_metadata(synth):
    out, d2, d3 = synth
    assert sorted(os.listdir(out)) == sorted(FILES)
    assert set(d2) == {"positions_2d", "metadata"} and set(d3) == {"positions_3d"}
    pos2d, pos3d = d2["positions_2d"], d3["positions_3d"]
    assert set(pos2d) == set(pos3d) == set(h36m.SUBJECTS)
    for subject, action, x in _items(pos3d):
        assert set(pos3d[subject]) == set(pos2d[subject]) == ACTIONS
        assert x.dtype == np.float32 and x.shape[1:] == (32, 3) and len(x) >= synthetic.MIN_CHUNK_FRAMES
        cams = pos2d[subject][action]
        assert isinstance(cams, list) and len(cams) == 4
        assert all(kp.dtype == np.float32 and kp.shape == (len(x), 17, 2) for kp in cams)
    assert d2["metadata"] == {"layout_name": "h36m", "num_joints": 17, "synthetic": True,
                              "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    total = sum(len(x) for _, _, x in _items(pos3d))
    assert abs(total - 3000) <= 300   # the default --frames, like the HumanEva writer


def _qrot(q, v):
    """VideoPose3D common/quaternion.py qrot: rotate v (..., 3) by the unit quaternion q (w, x, y, z)."""
    qvec = np.broadcast_to(q[1:], v.shape)
    uv = np.cross(qvec, v)
    return v + 2 * (q[0] * uv + np.cross(qvec, uv))


def test_2d_is_the_pinhole_projection_and_inside_the_image(synth):
    _, d2, d3 = synth
    for subject, action, x in _items(d3["positions_3d"]):
        kept = x[:, list(h36m.KEEP_32)].astype(np.float64)
        for c, kp in enumerate(d2["positions_2d"][subject][action]):
            q, t_mm = (np.array(a, dtype=np.float64) for a in h36m.EXTRINSICS[subject][c])
            q_inv = q * np.array([1, -1, -1, -1])
            cam = _qrot(q_inv, kept - t_mm / 1000)        # VideoPose3D's world_to_camera
            assert (cam[..., 2] > 1.5).all()               # in front of the camera, metres away
            intr = h36m.INTRINSICS[c]
            px = cam[..., :2] / cam[..., 2:] * np.array(intr["focal"]) + np.array(intr["centre"])
            np.testing.assert_allclose(kp, px, atol=2e-3, err_msg=f"{subject} {action} C{c + 1}")
            w, h = intr["res"]
            assert (kp >= 0).all() and (kp[..., 0] <= w).all() and (kp[..., 1] <= h).all()


def test_inside_all_four_images_for_many_seeds():
    """The walking loops and standing places fit H36M's views for any seed, not just the one above."""
    worst = np.inf
    for seed in range(12):
        pos2d, _, _ = synthetic.generate(3000, seed, layout="h36m")
        for _, _, cams in _items(pos2d):
            for c, kp in enumerate(cams):
                w, h = h36m.INTRINSICS[c]["res"]
                worst = min(worst, kp.min(), w - kp[..., 0].max(), h - kp[..., 1].max())
    assert worst > 20, worst   # pixels of margin (about 60 measured over 40 seeds)


def test_other_slots_copy_their_nearest_kept_ancestor(synth):
    expected = {4: 3, 5: 3, 9: 8, 10: 8, 11: 0, 16: 12, 24: 12, 20: 19, 21: 19, 22: 19, 23: 19,
                28: 27, 29: 27, 30: 27, 31: 27}
    for _, _, x in _items(synth[2]["positions_3d"]):
        for slot, src in expected.items():
            np.testing.assert_array_equal(x[:, slot], x[:, src])


def _bones(x):
    parents = np.array(h36m.SKELETON.parents)
    k = x[:, list(h36m.KEEP_32)].astype(np.float64)
    return np.linalg.norm(k[:, 1:] - k[:, parents[1:]], axis=-1)


def test_rigid_bones_one_body_per_subject(synth):
    pos3d = synth[2]["positions_3d"]
    per_subject = {}
    for subject, _, x in _items(pos3d):
        b = _bones(x)
        assert b.std(axis=0).max() < 1e-4 and b.min() > 0.05   # metres, float32 rounding only
        per_subject.setdefault(subject, []).append(b.mean(axis=0))
    for subject, means in per_subject.items():
        assert np.abs(np.array(means) - means[0]).max() < 1e-4, subject
    legs = {s: m[0][[1, 2]].sum() for s, m in per_subject.items()}   # thigh + shin of the right leg
    assert len({round(v, 3) for v in legs.values()}) == len(legs)  # seven different people


def test_left_is_left_and_people_walk_upright(synth):
    """Walking: left = up x direction of travel; l_hip and l_shoulder lie on it, their right twins opposite."""
    sk = h36m.SKELETON
    pair = {n: sk.joint_names.index(n) for n in ("hip", "thorax", "head", "l_hip", "r_hip", "l_shoulder",
                                                 "r_shoulder", "l_foot", "r_foot")}
    for subject, action, x in _items(synth[2]["positions_3d"]):
        k = x[:, list(h36m.KEEP_32)].astype(np.float64)
        assert (k[:, pair["head"], 2] > k[:, pair["thorax"], 2] + 0.2).all()
        assert (k[:, pair["thorax"], 2] > k[:, pair["hip"], 2] + 0.3).all()
        assert 1.5 < k[:, pair["head"], 2].max() < 2.0 and k[:, [pair["l_foot"], pair["r_foot"]], 2].min() > 0
        if not action.startswith("Walking"):
            continue
        v = np.gradient(k[:, pair["hip"], :2], axis=0) * h36m.FPS
        speed = np.linalg.norm(v, axis=1)
        assert 0.7 < speed.mean() < 2.0, (subject, action, speed.mean())   # m/s at 50 fps
        left = np.stack([-v[:, 1], v[:, 0]], -1) / speed[:, None]        # z x forward
        for side in ("hip", "shoulder"):
            ref = pair["hip"] if side == "hip" else pair["thorax"]
            lx = ((k[:, pair["l_" + side], :2] - k[:, ref, :2]) * left).sum(-1)
            rx = ((k[:, pair["r_" + side], :2] - k[:, ref, :2]) * left).sum(-1)
            assert (lx > 0.03).all() and (rx < -0.03).all(), (subject, action, side)


def test_cli_refuses_a_full_directory_and_replaces_humaneva(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["synth", "--out", str(out), "--frames", "300"]) == 0
    assert main(["synth", "--layout", "h36m", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not empty" in err and "Traceback" not in err
    assert sorted(os.listdir(out)) == sorted(synthetic.FILES["humaneva15"])
    assert main(["synth", "--layout", "h36m", "--out", str(out), "--overwrite"]) == 0
    assert sorted(os.listdir(out)) == sorted(FILES)   # one dataset's pair, not both
    assert "data_2d_h36m_gt.npz" in capsys.readouterr().out
    assert main(["synth", "--layout", "mpii", "--out", str(tmp_path / "e")]) == 2
    assert "h36m" in capsys.readouterr().err and not (tmp_path / "e").exists()


def test_overwrite_replaces_a_former_h36m_synth(synth, tmp_path):
    out = tmp_path / "d"
    synthetic.write_synthetic(out, frames=300, layout="h36m")
    synthetic.write_synthetic(out, frames=300, seed=1, layout="h36m", overwrite=True)
    assert sorted(os.listdir(out)) == sorted(FILES)


def test_is_synthetic_dir(synth, tmp_path):
    out = synth[0]
    assert _is_synthetic(out, os.listdir(out))
    assert not _is_synthetic(out, os.listdir(out) + ["notes.txt"])
    real = tmp_path / "real"
    real.mkdir()
    npz.save_2d(real / FILES[0], synth[1]["positions_2d"], {"num_joints": 17})   # a real file: no "synthetic"
    assert not _is_synthetic(real, os.listdir(real))


def _weighted_sums(pos2d, pos3d):
    def w(x, k):
        x = x.astype(np.float64)
        return float((x * (1 + np.arange(x.size).reshape(x.shape) % k)).sum())
    keys = [(s, a) for s in sorted(pos3d) for a in sorted(pos3d[s])]
    return ([len(pos3d[s][a]) for s, a in keys], sum(w(pos3d[s][a], 7) for s, a in keys),
            sum(w(c, 5) for s, a in keys for c in pos2d[s][a]))


@pytest.mark.parametrize("layout, frames, seed, noise, golden", [
    ("humaneva15", 3000, 0, 0.0, ([64, 65, 74, 67, 51, 79, 99, 50, 54, 76, 75, 62, 93, 90, 65, 62, 61, 73, 53, 81, 90,
                                   53, 50, 78, 69, 59, 105, 87, 60, 58, 62, 77, 66, 102, 104, 53, 61, 58, 74, 58, 96,
                                   81], 175856.31984549237, 225628392.92310333)),
    ("coco", 2400, 3, 1.5, ([53, 43, 55, 52, 50, 79, 77, 49, 48, 47, 63, 51, 82, 81, 51, 49, 52, 48, 41, 81, 74, 49,
                             42, 63, 63, 40, 64, 65, 54, 46, 48, 48, 54, 77, 66, 40, 46, 58, 57, 42, 69, 79],
                            142618.48867642693, 201109869.06168365)),
])
def test_humaneva_output_unchanged(layout, frames, seed, noise, golden):
    """Golden figures of the HumanEva writer before Human3.6M was added (weighted sums: any change of
    motion, body or random stream moves them far beyond the tolerance, last-bit float noise does not)."""
    pos2d, pos3d, _ = synthetic.generate(frames, seed, noise, layout)
    lengths, s3, s2 = _weighted_sums(pos2d, pos3d)
    assert lengths == golden[0]
    assert s3 == pytest.approx(golden[1], rel=1e-7) and s2 == pytest.approx(golden[2], rel=1e-7)

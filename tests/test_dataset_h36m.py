"""Human3.6M in VideoPose3D's layout, and datasets of one's own: recognised from the file names,
32 -> 17 joints, each camera's own extrinsics and image size, the standard split, and every bad
input (skeleton, cameras) one line with nothing written.

The npz files are written here in VideoPose3D's layout (data_3d_h36m.npz: 32 world joints in
metres; data_2d_h36m_gt.npz: 4 cameras of pixels), small enough to check every number; the camera
numbers below are typed from VideoPose3D's common/h36m_dataset.py, not taken from raypose.
"""
import json
import os

import numpy as np
import pyarrow.dataset as pads
import pytest

from raypose.cli import main
from raypose.config import DataConfig
from raypose.data import npz
from raypose.data.prepare import prepare
from raypose.data.source import open_source, read_sequences
from raypose.data.table import table_sequences
from raypose.datasets.registry import DATASETS, recognise, resolve
from raypose.errors import UserError

KEEP = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
SYM = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
RES = [(1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002)]   # res_w, res_h of cameras 0..3
# (orientation w,x,y,z camera->world, translation mm) of S1's camera 1 and S9's camera 3
S1_CAM1 = ([0.6157187819480896, -0.764836311340332, -0.14833825826644897, 0.11794740706682205],
           [1761.278564453125, -5078.0068359375, 1606.2650146484375])
S9_CAM3 = ([0.5879399180412292, -0.7823407053947449, 0.1427614390850067, -0.14794869720935822],
           [-1696.04345703125, -3827.099853515625, 1591.4127197265625])
FRAMES = {("S1", "Walking 1"): 30, ("S1", "Eating 2"): 24, ("S5", "Walking 1"): 28, ("S9", "Walking 1"): 26,
          ("S9", "Sitting 1"): 22}
EXTRA = ("S1", "Eating 2")   # its 2D has two frames more than its 3D, as H36M's videos do


def _poses(rng, t, joints):
    """People-sized world poses: joints within ~1 m of a point 1 m above the floor, moving."""
    base = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), 1.0])
    drift = np.linspace(0, 0.5, t)[:, None, None] * rng.normal(size=(1, 1, 3))
    return (base + drift + rng.normal(0, 0.3, (t, joints, 3))).astype(np.float32)


def _write(folder, name="h36m", joints=32, per_camera=False, cams=4, only_2d=("S11",)):
    """data_3d_<name>.npz and data_2d_<name>_gt.npz as VideoPose3D writes them."""
    rng = np.random.default_rng(0)
    pos3d, pos2d = {}, {}
    for (s, a), t in FRAMES.items():
        world = _poses(rng, t, joints)
        pos3d.setdefault(s, {})[a] = [_poses(rng, t, joints) for _ in range(cams)] if per_camera else world
        extra = 2 if (s, a) == EXTRA else 0
        pos2d.setdefault(s, {})[a] = [rng.uniform(0, 1000, (t + extra, 17, 2)).astype(np.float32)
                                      for _ in range(cams)]
    for s in only_2d:
        pos2d[s] = {"Walking 1": [rng.uniform(0, 1000, (20, 17, 2)).astype(np.float32) for _ in range(cams)]}
    os.makedirs(folder, exist_ok=True)
    npz.save_npz(os.path.join(folder, f"data_3d_{name}.npz"), positions_3d=pos3d)
    npz.save_2d(os.path.join(folder, f"data_2d_{name}_gt.npz"), pos2d,
                {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": SYM})
    return pos2d, pos3d


def _qrot(q, v):
    """VideoPose3D's quaternion rotation (common/quaternion.py), written out again."""
    qvec = np.broadcast_to(q[1:], v.shape)
    uv = np.cross(qvec, v)
    uuv = np.cross(qvec, uv)
    return v + 2 * (q[0] * uv + uuv)


def _world_to_camera(x, orientation, translation_mm):
    q = np.asarray(orientation, np.float64)
    q_inverse = np.concatenate([q[:1], -q[1:]]) / np.linalg.norm(q)
    return _qrot(q_inverse, x.astype(np.float64) - np.asarray(translation_mm) / 1000)


@pytest.fixture(scope="module")
def h36m_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("h36m")
    pos2d, pos3d = _write(folder)
    return folder, pos2d, pos3d


def test_h36m_is_recognised_prepared_and_read_back(h36m_dir, tmp_path, capsys):
    folder, pos2d, pos3d = h36m_dir
    assert recognise(folder) == "h36m"
    out = tmp_path / "prepared"
    assert main(["prepare", "--npz-dir", str(folder), "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "3 subjects (S1, S5, S9), left out (2D but no 3D): S11" in stdout
    assert f"{sum(FRAMES.values())} frames of 3D (8 extra 2D frames cut), {4 * sum(FRAMES.values())} rows" in stdout
    t = pads.dataset(out, format="parquet", partitioning="hive").to_table()
    seqs = {k: (kp, pose) for k, kp, pose in table_sequences(t)}
    assert sorted({k[2] for k in seqs}) == ["C1", "C2", "C3", "C4"]
    # the split: S1, S5 train, S9 tests (S6, S7, S8, S11 have no data here)
    split = dict(zip(t.column("subject").to_pylist(), t.column("split").to_pylist()))
    assert split == {"S1": "train", "S5": "train", "S9": "test"}
    # 17 of the 32 joints, in KEEP_32 order, each camera's own extrinsics, root-relative
    for (s, a, c), (q, t_mm) in ((("S1", "Walking 1", "C2"), S1_CAM1), (("S9", "Sitting 1", "C4"), S9_CAM3)):
        want = _world_to_camera(pos3d[s][a], q, t_mm)[:, KEEP]
        np.testing.assert_allclose(seqs[(s, a, c)][1], want - want[:, :1], atol=2e-6)
    # 2D normalised by each camera's own image size: C1 and C4 are 1000 x 1002, C2 and C3 1000 x 1000
    for c, (w, h) in enumerate(RES):
        kp = pos2d["S5"]["Walking 1"][c]
        np.testing.assert_allclose(seqs[("S5", "Walking 1", f"C{c + 1}")][0], kp / w * 2 - [1, h / w], atol=1e-6)
    # the two extra 2D frames are cut off, the rest kept as they were
    rows = t.filter((pads.field("camera") == "C3") & (pads.field("action") == EXTRA[1])).sort_by("frame")
    px = np.asarray(rows.column("keypoints_px").to_pylist(), np.float32).reshape(-1, 17, 2)
    np.testing.assert_array_equal(px, pos2d["S1"]["Eating 2"][2][:FRAMES[EXTRA]])
    assert len(seqs[(*EXTRA, "C3")][1]) == FRAMES[EXTRA] == len(pos2d["S1"]["Eating 2"][2]) - 2
    # a run on the prepared table gets the dataset back, and the same frames as from the npz files
    src, direct = open_source(DataConfig(path=str(out))), open_source(DataConfig(path=str(folder)))
    assert src.dataset == direct.dataset == DATASETS["h36m"]
    assert (src.num_joints_2d, src.symmetry) == (17, tuple(SYM))
    assert sorted(direct.chunks) == sorted(src.chunks) and direct.dataset.image_size("S9", 3) == (1000, 1002)
    for (k1, kp1, p1), (k2, kp2, p2) in zip(read_sequences(src, src.chunks), read_sequences(direct, src.chunks)):
        assert k1 == k2 and np.array_equal(kp1, kp2) and np.array_equal(p1, p2)


# ---- a dataset of one's own: its skeleton and cameras from files -----------------------------------

def _skeleton_file(folder, joints=17):
    sk = DATASETS["h36m"].skeleton
    path = os.path.join(folder, f"skel{joints}.json")
    parents = list(sk.parents[:joints])
    sides = [[j for j in side if j < joints] for side in (sk.left, sk.right)]
    with open(path, "w") as f:
        json.dump({"parents": parents, "joints_left": sides[0][:len(sides[1])],
                   "joints_right": sides[1][:len(sides[0])]}, f)
    return path


def _cameras_file(folder, subjects=("S1", "S5", "S9"), cams=4, posed=True, drop=None, **change):
    entries = {}
    for s in subjects:
        entries[s] = []
        for c in range(cams):
            cam = {"res_w": RES[c][0], "res_h": RES[c][1]}
            if posed:
                cam.update(orientation=S1_CAM1[0], translation=S1_CAM1[1], units="mm")
            entries[s].append({k: v for k, v in dict(cam, **change).items() if k != drop})
    path = os.path.join(folder, "cams.json")
    with open(path, "w") as f:
        json.dump(entries, f)
    return path


def test_own_dataset_with_skeleton_and_cameras_files(tmp_path):
    """World 3D with a cameras file; 3D given per camera with image sizes only."""
    world, per_cam = tmp_path / "world", tmp_path / "percam"
    _, pos3d = _write(world, "mine", joints=17)
    data = npz.load_dataset(world, dataset=resolve(world, skeleton=_skeleton_file(tmp_path),
                                                   cameras=_cameras_file(tmp_path)))
    assert data.dataset.name == "mine" and data.metadata["left_out_subjects"] == ["S11"]
    src = open_source(DataConfig(path=str(world), skeleton=_skeleton_file(tmp_path), cameras=_cameras_file(tmp_path)))
    key, kp, pose = read_sequences(src, [("S9", "Walking 1")])[3]
    want = _world_to_camera(pos3d["S9"]["Walking 1"], *S1_CAM1)   # the file gives every camera S1's C2
    assert key == ("S9", "Walking 1", "C4")
    np.testing.assert_allclose(pose, want - want[:, :1], atol=2e-6)
    _, pos3d = _write(per_cam, "mine", joints=17, per_camera=True)
    src = open_source(DataConfig(path=str(per_cam), skeleton=_skeleton_file(tmp_path),
                                 cameras=_cameras_file(tmp_path, posed=False)))
    assert src.dataset.cameras.in_camera_frame
    seqs = read_sequences(src, [("S5", "Walking 1")])
    assert [k for k, _, _ in seqs] == [("S5", "Walking 1", f"C{c + 1}") for c in range(4)]
    for c, (_, _, pose) in enumerate(seqs):
        want = pos3d["S5"]["Walking 1"][c]
        np.testing.assert_allclose(pose, want - want[:, :1], atol=1e-6)


def _refused(tmp_path, folder, *needles, **kw):
    """prepare() and open_source() both refuse with one line holding `needles`; nothing written."""
    out = tmp_path / "out"
    with pytest.raises(UserError) as e:
        prepare(str(folder), str(out), **kw)
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    with pytest.raises(UserError) as e:
        open_source(DataConfig(path=str(folder), **kw))
    assert str(e.value) == msg
    return msg


def test_bad_skeletons_and_cameras_are_one_line(tmp_path):
    x = tmp_path / "x"
    _write(x, "x", joints=16)
    msg = _refused(tmp_path, x, skeleton=_skeleton_file(tmp_path))
    assert msg == f"{x / 'data_3d_x.npz'}: 3D has 16 joints; expected the skeleton's 17"
    _refused(tmp_path, x, "data_3d_x.npz", "not built in", "--skeleton")
    h = tmp_path / "h"
    _write(h, joints=16)
    _refused(tmp_path, h, "data_3d_h36m.npz: 3D has 16 joints; expected the skeleton's 17 (or 32, of which h36m "
             "keeps 17)")
    mine = tmp_path / "mine"
    _write(mine, "mine", joints=17)
    skel = _skeleton_file(tmp_path)
    _refused(tmp_path, mine, "data_3d_mine.npz", "world coordinates", "--cameras", skeleton=skel)
    _refused(tmp_path, mine, "data_2d_mine_gt.npz", "'S5'", "cams.json", "no cameras", "S1, S9",
             skeleton=skel, cameras=_cameras_file(tmp_path, subjects=("S1", "S9")))
    _refused(tmp_path, mine, "data_2d_mine_gt.npz", "'S1'", "C4", "cams.json", "3",
             skeleton=skel, cameras=_cameras_file(tmp_path, cams=3))
    _refused(tmp_path, mine, "cams.json", "'S1'", "orientation [0.0, 0.0, 0.0, 0.0] has zero length",
             skeleton=skel, cameras=_cameras_file(tmp_path, orientation=[0, 0, 0, 0]))
    _refused(tmp_path, mine, "cams.json", "units 'cm'", skeleton=skel, cameras=_cameras_file(tmp_path, units="cm"))
    _refused(tmp_path, mine, "cams.json", "missing 'translation'", skeleton=skel,
             cameras=_cameras_file(tmp_path, drop="translation"))


def test_split_messages_name_the_datasets_own_subjects_and_actions(h36m_dir, tmp_path):
    from raypose.data import splits
    keys = [("S1", "Walking 1"), ("S9", "Eating 2")]
    with pytest.raises(UserError, match=r"selects no training chunks; expected action prefixes such as Walking$"):
        splits.select(keys, "videopose3d", "Dance", dataset=DATASETS["h36m"])
    with pytest.raises(UserError, match=r"selects no test chunks; expected test subjects S9, S11 \(the data has S1\)"):
        splits.select(keys[:1], "videopose3d", dataset=DATASETS["h36m"])
    with pytest.raises(UserError, match="Walk,Jog,Box"):
        splits.select([("Train/S1", "Walking 1 chunk0")], "videopose3d", "Dance")

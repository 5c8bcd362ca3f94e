"""Checks on a dataset's files and what a run keeps of them: the 2D layout's name from the 2D file
(so COCO keypoints never pass as a run's own 17 joints), Human3.6M's exact 32 joints, subjects in
natural order, one source for each action order, no booleans for joint indices.

The npz pair is written here in VideoPose3D's layout: 32-joint world 3D and 17-joint 2D in 4 cameras,
under detection file names as VideoPose3D publishes them for Human3.6M.
"""
import dataclasses
import json
import os

import numpy as np
import pandas as pd
import pytest

from raypose.cli import main
from raypose.config import DataConfig
from raypose.data import npz
from raypose.data.source import open_source, source_layout
from raypose.datasets import h36m, keypoints
from raypose.datasets import registry as dataset
from raypose.datasets.keypoints import COCO
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import read_skeleton
from raypose.errors import UserError
from raypose.evaluation import report
from raypose.interop.inputs import read_2d
from raypose.interop.tracks import prepare
from raypose.viz import plots

SYM_H36M = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
SYM_COCO = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]


def _write(folder, files_2d, joints_3d=32):
    """data_3d_h36m.npz (S1 and S9, one action each) and the given 2D files {keypoints: metadata}."""
    rng = np.random.default_rng(0)
    pos3d = {s: {"Walking 1": (rng.normal(0, 0.3, (12, joints_3d, 3)) + [0, 0, 1]).astype(np.float32)}
             for s in ("S1", "S9")}
    os.makedirs(folder, exist_ok=True)
    npz.save_npz(os.path.join(folder, "data_3d_h36m.npz"), positions_3d=pos3d)
    for kp, meta in files_2d.items():
        pos2d = {s: {"Walking 1": [rng.uniform(0, 1000, (12, 17, 2)).astype(np.float32) for _ in range(4)]}
                 for s in ("S1", "S9")}
        npz.save_2d(os.path.join(folder, f"data_2d_h36m_{kp}.npz"), pos2d, meta)
    return str(folder)


def _layout(folder, kp):
    cfg = dataclasses.replace(DataConfig(), path=folder, keypoints=kp)
    return source_layout(open_source(cfg))


@pytest.fixture(scope="module")
def h36m_dir(tmp_path_factory):
    """VideoPose3D's Human3.6M 2D files: CPN's in Human3.6M's order, Detectron's COCO-ordered, and
    one's own detections whose file names no layout."""
    return _write(tmp_path_factory.mktemp("h36m"), {
        "gt": {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": SYM_H36M},
        "cpn_ft_h36m_dbb": {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": SYM_H36M},
        "detectron_pt_coco": {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": SYM_COCO},
        "mine": {"num_joints": 17, "keypoints_symmetry": SYM_H36M},
    })


def _coco_json(path):
    """One person in 5 frames as a detector's COCO keypoint results (layout 'coco')."""
    rng = np.random.default_rng(1)
    dets = [{"image_id": i, "category_id": 1, "score": 0.9,
             "keypoints": [float(v) for xy in rng.uniform(100, 500, (17, 2)) for v in (*xy, 0.9)]}
            for i in range(5)]
    path.write_text(json.dumps(dets))
    return str(path)


def test_run_names_its_2d_layout_from_the_2d_file(h36m_dir):
    """Not only ground truth: detections carry their layout name (VideoPose3D's metadata['layout_name'])."""
    assert _layout(h36m_dir, "gt").name_2d == "h36m"
    assert _layout(h36m_dir, "cpn_ft_h36m_dbb").name_2d == "h36m"
    assert _layout(h36m_dir, "detectron_pt_coco").name_2d == "coco"
    assert _layout(h36m_dir, "mine").name_2d is None          # a file that names none stays unnamed


def test_a_prepared_table_keeps_the_2d_layout_name(h36m_dir, tmp_path):
    out = tmp_path / "table"
    assert main(["prepare", "--npz-dir", h36m_dir, "--out", str(out), "--keypoints", "detectron_pt_coco"]) == 0
    assert _layout(str(out), "gt").name_2d == "coco"


def test_coco_keypoints_are_not_taken_as_a_run_s_own_17_joints(h36m_dir, tmp_path):
    """COCO detections given to a run trained on CPN's (H36M-ordered) 2D: refused by name; to a run
    trained on Detectron's COCO-ordered 2D: its own layout; to a run whose 17-joint 2D is unnamed:
    one line, as the run cannot tell."""
    coco = read_2d(_coco_json(tmp_path / "det.json"), image_size=(1000, 1000))
    with pytest.raises(UserError, match="no mapping onto the 17 joints"):
        prepare(coco, _layout(h36m_dir, "cpn_ft_h36m_dbb"), "det.json")
    assert len(prepare(coco, _layout(h36m_dir, "detectron_pt_coco"), "det.json").keys) == 1
    mine = _layout(h36m_dir, "mine")          # unnamed, but H36M's symmetry: taken as H36M's order
    with pytest.raises(UserError, match="no mapping onto the 17 joints"):
        prepare(coco, mine, "det.json")
    old_coco_run = dataclasses.replace(mine, left_2d=tuple(COCO.symmetry[0]), right_2d=tuple(COCO.symmetry[1]))
    assert len(prepare(coco, old_coco_run, "det.json").keys) == 1   # a run from before names: COCO's pairs
    with pytest.raises(UserError) as e:       # a symmetry no known layout has: the run cannot tell
        prepare(coco, dataclasses.replace(mine, left_2d=(1,), right_2d=(2,)), "det.json")
    msg = str(e.value)
    assert msg.startswith("det.json: ") and "\n" not in msg
    assert "2D layout is unknown" in msg and "expected 2D in the run's own layout" in msg
    assert "detectron_pt_coco" in msg   # the fix names which of VideoPose3D's files are COCO-ordered
    unnamed = dataclasses.replace(coco, layout_name=None)    # a file that names no layout: the run's own
    assert len(prepare(unnamed, _layout(h36m_dir, "mine"), "det.npz").keys) == 1


def test_coco_image_size_is_never_assumed(h36m_dir, tmp_path):
    """A COCO-ordered run still wants COCO keypoints' image size (COCO files name every detector's output)."""
    coco = read_2d(_coco_json(tmp_path / "det.json"))
    with pytest.raises(UserError, match="no image size"):
        prepare(coco, _layout(h36m_dir, "detectron_pt_coco"), "det.json")


def test_a_layout_name_that_contradicts_the_2d_is_refused(tmp_path):
    folder = _write(tmp_path / "d", {"gt": {"layout_name": "humaneva15", "num_joints": 17}})
    with pytest.raises(UserError, match=r"layout_name.*'humaneva15'.*15 joints.*17"):
        npz.load_dataset(folder, "gt")


@pytest.mark.parametrize("joints", [28, 31, 33])
def test_h36m_3d_needs_exactly_32_joints(tmp_path, joints):
    folder = _write(tmp_path / "d", {"gt": {"layout_name": "h36m", "num_joints": 17}}, joints_3d=joints)
    with pytest.raises(UserError) as e:
        npz.load_dataset(folder, "gt")
    assert f"3D has {joints} joints" in str(e.value) and "32" in str(e.value) and "\n" not in str(e.value)
    ok = _write(tmp_path / "ok", {"gt": {"layout_name": "h36m", "num_joints": 17}}, joints_3d=32)
    assert npz.load_dataset(ok, "gt").positions_3d["S1"]["Walking 1"].shape == (12, 17, 3)


def test_subjects_in_natural_order():
    rows = [{"subject": s, "action": "Walking", "frames": 1, "mpjpe": 1.0, "p_mpjpe": 1.0, "n_mpjpe": 1.0,
             "mpjve": 1.0} for s in ("S11", "S9", "S1", "Validate/S10", "Validate/S2")]
    table = report.summary_table(pd.DataFrame(rows), metrics=("mpjpe",))
    assert [s for _, s in table.index] == ["S1", "S9", "S11", "Validate/S2", "Validate/S10", "All"]
    assert plots.subject_key is report.subject_key   # the heat map's rows: the same order
    assert sorted(["S1", "S9", "S11", "²"], key=report.subject_key)[:3] == ["S1", "S9", "S11"]


def test_action_orders_have_one_source():
    assert report.action_order("h36m") is h36m.ACTIONS
    assert report.ACTION_ORDER is dataset.DATASETS["humaneva15"].action_order
    assert report.action_order("mocap17") == ()
    assert not hasattr(report, "ACTION_ORDERS")


@pytest.mark.parametrize("parents", [[-1, True, 1], [-1, 0, False]])
def test_boolean_joint_indices_are_refused(tmp_path, parents):
    path = tmp_path / "sk.json"
    path.write_text(json.dumps({"parents": parents, "joints_left": [1], "joints_right": [2]}))
    with pytest.raises(UserError, match="boolean") as e:
        read_skeleton(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    path.write_text(json.dumps({"parents": [-1, 0, 1], "joints_left": [True], "joints_right": [2]}))
    with pytest.raises(UserError, match="joints_left.*boolean"):
        read_skeleton(path)


def test_mapping_refuses_coco_onto_an_unnamed_17():
    with pytest.raises(UserError, match="run's 2D layout is unknown"):
        keypoints.mapping("coco", 17, 17, None)
    assert keypoints.mapping(None, 17, 17, None) is not None
    assert keypoints.mapping("coco", 17, 17, "coco") is not None
    assert keypoints.mapping("coco", 17, 15, None) is keypoints.coco_to_humaneva


def test_layout_roundtrip_keeps_the_name(h36m_dir):
    lay = _layout(h36m_dir, "detectron_pt_coco")
    assert Layout.from_dict(lay.to_dict()).name_2d == "coco" and lay.joints_2d == 17

"""Human3.6M's layout end to end on synthetic files written by `raypose synth --layout h36m`: train
(local mode), evaluate, predict, plot and export with 17 joints and 4 cameras, through the CLI; and
the same files renamed into a dataset of one's own, with its skeleton and cameras files."""
import json
import os
import shutil

import numpy as np
import pytest

from raypose.cli import main
from raypose.data.npz import read_npz
from raypose.datasets import h36m
from raypose.run import Run

TINY = ["--channels", "16", "--members", "2", "--iterations", "1", "--epochs", "1",
        "--set", "run.local=true", "--set", "model.dropout=0.1", "--set", "train.lr=0.003"]


@pytest.fixture(scope="module")
def h36m_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    assert main(["synth", "--layout", "h36m", "--frames", "1500", "--out", str(root / "npz")]) == 0
    assert main(["train", "--data", str(root / "npz"), "--out", str(root / "run"), *TINY]) == 0
    return root


def test_a_human36m_run_trains_evaluates_predicts_and_draws(h36m_run, tmp_path, capsys):
    run = Run.open(h36m_run / "run")
    layout = run.layout
    assert layout.joints_2d == layout.joints_3d == 17 and layout.skeleton.parents == h36m.SKELETON.parents
    assert layout.fps == 50 and layout.image_size("C1") == (1000, 1002) and layout.image_size("C2") == (1000, 1000)
    assert set(run.focals()) == {"*", "C1", "C2", "C3", "C4"}          # a focal length fitted per camera
    cal = run.record(run.iteration())["calibration"]
    assert cal["variants"][-1].startswith("gaps")                      # the radii are calibrated here too
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run.uri), "--no-curve", "--no-tta"]) == 0
    out = capsys.readouterr().out
    assert "| p_mpjpe | S9" in out and "| p_mpjpe | S11" in out and "Walking" in out   # the test subjects
    ev = json.loads((h36m_run / "run" / "metrics.json").read_text())["evaluation"]
    assert ev["per_joint"]["joint_names"] == list(h36m.SKELETON.joint_names)
    assert ev["uncertainty"]["calibrated"]
    pred = tmp_path / "p.npz"
    assert main(["predict", "--run", str(run.uri), "--input", str(h36m_run / "npz" / "data_2d_h36m_gt.npz"),
                 "--out", str(pred)]) == 0
    d = read_npz(pred)
    walk = d["positions_3d"]["S9"]["Walking 1"]
    assert len(walk) == 4 and walk[3].shape[1:] == (17, 3) and np.isfinite(walk[3]).all()
    assert d["radius"]["S9"]["Walking 1"][3].shape[1:] == (17, 3) and "trajectory" in d
    assert d["metadata"]["fps"] == 50 and d["metadata"]["input"]["tracks"]["S9/Walking 1/C4"]["image_size"] == [
        1000, 1002]
    assert main(["plot", "--pred", str(pred), "--animate", "S9/Walking 1", "--camera", "C4",
                 "--out", str(tmp_path / "w.gif")]) == 0
    assert main(["export", str(pred), "--format", "bvh", "--out", str(tmp_path / "bvh")]) == 0
    summary = json.loads((tmp_path / "bvh" / "raypose_export.json").read_text())
    first = next(t for t in summary["tracks"] if t.get("file"))
    text = (tmp_path / "bvh" / first["file"]).read_text()
    assert "Frame Time: 0.02" in text and text.count("JOINT") == 16       # 50 fps, 17 joints


def test_your_own_dataset_with_its_skeleton_and_cameras(h36m_run, tmp_path, capsys):
    """The synthetic H36M files as a dataset raypose does not know: the skeleton and cameras come
    from files, and a cameras file that misses a subject the data uses is one line."""
    data = tmp_path / "mocap"
    data.mkdir()
    shutil.copy(h36m_run / "npz" / "data_2d_h36m_gt.npz", data / "data_2d_mocap_gt.npz")
    d3 = read_npz(h36m_run / "npz" / "data_3d_h36m.npz")
    keep = list(h36m.KEEP_32)
    np.savez(data / "data_3d_mocap.npz", positions_3d=np.array(
        {s: {a: x[:, keep] for a, x in acts.items()} for s, acts in d3["positions_3d"].items()}, dtype=object))
    skel = {"parents": list(h36m.SKELETON.parents), "joints_left": list(h36m.SKELETON.left),
            "joints_right": list(h36m.SKELETON.right), "joint_names": list(h36m.SKELETON.joint_names)}
    (tmp_path / "skeleton.json").write_text(json.dumps(skel))
    cams = {s: [{"orientation": list(q), "translation": list(t), "units": "mm",
                 "res_w": h36m.INTRINSICS[i]["res"][0], "res_h": h36m.INTRINSICS[i]["res"][1]}
                for i, (q, t) in enumerate(h36m.EXTRINSICS[s])] for s in h36m.SUBJECTS}
    (tmp_path / "cameras.json").write_text(json.dumps(cams))
    out = tmp_path / "prep"
    assert main(["prepare", "--npz-dir", str(data), "--out", str(out), "--skeleton", str(tmp_path / "skeleton.json"),
                 "--cameras", str(tmp_path / "cameras.json"), "--split", "seed"]) == 0
    assert "17 2D joints" in capsys.readouterr().out
    meta = json.loads((out / "_raypose.json").read_text())
    assert meta["dataset"]["name"] == "mocap" and meta["dataset"]["image_sizes"]["C4"] == [1000, 1002]
    del cams["S9"]
    (tmp_path / "cameras.json").write_text(json.dumps(cams))
    assert main(["prepare", "--npz-dir", str(data), "--out", str(tmp_path / "p2"), "--skeleton",
                 str(tmp_path / "skeleton.json"), "--cameras", str(tmp_path / "cameras.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "S9" in err and not os.path.exists(tmp_path / "p2")

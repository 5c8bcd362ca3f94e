"""A dataset of one's own after training: the run keeps its skeleton and cameras (layout.json), so
evaluate and plot work with the files gone; other data is read with its own dataset and refused
where its skeleton is not the run's; a prepared table refuses files it would ignore; the 3D file's
metadata names the train/test subjects and the frame rate.

The data are `raypose synth` (HumanEva-like, 15 joints, 3 cameras) renamed into a dataset `mocap`
with subjects S1..S6, given its skeleton and cameras by files, trained once (tiny, local mode).
"""
import json
import os
import shutil

import numpy as np
import pytest

from raypose.cli import main
from raypose.config import DataConfig
from raypose.data.npz import read_npz
from raypose.data.source import open_source
from raypose.datasets.cameras import EXTRINSICS
from raypose.datasets.registry import resolve
from raypose.datasets.skeleton import HUMANEVA
from raypose.errors import UserError
from raypose.run import Run

SUBJECTS = {"Train/S1": "S1", "Train/S2": "S2", "Train/S3": "S3",
            "Validate/S1": "S4", "Validate/S2": "S5", "Validate/S3": "S6"}
META = {"train_subjects": ["S1", "S2", "S3"], "test_subjects": ["S4", "S5", "S6"], "fps": 25}
TINY = ["--channels", "8", "--widths", "3,3", "--members", "2", "--iterations", "1", "--epochs", "1",
        "--calibration-holdout", "0", "--actions", "Walk", "--set", "run.local=true", "--set", "model.dropout=0.1"]
QUICK = ["--no-curve", "--no-tta"]


def _skeleton(path, swap=False):
    left, right = HUMANEVA.left, HUMANEVA.right
    left, right = (right, left) if swap else (left, right)
    path.write_text(json.dumps({"parents": list(HUMANEVA.parents), "joints_left": list(left),
                                "joints_right": list(right)}))
    return str(path)


def _cameras(path):
    """HumanEva's extrinsics under the new subject names (S4..S6 are S1..S3's sessions)."""
    cams = {new: [{"orientation": q, "translation": t, "units": "mm", "res_w": 640, "res_h": 480}
                  for q, t in EXTRINSICS[old.split("/")[1]]] for old, new in SUBJECTS.items()}
    path.write_text(json.dumps(cams))
    return str(path)


def _own(synth, folder, name="mocap", meta=META):
    """The synthetic files as dataset `name` in `folder`; the 3D's metadata as docs/usage.md shows."""
    d3 = read_npz(synth / "data_3d_humaneva15.npz")
    d2 = read_npz(synth / "data_2d_humaneva15_gt.npz")
    os.makedirs(folder, exist_ok=True)
    pos3d = {SUBJECTS[s]: v for s, v in d3["positions_3d"].items()}
    extra = {} if meta is None else {"metadata": np.array(meta, dtype=object)}
    np.savez(folder / f"data_3d_{name}.npz", positions_3d=np.array(pos3d, dtype=object), **extra)
    np.savez(folder / f"data_2d_{name}_gt.npz", positions_2d=np.array(
        {SUBJECTS[s]: v for s, v in d2["positions_2d"].items()}, dtype=object),
        metadata=np.array(d2["metadata"], dtype=object))
    return folder


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """(root, run): trained from relative --skeleton/--cameras paths, whose files are then deleted."""
    root = tmp_path_factory.mktemp("own")
    assert main(["synth", "--frames", "400", "--out", str(root / "synth")]) == 0
    _own(root / "synth", root / "mocap")
    (root / "files").mkdir()
    _skeleton(root / "files" / "sk.json")
    _cameras(root / "files" / "cams.json")
    here = os.getcwd()
    os.chdir(root / "files")
    try:
        assert main(["train", "--data", str(root / "mocap"), "--skeleton", "sk.json", "--cameras", "cams.json",
                     "--out", str(root / "run"), *TINY]) == 0
    finally:
        os.chdir(here)
    shutil.rmtree(root / "files")
    return root, root / "run"


def _fails(argv, capsys, *needles):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(n in err for n in needles), err
    return err


def test_a_run_evaluates_and_animates_without_its_skeleton_and_cameras_files(own, tmp_path, capsys):
    root, run = own
    data = Run.open(run).config.data
    assert data.skeleton == str(root / "files" / "sk.json") and data.cameras == str(root / "files" / "cams.json")
    layout = Run.open(run).layout
    assert layout.fps == 25 and layout.dataset["cameras"]["subjects"]["S4"][0]["orientation"]
    os.chdir(tmp_path)   # another folder than the one the run was trained from
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), *QUICK]) == 0
    out = capsys.readouterr().out
    assert "| p_mpjpe | S4" in out and "| p_mpjpe | S6" in out and "| p_mpjpe | S1 " not in out
    assert main(["plot", "--run", str(run), "--animate", "S5/Walking 1 chunk0", "--out", "w.gif"]) == 0
    assert (tmp_path / "w.gif").stat().st_size > 0


def test_a_run_without_layout_json_never_reads_the_files_again(own, tmp_path):
    _, run = own
    (tmp_path / "r").mkdir()
    shutil.copy(run / "config.toml", tmp_path / "r" / "config.toml")
    with pytest.raises(UserError, match="layout.json: not found in a run of data.skeleton"):
        assert Run(tmp_path / "r").layout is None


def test_evaluate_on_other_data_reads_it_with_its_own_dataset(own, tmp_path, capsys):
    root, run = own
    capsys.readouterr()   # HumanEva's files: the run's mocap name, skeleton and cameras do not carry over
    assert main(["evaluate", "--run", str(run), "--data", str(root / "synth"), *QUICK]) == 0
    assert "| p_mpjpe | Validate/S1" in capsys.readouterr().out
    lab = _own(root / "synth", tmp_path / "lab", name="lab")
    sk, cams = _skeleton(tmp_path / "sk.json"), _cameras(tmp_path / "cams.json")
    _fails(["evaluate", "--run", str(run), "--data", str(lab), *QUICK], capsys, "'lab'", "no skeleton")
    _fails(["evaluate", "--run", str(run), "--skeleton", sk, *QUICK], capsys, "--skeleton", "only with --data")
    swapped = _skeleton(tmp_path / "swapped.json", swap=True)
    err = _fails(["evaluate", "--run", str(run), "--data", str(lab), "--skeleton", swapped, "--cameras", cams,
                  *QUICK], capsys, "differs from the run's", "left [5, 6, 7", "right [2, 3, 4")
    assert "parents" not in err
    assert main(["evaluate", "--run", str(run), "--data", str(lab), "--dataset", "lab", "--skeleton", sk,
                 "--cameras", cams, *QUICK]) == 0
    ev = json.loads((run / "metrics.json").read_text())["evaluation"]
    assert ev["data"] == f"npz {lab}" and {r["subject"] for r in ev["table"]} == {"S4", "S5", "S6"}


def test_a_prepared_table_refuses_a_skeleton_cameras_or_other_dataset(own, tmp_path, capsys):
    root, run = own
    sk, cams = _skeleton(tmp_path / "sk.json"), _cameras(tmp_path / "cams.json")
    table = tmp_path / "table"
    assert main(["prepare", "--npz-dir", str(root / "mocap"), "--out", str(table), "--skeleton", sk,
                 "--cameras", cams]) == 0
    assert open_source(DataConfig(path=str(table), dataset="mocap")).dataset.skeleton.left == HUMANEVA.left
    for flag, value in (("--skeleton", sk), ("--cameras", cams)):
        _fails(["evaluate", "--run", str(run), "--data", str(table), flag, value, *QUICK], capsys,
               "prepared table", f"expected no {flag}", "raypose prepare")
        _fails(["train", "--data", str(table), flag, value, "--out", str(tmp_path / "r"), *TINY], capsys,
               "prepared table")
        assert not (tmp_path / "r" / "config.toml").exists()
    _fails(["evaluate", "--run", str(run), "--data", str(table), "--dataset", "h36m", *QUICK], capsys,
           "prepared from dataset 'mocap'")


def test_the_3d_metadata_names_subjects_and_fps(own, tmp_path, capsys):
    root, _ = own
    d = resolve(root / "mocap", skeleton=_skeleton(tmp_path / "sk.json"))
    assert d.train_subjects == ("S1", "S2", "S3") and d.test_subjects == ("S4", "S5", "S6") and d.fps == 25.0
    sk, cams = str(tmp_path / "sk.json"), _cameras(tmp_path / "cams.json")
    bad = [({"train_subjects": "S1", "test_subjects": ["S4"]}, "metadata['train_subjects']"),
           ({"train_subjects": ["S1"]}, "both train_subjects and test_subjects"),
           ({"train_subjects": ["S1", "S4"], "test_subjects": ["S4"]}, "in both"),
           ({"train_subjects": ["S1"], "test_subjects": ["S4", "S4"]}, "twice"),
           ({"fps": "fast"}, "metadata['fps']")]
    for i, (meta, needle) in enumerate(bad):
        data = _own(root / "synth", tmp_path / f"bad{i}", meta=meta)
        _fails(["prepare", "--npz-dir", str(data), "--out", str(tmp_path / f"p{i}"), "--skeleton", sk,
                "--cameras", cams], capsys, needle)
        assert not (tmp_path / f"p{i}").exists()
    typo = _own(root / "synth", tmp_path / "typo", meta={"train_subjects": ["S1", "S2"], "test_subjects": ["S4", "S7"]})
    _fails(["train", "--data", str(typo), "--skeleton", sk, "--cameras", cams, "--out", str(tmp_path / "r"), *TINY],
           capsys, "metadata['test_subjects'] names ['S7']")
    assert not (tmp_path / "r" / "config.toml").exists()

"""Issue 25: what a tester found in 340 cases. Every refusal is exit status 2 and one line naming the
file or key, with nothing written (or changed) anywhere under the test's directory."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_overwrite import refused

from raypose import config as C
from raypose.cli import main
from raypose.data import synthetic as SY
from raypose.data.npz import MAX_3D, load_dataset, read_npz, save_npz
from raypose.data.source import open_source
from raypose.datasets.cameras import Camera, CameraSet
from raypose.datasets.layout import Layout
from raypose.errors import UserError
from raypose.interop.inputs import read_2d
from raypose.run import Run
from raypose.tune import search as S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KP = [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]]


def cli(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def run(local_run, tmp_path):
    """A private copy of the session's tiny trained run, with a 2D input and a prediction beside it."""
    dst = tmp_path / "runs" / "small"
    shutil.copytree(local_run, dst)
    return dst


def _npz_2d(path, frames=30, seed=0):
    kp = (np.random.default_rng(seed).uniform(0, 1, (frames, 15, 2)) * [640, 480]).astype(np.float32)
    save_npz(path, positions_2d={"S1": {"Walk 1": [kp]}}, metadata={})
    return path


def _copy_data(src, dst, meta_2d=None, meta_3d=None, change_3d=None, name="humaneva15"):
    """The synthetic npz pair (as dataset `name`) with the 2D metadata updated, 3D metadata set, and
    `change_3d(positions_3d)` applied."""
    d2 = read_npz(os.path.join(src, "data_2d_humaneva15_gt.npz"))
    d3 = read_npz(os.path.join(src, "data_3d_humaneva15.npz"))
    if change_3d:
        change_3d(d3["positions_3d"], d2["positions_2d"])
    os.makedirs(dst, exist_ok=True)
    save_npz(os.path.join(dst, f"data_2d_{name}_gt.npz"), positions_2d=d2["positions_2d"],
             metadata={**d2["metadata"], **(meta_2d or {})})
    save_npz(os.path.join(dst, f"data_3d_{name}.npz"), positions_3d=d3["positions_3d"],
             **({"metadata": meta_3d} if meta_3d is not None else {}))
    return dst


# ---- 1. data loss: no output inside a run ----------------------------------------------------------

def test_no_command_writes_inside_a_run(run, tmp_path, capsys, synth_dir):
    inp = _npz_2d(tmp_path / "2d.npz")
    pred = tmp_path / "pred.npz"
    assert cli(capsys, ["predict", "--run", run, "--input", inp, "--out", pred])[0] == 0
    Run.open(run).verify(1)
    (tmp_path / "link.npz").symlink_to(run / "config.toml")
    for out in (run / "config.toml", run / "layout.json", run / "checkpoints" / "x.npz", run / "new" / "p.npz",
                tmp_path / "link.npz"):
        refused(capsys, tmp_path, ["predict", "--run", run, "--input", inp, "--out", out, "--overwrite"],
                f"--out {out}: inside the run directory", "expected a path outside any raypose run")
        refused(capsys, tmp_path, ["plot", "--pred", pred, "--animate", "S1/Walk 1", "--out", out, "--overwrite"],
                "inside the run directory")
        refused(capsys, tmp_path, ["plot", "--run", run, "--animate", "Validate/S1/Walking", "--out", out,
                                   "--overwrite"], "inside the run directory")
    other = tmp_path / "other"   # a run that is not the one read: as much a run
    shutil.copytree(run, other)
    refused(capsys, tmp_path, ["predict", "--run", run, "--input", inp, "--out", other / "metrics.json",
                               "--overwrite"], f"inside the run directory {other}")
    for argv in (["export", pred, "--format", "csv", "--out", run / "csv"],
                 ["prepare", "--npz-dir", synth_dir, "--out", run / "table"],
                 ["synth", "--out", run / "synth"],
                 ["train", "--data", "synthetic", "--out", run / "inner", "--set", "run.local=true"],
                 ["tune", "--data", "synthetic", "--budget-s", "5", "--trials", "1", "--out", run / "search"]):
        refused(capsys, tmp_path, argv, f"{run / argv[argv.index('--out') + 1].name}: inside the run directory {run}")
    Run.open(run).verify(1)


def test_predict_out_is_no_input(run, tmp_path, capsys):
    inp = _npz_2d(tmp_path / "2d.npz")
    pred = tmp_path / "pred.npz"
    refused(capsys, tmp_path, ["predict", "--run", run, "--input", inp, "--out", inp, "--overwrite"],
            "is the --input file")
    refused(capsys, tmp_path, ["plot", "--pred", pred, "--animate", "S1/Walk 1", "--out", pred, "--overwrite"],
            f"--out {pred}: is the --pred file; expected a path apart from --pred")   # #15: the flag plot has
    order = tmp_path / "order.txt"
    order.write_text("1\n2\n")
    refused(capsys, tmp_path, ["predict", "--run", run, "--input", tmp_path / "c.json", "--frames", order,
                               "--out", order, "--overwrite"], "is the --frames file")


# ---- 3. an action with 0 frames --------------------------------------------------------------------

def _empty_walk(p3, p2):
    p3["Train/S1"]["Walking 1 chunk0"] = p3["Train/S1"]["Walking 1 chunk0"][:0]
    p2["Train/S1"]["Walking 1 chunk0"] = [c[:0] for c in p2["Train/S1"]["Walking 1 chunk0"]]


def test_an_empty_action_is_left_out_with_a_note(synth_dir, tmp_path, capsys, run):
    data = _copy_data(synth_dir, tmp_path / "e0", change_3d=_empty_walk)
    code, out, err = cli(capsys, ["prepare", "--npz-dir", data, "--out", tmp_path / "table"])
    assert code == 0 and err == "" and "left out (0 frames): Train/S1/Walking 1 chunk0" in out
    src = open_source(C.DataConfig(path=str(data)))   # what train, evaluate --data and tune read
    assert ("Train/S1", "Walking 1 chunk0") not in src.chunks and ("Train/S1", "Walking 1 chunk1") in src.chunks
    assert "1 action(s) of 0 frames left out: Train/S1/Walking 1 chunk0" in src.description
    table = open_source(C.DataConfig(path=str(tmp_path / "table")))
    assert ("Train/S1", "Walking 1 chunk0") not in table.chunks and len(table.chunks) == len(src.chunks)
    from raypose.evaluation.evaluate import evaluate
    lines = []
    ev = evaluate(str(run), data=str(data), echo=lines.append, curve=False, noise_px=0, corruptions=())
    assert "0 frames left out" in lines[0] and ev["frames"] > 0

    def all_empty(p3, p2):
        for s in p3:
            for a in p3[s]:
                p3[s][a], p2[s][a] = p3[s][a][:0], [c[:0] for c in p2[s][a]]
    nothing = _copy_data(synth_dir, tmp_path / "none", change_3d=all_empty)
    refused(capsys, tmp_path, ["prepare", "--npz-dir", nothing, "--out", tmp_path / "t2"], "every action has 0 frames")


def test_a_camera_with_0_frames_makes_no_rows(synth_dir):
    from raypose.data.table import frame_table
    d = load_dataset(synth_dir)
    cams = d.positions_2d["Train/S1"]["Jog 1 chunk0"]
    d.positions_3d["Train/S1"]["Jog 1 chunk0"] = [d.positions_3d["Train/S1"]["Jog 1 chunk0"]] * len(cams)
    d.positions_3d["Train/S1"]["Jog 1 chunk0"][1] = d.positions_3d["Train/S1"]["Jog 1 chunk0"][1][:0]
    cams[1] = cams[1][:0]
    t = frame_table(d, [("Train/S1", "Jog 1 chunk0")])
    assert set(t.column("camera").to_pylist()) == {"C1", "C3"} and t.num_rows == 2 * len(cams[0])


# ---- 4. symmetry indices ---------------------------------------------------------------------------

def test_symmetry_out_of_range_is_refused_before_anything_is_written(synth_dir, tmp_path, capsys):
    bad = _copy_data(synth_dir, tmp_path / "sym", meta_2d={"keypoints_symmetry": [[2, 3, 40], [5, 6, 7]]})
    refused(capsys, tmp_path, ["prepare", "--npz-dir", bad, "--out", tmp_path / "t"],
            "metadata['keypoints_symmetry']: left/right joints [40] out of range; expected joints in 0..14")
    refused(capsys, tmp_path, ["train", "--data", bad, "--out", tmp_path / "r", "--set", "run.local=true"],
            "keypoints_symmetry")
    assert not (tmp_path / "r").exists()   # no config.toml, layout.json or tensorboard/ left behind
    for sym, needle in (([[1, 2]], "expected two lists"), ([[1, 2], [3]], "one length"), ([[1], [1]], "both left")):
        refused(capsys, tmp_path, ["prepare", "--npz-dir", _copy_data(synth_dir, tmp_path / "s2", {
            "keypoints_symmetry": sym}), "--out", tmp_path / "t"], needle)
        shutil.rmtree(tmp_path / "s2")
    wrong = _copy_data(synth_dir, tmp_path / "nj", meta_2d={"num_joints": 17})
    refused(capsys, tmp_path, ["prepare", "--npz-dir", wrong, "--out", tmp_path / "t"], "metadata['num_joints'] is 17")


def test_a_prepared_tables_symmetry_and_joints_are_checked(synth_dir, tmp_path, capsys):
    table = tmp_path / "table"
    assert cli(capsys, ["prepare", "--npz-dir", synth_dir, "--out", table])[0] == 0
    meta = json.loads((table / "_raypose.json").read_text())
    for change, needle in (({"keypoints_symmetry": [[2, 40], [5, 6]]}, "out of range"),
                           ({"num_joints": "x"}, "num_joints is 'x'"),
                           ({"num_joints": 17}, "keypoints hold 15 joints")):
        (table / "_raypose.json").write_text(json.dumps({**meta, **change}))
        with pytest.raises(UserError, match=needle):
            open_source(C.DataConfig(path=str(table)))
    layout = Layout.of(15, KP).to_dict()
    with pytest.raises(UserError, match=r"layout.json: left_2d/right_2d: left/right joints \[15\]"):
        Layout.from_dict({**layout, "left_2d": [2, 3, 4, 8, 9, 15]}, "layout.json")


# ---- 5 and 15. config and JSON files against bad bytes, cut files, wrong types --------------------

def test_config_files_with_bad_bytes_or_types(run, tmp_path, capsys):
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe[train]\nmembers = 2\n")
    refused(capsys, tmp_path, ["train", "--config", binary, "--out", tmp_path / "r"], f"{binary}: not UTF-8 text")
    model5 = tmp_path / "m.toml"
    model5.write_text("model = 5\n")
    refused(capsys, tmp_path, ["train", "--config", model5, "--out", tmp_path / "r"],
            "model = 5 is not a table; expected a section [model]")
    (tmp_path / "space.toml").write_bytes(b"\xff[space]")
    refused(capsys, tmp_path, ["tune", "--data", "synthetic", "--budget-s", "5", "--trials", "1", "--space",
                               tmp_path / "space.toml", "--out", tmp_path / "t"], "not valid TOML")
    inp = _npz_2d(tmp_path / "2d.npz")
    (run / "config.toml").write_bytes(b"\x80\x81 garbage")
    for argv in (["evaluate", "--run", run], ["predict", "--run", run, "--input", inp, "--out", tmp_path / "p.npz"],
                 ["train", "--data", "synthetic", "--out", run]):
        refused(capsys, tmp_path, argv, f"{run / 'config.toml'}: not UTF-8 text")
    (run / "config.toml").write_text("")
    refused(capsys, tmp_path, ["evaluate", "--run", run], "config.toml: no train.members, model.widths, model.channels")
    refused(capsys, tmp_path, ["export-member", "--run", run, "--member", "0", "--out", tmp_path / "m.bin"],
            "(empty or cut short)")


def test_run_json_files_against_bad_bytes_and_shapes(run, tmp_path, capsys):
    inp = _npz_2d(tmp_path / "2d.npz")
    (run / "cameras.json").write_bytes(b"\xff\xfe{")
    refused(capsys, tmp_path, ["predict", "--run", run, "--input", inp, "--out", tmp_path / "p.npz"],
            "cameras.json: malformed JSON")
    (run / "cameras.json").write_text('{"focal": {"C1": "far"}}')
    refused(capsys, tmp_path, ["predict", "--run", run, "--input", inp, "--out", tmp_path / "p.npz"],
            "cameras.json: no focal lengths")
    (run / "metrics.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="metrics.json: a JSON list"):
        Run(run).metrics()


def test_a_search_json_with_bad_bytes(tmp_path, capsys):
    out = tmp_path / "search"
    out.mkdir()
    (out / "search.json").write_bytes(b"\xff\xfe{}")
    refused(capsys, tmp_path, ["tune", "--data", "synthetic", "--budget-s", "5", "--trials", "1", "--out", out],
            "search.json is unreadable")


# ---- 6 and 12. tune: the space's bounds first, a stable best -------------------------------------

def test_every_distributions_bounds_are_checked(tmp_path, capsys):
    f = tmp_path / "space.toml"
    for text, needle in (("train.lr = {loguniform = [3e-3, 3e-4]}", "low >= high; expected [low, high] with low < "
                          "high, e.g. [0.0003, 0.003]"),
                         ("model.dropout = {uniform = [0.3, 0.1]}", "low >= high"),
                         ("train.epochs = {randint = [5, 5]}", "is one value"),
                         ("train.epochs = {randint = [1.5, 5]}", "two finite integers"),
                         ("model.dropout = {uniform = ['a', 0.2]}", "two finite numbers")):
        f.write_text(text)
        refused(capsys, tmp_path, ["tune", "--data", "synthetic", "--budget-s", "5", "--trials", "1", "--space", f,
                                   "--out", tmp_path / "search"], f"--space {f}", needle)
    assert not (tmp_path / "search").exists()   # no search.json, no tune_state/


def test_a_search_that_trained_nothing_can_be_corrected(tmp_path):
    from raypose.tune.tuner import _check_out
    out = tmp_path / "search"
    (out / "tune_state").mkdir(parents=True)
    (out / "search.json").write_text(json.dumps({"settings": {"trials": 3}}))
    assert _check_out(str(out), {"trials": 4}) is None          # nothing trained: started afresh
    assert _check_out(str(out), {"trials": 3}) is True          # the same search: resumed
    (out / "logs").mkdir()
    (out / "logs" / "t1.log").write_text("trained")
    with pytest.raises(UserError, match="holds a search with other trials"):
        _check_out(str(out), {"trials": 4})


def test_tied_trials_give_the_same_best_every_time(tmp_path):
    space = {"train.lr": {"loguniform": [1e-4, 1e-2]}}
    histories = {"b_00001": [(10.0, 30.0)], "b_00000": [(12.0, 30.0)]}
    rows = [S.trial_row("b_00001", {"train.lr": 2e-3}, histories["b_00001"], "completed", 20),
            S.trial_row("b_00000", {"train.lr": 1e-3}, histories["b_00000"], "completed", 20)]
    texts = []
    for order in (rows, rows[::-1]):
        best = S.write_outputs(str(tmp_path), order, histories, C.Config(), 20, space)
        assert best["trial"] == "b_00000"
        texts.append((tmp_path / "best.toml").read_text())
    assert texts[0] == texts[1] and C.load(tmp_path / "best.toml").train.lr == 1e-3


def test_a_space_of_fewer_configs_than_trials_is_said(tmp_path, capsys, monkeypatch):
    import raypose.tune.tuner as T
    assert S.distinct_configs({"train.members": {"choice": [2, 3]}, "train.epochs": {"randint": [1, 4]}}) == 6
    assert S.distinct_configs({"train.lr": {"uniform": [0.1, 0.2]}}) is None
    monkeypatch.setattr(T, "_validation", lambda base: (_ for _ in ()).throw(UserError("stop here")))
    f = tmp_path / "space.toml"
    f.write_text("train.members = [2, 2, 3]\n")
    assert cli(capsys, ["tune", "--data", "synthetic", "--budget-s", "5", "--trials", "5", "--space", f,
                        "--out", tmp_path / "s"])[1].count("2 distinct config(s), fewer than --trials 5") == 1


# ---- 7. synth size -------------------------------------------------------------------------------

def test_synth_refuses_data_that_would_not_fit(tmp_path, capsys, monkeypatch):
    refused(capsys, tmp_path, ["synth", "--out", tmp_path / "huge", "--frames", "10000000000"],
            "frames=10000000000 would take about 10.8 TB of memory (540 bytes a frame", "free")
    monkeypatch.setattr(SY, "_free_memory", lambda: 10_000_000)   # 10 MB: 3000 frames (3.2 MB) fit, 20000 do not
    SY.generate(frames=3000)
    with pytest.raises(UserError, match=r"frames=20000 would take about 21.6 MB of memory .* 10.0 MB is free"):
        open_source(C.DataConfig(synthetic_frames=20000))   # train, demo and tune's synthetic data too
    monkeypatch.setattr(SY.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, 999))
    refused(capsys, tmp_path, ["synth", "--out", tmp_path / "s", "--frames", "3000"], "on disk", "999 bytes free")
    assert SY.bytes_per_frame("h36m") == 928 and SY.bytes_per_frame("coco") == 588


def test_synth_help_says_the_minimum(capsys):
    for cmd in ("synth", "demo"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        assert "at least 1680 are written" in " ".join(capsys.readouterr().out.split())
    assert SY.min_frames() == SY.min_frames("h36m") == 1680
    assert sum(len(a) for s in SY.generate(frames=1)[1].values() for a in s.values()) >= SY.min_frames()


# ---- 8 and 9. the 3D file's metadata and values ----------------------------------------------------

@pytest.mark.parametrize("meta, needle", [
    ({"train_subjects": ["Train/S1", "Nope"], "test_subjects": ["Validate/S1"]},
     "metadata['train_subjects'] names ['Nope'] which the data does not have"),
    ({"fps": 0}, "metadata['fps'] is 0; expected a number > 0"),
    ({"fps": "fast"}, "metadata['fps'] is 'fast'"),
    ({"train_subjects": ["Train/S1"]}, "expected both train_subjects and test_subjects"),
])
@pytest.mark.parametrize("name", ["humaneva15", "mine"])
def test_3d_metadata_is_checked_for_every_dataset(synth_dir, tmp_path, capsys, meta, needle, name):
    data = _copy_data(synth_dir, tmp_path / "d", meta_3d=meta, name=name)
    skeleton = tmp_path / "sk.json"
    skeleton.write_text(json.dumps({"parents": [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1],
                                    "joints_left": KP[0], "joints_right": KP[1]}))
    refused(capsys, tmp_path, ["prepare", "--npz-dir", data, "--out", tmp_path / "t", "--skeleton", skeleton,
                               "--cameras", _cameras_file(tmp_path)], f"data_3d_{name}.npz: ", needle)


def _cameras_file(tmp_path, key=lambda s: s):
    from raypose.datasets.cameras import HUMANEVA_CAMERAS
    subjects = ("Train/S1", "Train/S2", "Train/S3", "Validate/S1", "Validate/S2", "Validate/S3")
    cams = {key(s): [dict(c.to_dict(), res_w=640, res_h=480) for c in HUMANEVA_CAMERAS.cameras(s)] for s in subjects}
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(cams))
    return path


def test_a_built_in_datasets_subjects_from_its_metadata_are_used(synth_dir, tmp_path, capsys):
    data = _copy_data(synth_dir, tmp_path / "d", meta_3d={"train_subjects": ["Train/S1", "Train/S2"],
                                                          "test_subjects": ["Validate/S3"], "fps": 30})
    code, out, _ = cli(capsys, ["prepare", "--npz-dir", data, "--out", tmp_path / "t"])
    assert code == 0 and "(14 train / 7 test)" in out
    assert json.loads((tmp_path / "t" / "_raypose.json").read_text())["dataset"]["fps"] == 30


def test_3d_beyond_any_human_pose_is_refused(synth_dir, tmp_path, capsys):
    def huge(p3, p2):
        p3["Train/S1"]["Jog 1 chunk0"][3, 2, 1] = 1e30
    data = _copy_data(synth_dir, tmp_path / "d", change_3d=huge)
    refused(capsys, tmp_path, ["prepare", "--npz-dir", data, "--out", tmp_path / "t"],
            "positions_3d['Train/S1']['Jog 1 chunk0']: a coordinate of 1e+30; expected |value| <= 10000")
    refused(capsys, tmp_path, ["train", "--data", data, "--out", tmp_path / "r", "--set", "run.local=true"], "1e+30")

    def at_bound(p3, p2):
        p3["Train/S1"]["Jog 1 chunk0"][3, 2, 1] = MAX_3D   # the bound itself passes (millimetres: 10 m)
    assert cli(capsys, ["prepare", "--npz-dir", _copy_data(synth_dir, tmp_path / "ok", change_3d=at_bound),
                        "--out", tmp_path / "t"])[0] == 0


# ---- 10. COCO image ids ------------------------------------------------------------------------

def _coco(path, ids):
    entries = []
    for i in ids:
        x = 100.0 + 10 * (int(i) if str(i).isdigit() else int("".join(c for c in i if c.isdigit())))
        kps = [v for j in range(17) for v in (x, 100.0 + 10 * j, 1.0)]
        entries.append({"image_id": i, "category_id": 1, "keypoints": kps, "score": 1.0})
    path.write_text(json.dumps(entries))
    return path


def test_coco_ids_in_numeric_order_and_recorded(run, tmp_path, capsys):
    u = read_2d(_coco(tmp_path / "names.json", ["f10.jpg", "f2.jpg", "f9.jpg", "f11.jpg"]), image_size=(640, 480))
    assert u.tracks[0].frame_ids == ["f2.jpg", "f9.jpg", "f10.jpg", "f11.jpg"]
    assert list(u.tracks[0].keypoints[:, 0, 0]) == [120.0, 190.0, 200.0, 210.0]
    refused(capsys, tmp_path, ["predict", "--run", run, "--input", _coco(tmp_path / "mixed.json", [2, "x9"]),
                               "--image-size", 640, 480, "--out", tmp_path / "p.npz"],
            "mix numbers (2) and names ('x9')")
    inp = _coco(tmp_path / "c.json", [11, 2, 10, 9])
    code, _, err = cli(capsys, ["predict", "--run", run, "--input", inp, "--image-size", 640, 480, "--out",
                                tmp_path / "p.npz"])
    assert code == 0, err
    p = read_npz(tmp_path / "p.npz")
    track = p["metadata"]["input"]["tracks"]["c/coco/C1"]
    assert track["image_ids"] == [2, 9, 10, 11] and track["frame_order"] == "image ids sorted by value"
    assert track["image_size_from"] == "--image-size"   # 17: not "given"
    assert list(p["keypoints_2d"]["c"]["coco"][0][:, 2, 0]) == pytest.approx([120, 190, 200, 210])


def test_image_size_from_names_the_files_video_metadata(run, tmp_path, capsys):
    kp = (np.random.default_rng(0).uniform(0, 1, (30, 15, 2)) * [1280, 720]).astype(np.float32)
    save_npz(tmp_path / "v.npz", positions_2d={"vid": {"custom": [kp]}}, metadata={"video_metadata": {
        "vid": {"w": 1280, "h": 720}}})
    assert cli(capsys, ["predict", "--run", run, "--input", tmp_path / "v.npz", "--out", tmp_path / "p.npz"])[0] == 0
    track = read_npz(tmp_path / "p.npz")["metadata"]["input"]["tracks"]["vid/custom/C1"]
    assert track["image_size_from"] == "the file's metadata['video_metadata']['vid']"


# ---- 11. --data absolute in config.toml, compared resolved ------------------------------------------

def test_data_path_is_stored_absolute(synth_dir, tmp_path, monkeypatch, capsys):
    import raypose.train.driver as D
    shutil.copytree(synth_dir, tmp_path / "s")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(D, "_train_local", lambda *a: None)   # config.toml written, no training
    refused(capsys, tmp_path / "s", [
        "train", "--data", "s", "--out", "r", "--set", "run.local=true", "--channels", "16"], "no complete iteration")
    assert C.load(tmp_path / "r" / "config.toml").data.path == str(tmp_path / "s")


def test_an_old_run_with_a_relative_data_path_resumes_from_its_directory(run, synth_dir, tmp_path, monkeypatch):
    from raypose.train.driver import train
    shutil.copytree(synth_dir, tmp_path / "s")
    text = (run / "config.toml").read_text().replace('path = "synthetic"', 'path = "s"', 1)
    (run / "config.toml").write_text(text)
    cfg = C.with_values(C.load(run / "config.toml"), {"data.path": str(tmp_path / "s"), "run.out": str(run)})
    monkeypatch.chdir(tmp_path)
    lines = []
    assert train(cfg, echo=lines.append)["iteration"] == 1 and "already complete" in lines[0]
    (tmp_path / "link").symlink_to(tmp_path / "s")   # the same data by another name: the same config
    assert train(C.with_values(cfg, {"data.path": str(tmp_path / "link")}), echo=lines.append)["iteration"] == 1
    monkeypatch.chdir(tmp_path / "s")   # from elsewhere the old relative path names other data
    with pytest.raises(UserError, match='data.path "s" here'):
        train(cfg, echo=lines.append)


# ---- 13. --fov-correction without --focal ------------------------------------------------------

def test_fov_correction_needs_focal(run, tmp_path, capsys):
    refused(capsys, tmp_path, ["predict", "--run", run, "--input", _npz_2d(tmp_path / "2d.npz"), "--out",
                               tmp_path / "p.npz", "--fov-correction"], "--fov-correction", "expected --focal")


# ---- 14. cameras keyed by the full subject name ------------------------------------------------

def test_cameras_keyed_by_full_subject_names(synth_dir, tmp_path, capsys):
    cams = CameraSet("cameras.json", {"Train/S1": (Camera("C1", 640, 480),)})
    assert cams.get("Train/S1", 0).res_w == 640
    with pytest.raises(UserError, match=r"no cameras for subject 'Validate/S2' in cameras.json \(looked up as "
                                        r"'Validate/S2' or 'S2'\); expected a key 'Validate/S2' or 'S2', the file "
                                        r"has Train/S1"):
        cams.get("Validate/S2", 0)
    data = _copy_data(synth_dir, tmp_path / "d", name="mine")
    skeleton = tmp_path / "sk.json"
    skeleton.write_text(json.dumps({"parents": [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1],
                                    "joints_left": KP[0], "joints_right": KP[1]}))
    code, out, err = cli(capsys, ["prepare", "--npz-dir", data, "--out", tmp_path / "t", "--skeleton", skeleton,
                                  "--cameras", _cameras_file(tmp_path), "--split", "seed"])   # keyed Train/S1, ...
    assert code == 0 and err == "" and "6 subjects" in out


# ---- 16. SIGINT and SIGTERM --------------------------------------------------------------------

def test_an_interrupted_train_says_what_it_kept(run, tmp_path, capsys, monkeypatch):
    import raypose.train.driver as D

    def interrupted(cfg, echo=print):
        raise KeyboardInterrupt
    monkeypatch.setattr(D, "train", interrupted)
    code, _, err = cli(capsys, ["train", "--config", run / "config.toml", "--out", run])
    assert code == 130 and err.count("\n") == 1
    assert f"raypose train: stopped by SIGINT; {run} keeps iteration 1, the last complete one" in err
    assert "the same command resumes from it" in err

    def ray_sigterm(cfg, echo=print):   # ray.init's own SIGTERM handler: sys.exit(signum)
        raise SystemExit(signal.SIGTERM)
    monkeypatch.setattr(D, "train", ray_sigterm)
    code, _, err = cli(capsys, ["train", "--config", run / "config.toml", "--out", run])
    assert code == 143 and err.startswith("raypose train: stopped by SIGTERM; ") and err.count("\n") == 1


def test_sigterm_cleans_up_and_says_so(tmp_path):
    out = tmp_path / "r"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "raypose.cli", "train", "--data", "synthetic", "--channels", "16",
                             "--members", "2", "--iterations", "1", "--out", str(out), "--set", "run.local=true"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "lease.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == (f"raypose train: stopped by SIGTERM; {out} has no complete iteration "
                                            "yet; the same command starts it again")
    assert not (out / "lease.json").exists()   # the lease was released: the same command may resume


# ---- 17. what the program says ---------------------------------------------------------------

def test_evaluate_labels_its_averages(run):
    from raypose.evaluation.evaluate import evaluate
    lines = []
    evaluate(str(run), echo=lines.append, curve=False, noise_px=0, corruptions=())
    by_action = "ensemble (weighted; mean over actions, then subjects, as the table): "
    assert sum(ln.startswith(by_action) for ln in lines) == 1
    assert sum(ln.startswith("aggregates (mean over all frames, not by action): ") for ln in lines) == 1


def test_calibration_variants_have_distinct_names(run):
    from raypose.ensemble.ensemble import Ensemble
    variants = Ensemble.load(Run.open(run)).calibration.info["variants"]
    assert len(set(variants)) == len(variants) == 5, variants



# ---- the same mistakes elsewhere ---------------------------------------------------------------

def test_prepare_overwrite_keeps_what_prepare_did_not_write(synth_dir, tmp_path, capsys, run):
    table = tmp_path / "table"
    assert cli(capsys, ["prepare", "--npz-dir", synth_dir, "--out", table])[0] == 0
    shutil.copytree(run, table / "my_run")   # a run kept inside a table: --overwrite would delete it
    refused(capsys, tmp_path, ["prepare", "--npz-dir", synth_dir, "--out", table, "--overwrite"],
            "it holds my_run, which raypose prepare does not write, so it is not replaced")
    shutil.rmtree(table / "my_run")
    assert cli(capsys, ["prepare", "--npz-dir", synth_dir, "--out", table, "--overwrite"])[0] == 0


def test_video_metadata_sizes_must_be_positive(synth_dir, tmp_path, capsys):
    def per_camera(p3, p2):
        for s in p3:
            for a in p3[s]:
                p3[s][a] = [p3[s][a]] * len(p2[s][a])
    videos = {s: {"w": 640, "h": 480} for s in ("Train/S1", "Train/S2", "Train/S3", "Validate/S1", "Validate/S2")}
    data = _copy_data(synth_dir, tmp_path / "d", name="mine", change_3d=per_camera,
                      meta_2d={"video_metadata": {**videos, "Validate/S3": {"w": 0, "h": 480}}})
    skeleton = tmp_path / "sk.json"
    skeleton.write_text(json.dumps({"parents": [-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1],
                                    "joints_left": KP[0], "joints_right": KP[1]}))
    refused(capsys, tmp_path, ["prepare", "--npz-dir", data, "--out", tmp_path / "t", "--skeleton", skeleton],
            "no image size for subject 'Validate/S3'")


def test_a_stored_datasets_values_are_checked():
    from raypose.datasets.registry import HUMANEVA_DATASET, Dataset
    d = HUMANEVA_DATASET.to_dict()
    assert Dataset.from_dict(d) == HUMANEVA_DATASET
    for change, needle in (({"train_subjects": "S1", "test_subjects": ["S2"]}, r"dataset\['train_subjects'\] is S1"),
                           ({"train_subjects": ["S1"]}, "expected both train_subjects and test_subjects"),
                           ({"layout_2d": ["coco"]}, "layout_2d is"), ({"fps": 0}, "fps is 0")):
        with pytest.raises(UserError, match=needle):
            Dataset.from_dict({**d, **change}, "_raypose.json: dataset")


def test_plot_against_malformed_metrics_and_predictions(run, tmp_path, capsys):
    (run / "metrics.json").write_text(json.dumps({"evaluation": {"table": []}}))
    refused(capsys, tmp_path, ["plot", "--run", run], "metrics.json: its evaluation lacks 'ensemble_size'")
    inp = _npz_2d(tmp_path / "2d.npz")
    assert cli(capsys, ["predict", "--run", run, "--input", inp, "--out", tmp_path / "p.npz"])[0] == 0
    p = read_npz(tmp_path / "p.npz")
    p["metadata"]["quantiles"] = ["a"]
    save_npz(tmp_path / "q.npz", **p)
    refused(capsys, tmp_path, ["plot", "--pred", tmp_path / "q.npz", "--animate", "S1/Walk 1", "--out",
                               tmp_path / "a.gif"], "metadata['quantiles'] is ['a']")


def test_2d_metadata_of_the_wrong_type_is_refused(synth_dir, tmp_path, capsys, run):
    bad = _copy_data(synth_dir, tmp_path / "d", meta_2d={"layout_name": 5})
    refused(capsys, tmp_path, ["prepare", "--npz-dir", bad, "--out", tmp_path / "t"],
            "metadata['layout_name'] is 5; expected a 2D layout name")
    kp = (np.random.default_rng(0).uniform(0, 1, (30, 15, 2)) * [640, 480]).astype(np.float32)
    for meta, needle in (({"video_metadata": [640, 480]}, "metadata['video_metadata'] is [640, 480]"),
                         ({"layout_name": 5}, "metadata['layout_name'] is 5")):
        save_npz(tmp_path / "in.npz", positions_2d={"S1": {"Walk 1": [kp]}}, metadata=meta)   # once ignored: the
        refused(capsys, tmp_path, ["predict", "--run", run, "--input", tmp_path / "in.npz", "--out",   # training
                                   tmp_path / "p.npz"], needle)                                          # size used

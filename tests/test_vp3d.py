"""VideoPose3D checkpoints both ways (issue 15 item 7): `raypose import-members` and `export-member`.

The checkpoints are built here in VideoPose3D's naming and dict layout (a numpy RandomState tuple
included); the reference is this file's own VideoPose3D-style model and evaluation (edge padding,
flipped copy, flip back, average), written apart from raypose's model and inference code.
"""
import fractions
import hashlib
import io
import json
import os
import pickle
import shutil
import socket
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from raypose.cli import main
from raypose.data.npz import read_npz, save_2d
from raypose.data.windows import make_windows
from raypose.datasets.cameras import normalize_screen
from raypose.ensemble.ensemble import Ensemble
from raypose.interop.vp3d import dense_filters
from raypose.run import Run

# VideoPose3D's HumanEva-15 skeleton (common/humaneva_dataset.py) and COCO-17 keypoint symmetry
HE_LEFT, HE_RIGHT = [2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]
COCO_LEFT, COCO_RIGHT = [1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]
W, H = 640, 480


class VP3DModel(nn.Module):
    """VideoPose3D's TemporalModel (dilated, symmetric), with its module names."""

    def __init__(self, j_in, j_out, widths, channels):
        super().__init__()
        self.widths, self.j_out = list(widths), j_out
        self.expand_conv = nn.Conv1d(j_in * 2, channels, widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels)
        conv, bn, self.dilations, d = [], [], [], widths[0]
        for w in widths[1:]:
            conv += [nn.Conv1d(channels, channels, w, dilation=d, bias=False),
                     nn.Conv1d(channels, channels, 1, bias=False)]
            bn += [nn.BatchNorm1d(channels), nn.BatchNorm1d(channels)]
            self.dilations.append(d)
            d *= w
        self.layers_conv, self.layers_bn = nn.ModuleList(conv), nn.ModuleList(bn)
        self.shrink = nn.Conv1d(channels, j_out * 3, 1)

    def forward(self, x):
        b = x.shape[0]
        x = torch.relu(self.expand_bn(self.expand_conv(x.reshape(b, x.shape[1], -1).permute(0, 2, 1))))
        for i, d in enumerate(self.dilations):
            pad = (self.widths[i + 1] - 1) * d // 2
            res = x[:, :, pad:x.shape[2] - pad]
            x = torch.relu(self.layers_bn[2 * i](self.layers_conv[2 * i](x)))
            x = res + torch.relu(self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](x)))
        return self.shrink(x).permute(0, 2, 1).reshape(b, -1, self.j_out, 3)


def vp3d_model(seed, j_in=15, j_out=15, widths=(3, 3, 3), channels=24):
    """Random weights and random BatchNorm statistics, so that every layer matters."""
    torch.manual_seed(seed)
    model = VP3DModel(j_in, j_out, widths, channels)
    with torch.no_grad():
        for bn in [model.expand_bn, *model.layers_bn]:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.normal_(0, 0.2)
            bn.running_mean.normal_(0, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def save_vp3d(path, model, epoch=80, old_torch=False, **extra):
    """A checkpoint as VideoPose3D's run.py saves it (`old_torch`: no num_batches_tracked)."""
    state = {k: v for k, v in model.state_dict().items() if not (old_torch and k.endswith("num_batches_tracked"))}
    ckpt = {"epoch": epoch, "lr": 0.001 * 0.95 ** epoch, "random_state": np.random.RandomState(epoch).get_state(),
            "optimizer": torch.optim.Adam(model.parameters(), amsgrad=True).state_dict(), "model_pos": state,
            "model_traj": None, "random_state_semi": None, **extra}
    torch.save(ckpt, path)
    return path


def vp3d_evaluate(model, kp_px, kps=(HE_LEFT, HE_RIGHT), joints=(HE_LEFT, HE_RIGHT)):
    """VideoPose3D's evaluate() with test-time augmentation for one sequence of pixels."""
    x = kp_px / W * 2 - np.array([1, H / W])
    pad = int(np.prod(model.widths)) // 2
    seq = np.pad(x, ((pad, pad), (0, 0), (0, 0)), "edge")
    batch = np.stack([seq, seq]).astype(np.float32)
    batch[1, :, :, 0] *= -1
    batch[1, :, kps[0] + kps[1]] = batch[1, :, kps[1] + kps[0]]
    with torch.no_grad():
        pred = model(torch.from_numpy(batch)).numpy()
    pred[1, :, :, 0] *= -1
    pred[1, :, joints[0] + joints[1]] = pred[1, :, joints[1] + joints[0]]
    return pred.mean(0)


def _track(frames, joints, seed):
    rng = np.random.default_rng(seed)
    base = rng.uniform([200, 100], [440, 380], (1, joints, 2))
    return (base + np.cumsum(rng.normal(0, 2, (frames, joints, 2)), 0)).astype(np.float32)


def _ok(argv, capsys):
    assert main(argv) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _synth(out, capsys, layout):
    _ok(["synth", "--out", str(out), "--layout", layout, "--frames", "300"], capsys)
    return str(out)


def _refused(argv, capsys, *words):
    """Exit 2, one line naming `words`."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for w in words:
        assert w in err, err
    return err


@pytest.mark.parametrize("j_in", [15, 17])
def test_imported_members_predict_as_videopose3d_evaluates(j_in, tmp_path, capsys):
    models = [vp3d_model(seed, j_in=j_in) for seed in (1, 2)]
    files = [save_vp3d(tmp_path / "epoch_80.bin", models[0]), save_vp3d(tmp_path / "m1.bin", models[1], 60, True)]
    data = [] if j_in == 15 else ["--data", _synth(tmp_path / "coco", capsys, "coco")]
    out = _ok(["import-members", *map(str, files), "--out", str(tmp_path / "run"), *data], capsys)
    assert "2 VideoPose3D member(s)" in out and "receptive field 27" in out
    tracks = [_track(40, j_in, 0), _track(5, j_in, 1)]   # the second far shorter than the receptive field
    meta = {} if j_in == 15 else {"layout_name": "coco", "num_joints": 17,
                                  "keypoints_symmetry": [COCO_LEFT, COCO_RIGHT]}
    save_2d(tmp_path / "in.npz", {"S1": {"walk": tracks}}, meta)
    _ok(["predict", "--run", str(tmp_path / "run"), "--input", str(tmp_path / "in.npz"), "--out",
         str(tmp_path / "p.npz"), "--aggregate", "mean", "--image-size", str(W), str(H)], capsys)
    d = read_npz(tmp_path / "p.npz")
    kps = (HE_LEFT, HE_RIGHT) if j_in == 15 else (COCO_LEFT, COCO_RIGHT)
    ensemble = Ensemble.load(Run.open(tmp_path / "run"))
    for c, kp in enumerate(tracks):
        refs = np.stack([vp3d_evaluate(m, kp, kps) for m in models])
        pose = d["positions_3d"]["S1"]["walk"][c]
        assert np.all(pose[:, 0] == 0)   # raypose's contract: root-relative, the root at 0
        np.testing.assert_allclose(pose[:, 1:], refs.mean(0)[:, 1:], rtol=1e-4, atol=2e-5)
        members = ensemble.predict(make_windows([(("S1", "walk", "C1"), normalize_screen(kp, W, H), None)], 27))
        np.testing.assert_allclose(members[..., 1:, :], refs[..., 1:, :], rtol=1e-4, atol=2e-5)
        assert np.abs(refs[0] - refs[1]).max() > 0.1   # two different members: the comparison can fail
    assert "radius" not in d and not d["metadata"]["uncertainty_calibration"]["trusted"]
    layout = json.loads((tmp_path / "run" / "layout.json").read_text())
    assert layout["joints_2d"] == j_in and layout["left_2d"] == kps[0] and layout["skeleton"]["name"] == "humaneva15"
    record = json.loads((tmp_path / "run" / "checkpoints" / "iter0.json").read_text())
    src = record["imported"]["members"]
    assert [s["file"] for s in src] == ["epoch_80.bin", "m1.bin"] and [s["epoch"] for s in src] == [80, 60]
    assert src[1]["sha256"] == hashlib.sha256(files[1].read_bytes()).hexdigest()


def test_export_loads_into_videopose3d_and_round_trips(local_run, tmp_path, capsys):
    out = _ok(["export-member", "--run", str(local_run), "--member", "1", "--out", str(tmp_path / "m1.bin")], capsys)
    assert "VideoPose3D flags: --architecture 3,3,3 --channels 16" in out and "--evaluate m1.bin" in out
    ckpt = torch.load(tmp_path / "m1.bin", weights_only=True)   # no allow-list needed
    assert list(ckpt) == ["epoch", "lr", "random_state", "optimizer", "model_pos"] and ckpt["epoch"] >= 1
    VP3DModel(15, 15, (3, 3, 3), 16).load_state_dict(ckpt["model_pos"])   # strict, as VideoPose3D's run.py
    _ok(["import-members", str(tmp_path / "m1.bin"), "--out", str(tmp_path / "back")], capsys)
    kp = normalize_screen(_track(50, 15, 3))
    w = make_windows([(("S1", "walk", "C1"), kp, None)], 27)
    original = Ensemble.load(Run.open(local_run)).predict(w)[1]
    again = Ensemble.load(Run.open(tmp_path / "back")).predict(w)[0]
    np.testing.assert_array_equal(again, original)
    _ok(["export-member", "--run", str(tmp_path / "back"), "--member", "0", "--out", str(tmp_path / "m1b.bin")], capsys)
    twice = torch.load(tmp_path / "m1b.bin", weights_only=True)
    assert twice["epoch"] == ckpt["epoch"] and twice["lr"] == ckpt["lr"]
    assert all(torch.equal(twice["model_pos"][k], v) for k, v in ckpt["model_pos"].items())


def _bad_files(tmp_path):
    """{case: (files, words the one line must hold)}."""
    good = save_vp3d(tmp_path / "good.bin", vp3d_model(1))
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    torch.save({"epoch": 3, "model": {}}, tmp_path / "nopos.bin")
    state = vp3d_model(1).state_dict()
    missing = {k: v for k, v in state.items() if k != "layers_bn.1.running_var"}
    plain, folder = tmp_path / "plain.pkl", tmp_path / "dir.bin"
    plain.write_bytes(pickle.dumps({"epoch": 1}))   # protocol 4: torch warns of it, in two lines
    folder.mkdir()
    return {
        "not torch": ([tmp_path / "notes.txt"], ["notes.txt", "not a torch checkpoint"]),
        "no model_pos": ([tmp_path / "nopos.bin"], ["nopos.bin", "no 'model_pos'"]),
        "foreign global": ([save_vp3d(tmp_path / "g.bin", vp3d_model(1), note=fractions.Fraction(1, 3))],
                           ["g.bin", "fractions.Fraction"]),
        "missing key": ([save_vp3d(tmp_path / "mk.bin", vp3d_model(1), model_pos=missing)],
                        ["mk.bin", "missing keys layers_bn.1.running_var"]),
        "unexpected key": ([save_vp3d(tmp_path / "uk.bin", vp3d_model(1), model_pos={**state, "traj.weight": state[
            "shrink.weight"]})], ["uk.bin", "unexpected keys traj.weight"]),
        "channels": ([good, save_vp3d(tmp_path / "c32.bin", vp3d_model(1, channels=32))],
                     ["c32.bin", "channels 32", "channels 24"]),
        "receptive field": ([good, save_vp3d(tmp_path / "rf9.bin", vp3d_model(1, widths=(3, 3)))],
                            ["rf9.bin", "receptive field 9", "receptive field 27"]),
        "joints": ([good, save_vp3d(tmp_path / "j17.bin", vp3d_model(1, j_in=17))], ["17 -> 15", "15 -> 15"]),
        "no layout": ([save_vp3d(tmp_path / "h36m.bin", vp3d_model(1, j_in=17, j_out=17))],
                      ["h36m.bin", "17 2D joints -> 17 3D joints"]),
        "dense": ([save_vp3d(tmp_path / "dense.bin", vp3d_model(1, widths=(3, 7, 19)))],
                  ["dense.bin", "looks like a --dense model: widths 3, 7, 19 = dense 3,3,3", "default dilated"]),
        "plain pickle": ([plain], ["plain.pkl", "not a torch checkpoint"]),
        "directory": ([folder], ["dir.bin: a directory; expected a .bin checkpoint file"]),
    }


def test_bad_imports_are_one_line_and_write_nothing(tmp_path, capsys):
    for case, (files, words) in _bad_files(tmp_path).items():
        out = tmp_path / f"run-{case.replace(' ', '_')}"
        with warnings.catch_warnings(record=True) as caught:   # a warning would print lines before the one line
            warnings.simplefilter("always")
            _refused(["import-members", *map(str, files), "--out", str(out)], capsys, *words)
        assert not out.exists() and not caught, (case, [str(w.message) for w in caught])
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]
    good = str(tmp_path / "good.bin")
    _ok(["import-members", good, "--out", str(tmp_path / "run")], capsys)
    before = (tmp_path / "run" / "config.toml").read_bytes()
    _refused(["import-members", good, good, "--out", str(tmp_path / "run")], capsys, "--overwrite")
    assert (tmp_path / "run" / "config.toml").read_bytes() == before
    _ok(["import-members", good, good, "--out", str(tmp_path / "run"), "--overwrite"], capsys)
    assert "members = 2" in (tmp_path / "run" / "config.toml").read_text()
    _refused(["import-members", good, "--out", str(tmp_path / "r2"), "--data", str(tmp_path / "nowhere")], capsys,
             "--data", "nowhere")


def test_bad_exports_are_one_line_and_write_nothing(local_run, tmp_path, capsys):
    run, out = str(local_run), tmp_path / "m.bin"
    _refused(["export-member", "--run", run, "--member", "2", "--out", str(out)], capsys, "--member 2", "0 to 1")
    _refused(["export-member", "--run", run, "--member", "-1", "--out", str(out)], capsys, "--member -1")
    _refused(["export-member", "--run", run, "--member", "0", "--iteration", "5", "--out", str(out)], capsys,
             "--iteration 5")
    assert not out.exists()
    out.write_bytes(b"mine")
    _refused(["export-member", "--run", run, "--member", "0", "--out", str(out)], capsys, "--overwrite")
    assert out.read_bytes() == b"mine"
    _ok(["export-member", "--run", run, "--member", "0", "--iteration", "1", "--out", str(out), "--overwrite"], capsys)
    assert "model_pos" in torch.load(io.BytesIO(out.read_bytes()), weights_only=True)


def test_dense_filters_are_recognised_and_dilated_ones_are_not():
    assert dense_filters([3, 7, 19]) == [3, 3, 3] and dense_filters([3, 7, 19, 55, 163]) == [3, 3, 3, 3, 3]
    assert dense_filters([5, 21]) == [5, 5]
    for dilated in ([3, 3, 3], [3, 3, 3, 3, 3], [1, 3, 3], [3], [3, 5, 7]):
        assert dense_filters(dilated) is None, dilated


def test_export_refuses_an_out_inside_a_run(local_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(local_run, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    _ok(["import-members", save_vp3d(tmp_path / "a.bin", vp3d_model(1, channels=16)).as_posix(), "--out",
         str(tmp_path / "imp")], capsys)
    (tmp_path / "link.bin").symlink_to(run / "config.toml")
    for out in (run / "checkpoints" / "2_members_ensemble0_iter1.ckpt", run / "config.toml", run / "new" / "m.bin",
                tmp_path / "link.bin", tmp_path / "imp" / "checkpoints" / "m.bin", tmp_path / "imp" / "m.bin"):
        _refused(["export-member", "--run", str(run), "--member", "0", "--out", str(out), "--overwrite"], capsys,
                 f"--out {out}: inside the run directory", "expected a path outside any raypose run")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "imp" / "m.bin").exists() and not (tmp_path / "imp" / "checkpoints" / "m.bin").exists()
    Run.open(run).verify(1)


def test_train_refuses_an_imported_run(tmp_path, capsys):
    run = tmp_path / "imp"
    _ok(["import-members", str(save_vp3d(tmp_path / "a.bin", vp3d_model(1))), str(save_vp3d(tmp_path / "b.bin",
         vp3d_model(2))), "--out", str(run)], capsys)
    text = (run / "config.toml").read_text()
    for made_up in ("iterations", "epochs", "lr", "synthetic_frames", "batch_size", "sampling"):
        assert f"\n{made_up} = " not in text, made_up   # the config's defaults, not written as if they were true
    assert "[model]\nchannels = 24\nwidths = [3, 3, 3]" in text and "[train]\nmembers = 2\n" in text
    assert Run.open(run).config.hash() == json.loads((run / "checkpoints" / "iter0.json").read_text())["config_hash"]
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    words = (f"{run}: members imported from VideoPose3D (checkpoints/iter0.json `imported`); expected a run trained "
             "by raypose (fine-tuning imported members is not supported)")
    for argv in (["--out", str(run)], ["--config", str(run / "config.toml")],
                 ["--config", str(run / "config.toml"), "--keep-last", "1"]):
        _refused(["train", *argv, "--local"], capsys, words)
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_coco_import_needs_coco_data_and_evaluates(tmp_path, capsys):
    ckpt, run = str(save_vp3d(tmp_path / "coco.bin", vp3d_model(1, j_in=17))), tmp_path / "run"
    _refused(["import-members", ckpt, "--out", str(run)], capsys, "--data synthetic (the default)", "takes 17 (coco)",
             "raypose synth --layout coco --out DIR")
    _refused(["import-members", ckpt, "--out", str(run), "--data", _synth(tmp_path / "he", capsys, "humaneva15")],
             capsys, "its 2D has 15 joints; expected 17 (coco)")
    _refused(["import-members", ckpt, "--out", str(run), "--keypoints", "humaneva15"], capsys,
             "--keypoints humaneva15", "takes 17 2D joints", "expected --keypoints coco")
    assert not run.exists()
    coco = _synth(tmp_path / "coco", capsys, "coco")
    out = _ok(["import-members", ckpt, "--out", str(run), "--data", coco], capsys)
    assert "2D keypoints: coco (assumed for 17 input joints" in out
    imported = json.loads((run / "checkpoints" / "iter0.json").read_text())["imported"]
    assert imported["keypoints"] == "coco" and imported["keypoints_assumed"] is True
    out = _ok(["evaluate", "--run", str(run), "--no-curve", "--no-tta", "--aggregate", "mean"], capsys)   # quick
    summary = Run.open(run).metrics()["evaluation"]["summary"]
    assert summary["mpjpe"] > 0 and np.isfinite(summary["p_mpjpe"]), out
    out = _ok(["import-members", ckpt, "--out", str(run), "--data", coco, "--keypoints", "coco", "--overwrite"], capsys)
    assert "assumed" not in out
    assert json.loads((run / "checkpoints" / "iter0.json").read_text())["imported"]["keypoints_assumed"] is False


def test_import_overwrites_only_an_imported_run_nobody_writes(local_run, tmp_path, capsys):
    trained, ckpt = tmp_path / "trained", str(save_vp3d(tmp_path / "a.bin", vp3d_model(1)))
    shutil.copytree(local_run, trained)
    before = {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()}
    _refused(["import-members", ckpt, "--out", str(trained), "--overwrite"], capsys,
             "a run trained by raypose (iterations 1)", "--overwrite does not replace")
    assert {p: p.read_bytes() for p in trained.rglob("*") if p.is_file()} == before
    imp = tmp_path / "imp"
    _ok(["import-members", ckpt, "--out", str(imp)], capsys)
    lease = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "renewed": time.time(),
             "token": "t"}
    (imp / "lease.json").write_text(json.dumps(lease))   # this process is alive: a driver writing the run
    _refused(["import-members", ckpt, ckpt, "--out", str(imp), "--overwrite"], capsys,
             "a run being written now (lease.json", f"pid {os.getpid()}")
    assert "members = 1" in (imp / "config.toml").read_text()
    (imp / "lease.json").write_text(json.dumps({**lease, "host": "elsewhere", "renewed": 0}))   # long gone
    _ok(["import-members", ckpt, ckpt, "--out", str(imp), "--overwrite"], capsys)
    assert "members = 2" in (imp / "config.toml").read_text()

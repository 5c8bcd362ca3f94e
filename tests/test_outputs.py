"""What a trained run gives users: predictions, evaluation tables and pictures."""
import json
import os

import numpy as np
import pytest
import ray

from raypose.cameras import normalize_screen
from raypose.cli import main
from raypose.data.npz import load_2d, read_npz, save_2d
from raypose.data.windows import make_windows
from raypose.ensemble import load_members, member_predictions
from raypose.predict import open_run
from raypose.train.run import train
from runs import tiny_config


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-member run, trained in-process (local mode) for 2 iterations."""
    out = tmp_path_factory.mktemp("outputs") / "run"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        train(tiny_config(out, **{"train.members": 3, "train.epochs": 2, "run.local": True,
                                  "model.channels": 32}), echo=lambda s: None)
    finally:
        ray.shutdown()
    return out


def test_predict_writes_the_contract(run_dir, synth_dir, tmp_path, capsys):
    out = tmp_path / "pred.npz"
    assert main(["predict", "--run", str(run_dir), "--input", str(synth_dir / "data_2d_humaneva15_gt.npz"),
                 "--out", str(out)]) == 0
    d = read_npz(out)
    pos2d, _ = load_2d(synth_dir / "data_2d_humaneva15_gt.npz")
    assert set(d["positions_3d"]) == set(pos2d) == set(d["uncertainty"])
    meta = d["metadata"]
    assert meta["ensemble_size"] == 3 and meta["iteration"] == 2 and meta["aggregation"] == "mean"
    seq = d["positions_3d"]["Train/S2"]["Jog 1 chunk0"]
    unc = d["uncertainty"]["Train/S2"]["Jog 1 chunk0"]
    kp = pos2d["Train/S2"]["Jog 1 chunk0"]
    assert len(seq) == 3 and seq[1].shape == (len(kp[1]), 15, 3) and seq[1].dtype == np.float32
    assert unc[1].shape == (len(kp[1]), 15) and unc[1].dtype == np.float32
    assert np.all(seq[1][:, 0] == 0) and np.all(unc[1][:, 0] == 0)
    # the same numbers by hand: members over the windows, mean, RMS distance from the mean
    run, cfg, it = open_run(run_dir)
    models = load_members(run, cfg, it, 15)
    w = make_windows([(("s", "a", "C2"), normalize_screen(kp[1]), None)], 27)
    preds = member_predictions(models, w, True, ([2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]))
    np.testing.assert_allclose(seq[1], preds.mean(0), atol=1e-6)
    rms = np.sqrt(((preds - preds.mean(0)) ** 2).sum(-1).mean(0))
    np.testing.assert_allclose(unc[1], rms, atol=1e-6)
    assert unc[1][:, 1:].min() > 0                       # three different members do disagree
    # median aggregate, earlier iteration
    assert main(["predict", "--run", str(run_dir), "--input", str(synth_dir / "data_2d_humaneva15_gt.npz"),
                 "--out", str(tmp_path / "p1.npz"), "--iteration", "1", "--aggregate", "median"]) == 0
    assert read_npz(tmp_path / "p1.npz")["metadata"]["iteration"] == 1


def test_predict_bad_input(run_dir, synth_dir, tmp_path, capsys):
    pos2d, meta = load_2d(synth_dir / "data_2d_humaneva15_gt.npz")
    bad = {"X/S1": {"A 1": [c[:, :12] for c in pos2d["Train/S1"]["Box 1 chunk0"]]}}
    save_2d(tmp_path / "bad.npz", bad, meta)
    cases = [
        (["--input", str(tmp_path / "bad.npz")], "12 joints"),
        (["--input", str(tmp_path / "none.npz")], "not found"),
        (["--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--iteration", "7"], "--iteration 7"),
        (["--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--aggregate", "mode"], "mode"),
    ]
    for extra, needle in cases:
        code = main(["predict", "--run", str(run_dir), "--out", str(tmp_path / "o.npz")] + extra)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and needle in err, (extra, err)
        assert not (tmp_path / "o.npz").exists()
    code = main(["predict", "--run", str(tmp_path), "--input", "x", "--out", str(tmp_path / "o.npz")])
    assert code == 2 and "config.toml" in capsys.readouterr().err

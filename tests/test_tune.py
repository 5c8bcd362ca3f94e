"""raypose tune: a tiny search on synthetic data writes a config `train` takes, resumes after its
driver is killed, and scores only on frames of the training subjects (a test split changed
beyond recognition changes nothing)."""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from raypose import config as C
from raypose.data import splits
from raypose.data.npz import load_humaneva
from raypose.data.synthetic import write_synthetic
from raypose.data.table import data_sequences
from raypose.errors import UserError
from raypose.tune import search as S

SPACE = 'model.channels = [12, 16]\n"train.lr" = {loguniform = [1e-3, 4e-3]}\n'
BASE = ["--set", "data.actions=Walk,Jog,Box", "--set", "train.members=2", "--set", "train.iterations=2",
        "--set", "train.epochs=1", "--set", "run.local=true", "--set", "uncertainty.holdout=0"]


def _tune_cmd(data, out, space):
    return [sys.executable, "-m", "raypose.cli", "tune", "--data", str(data), "--budget-s", "900",
            "--trials", "2", "--out", str(out), "--space", str(space), *BASE]


def _changed_test_split(src, dst):
    """A copy of the synthetic set whose Validate/* 2D and 3D are noise: a search that read them
    would score (and choose) differently."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(7)
    for name, key in (("data_3d_humaneva15.npz", "positions_3d"), ("data_2d_humaneva15_gt.npz", "positions_2d")):
        with np.load(dst / name, allow_pickle=True) as f:
            arrays = {k: f[k] for k in f.files}
        d = arrays[key].item()
        changed = 0
        for subject in d:
            if subject.startswith("Validate/"):
                for action, v in d[subject].items():
                    noisy = lambda a: (a + rng.normal(0, 0.5, a.shape)).astype(a.dtype)
                    d[subject][action] = [noisy(a) for a in v] if isinstance(v, list) else noisy(v)
                    changed += 1
        assert changed
        arrays[key] = np.array(d, dtype=object)
        np.savez_compressed(dst / name, **arrays)


def _table(out):
    t = pd.read_csv(out / "trials.csv").sort_values("train.lr")
    return t[["model.channels", "train.lr", S.SCORE, "iterations", "status"]].to_dict("records")


@pytest.mark.ray
@pytest.mark.slow
def test_search_writes_resumes_and_never_reads_the_test_split(ray_local, tmp_path, capsys):
    from raypose.tune.tuner import tune
    data = tmp_path / "npz"
    write_synthetic(data, frames=1200, seed=0)
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "search"
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    proc = subprocess.Popen(_tune_cmd(data, out, tmp_path / "space.toml"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:   # the driver is killed once a first trial has finished
            lines.append(line)
            if line.startswith("trial 1/2"):
                break
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert lines and lines[-1].startswith("trial 1/2"), "".join(lines)
    assert "the test split is not read" in lines[0]
    first = lines[-1].split()[2].rstrip(":")
    record = out / "trials" / first / "checkpoints" / "iter2.json"
    stamp = record.stat().st_mtime_ns
    assert not (out / "best.toml").exists()

    capsys.readouterr()
    tune(C.from_args(_args(BASE)), str(data), 900, 2, out, space=S.read_space(tmp_path / "space.toml"))
    again = capsys.readouterr().out   # the same command, in this process
    assert "resuming" in again and "trial 2/2" in again and "best: trial" in again, again
    # the finished trial is not trained again (Tune may run its function once more if the kill came
    # before it saved the search: its run is then found complete at once)
    log = (out / "logs" / f"{first}.log").read_text()
    assert log.count("starting") == 1 and "resuming after" not in log, log
    assert record.stat().st_mtime_ns == stamp
    resumed = _table(out)
    assert len(resumed) == 2 and {r["status"] for r in resumed} == {"completed"}
    assert len({r["train.lr"] for r in resumed}) == 2 and all(r["iterations"] == 2 for r in resumed)

    # the found config is what `raypose train --config` takes: the test split back, the budget kept
    best = C.load(out / "best.toml")
    row = min(resumed, key=lambda r: r[S.SCORE])
    assert best.data.validation == 0 and best.run.time_budget == 900 and best.train.members == 2
    assert best.model.channels == row["model.channels"] and best.train.lr == pytest.approx(row["train.lr"])
    assert best.data.path == str(data) and best.run.out == str(out / "best_run")
    trial_cfg = C.load(out / "trials" / first / "config.toml")
    assert trial_cfg.data.validation == S.VALIDATION and trial_cfg.run.time_budget == 900
    assert (out / "tune.png").stat().st_size > 10_000
    saved = json.loads((out / "search.json").read_text())
    assert saved["validation"]["frames"] > 0 and all(k.startswith("Train/") for k in saved["validation"]["held_out"])

    # the same search on data whose test split is noise: the same draws, the same scores
    changed = tmp_path / "changed"
    _changed_test_split(data, changed)
    tune(C.from_args(_args(BASE)), str(changed), 900, 2, tmp_path / "search2",
         space=S.read_space(tmp_path / "space.toml"))
    assert _table(tmp_path / "search2") == resumed


def _args(flags):
    """The base config `raypose tune` makes of these --set flags (the same settings, so it resumes)."""
    return argparse.Namespace(config=None, set=[flags[i + 1] for i in range(0, len(flags), 2)])


def test_validation_split_is_carved_from_training_chunks(synth_dir):
    d = load_humaneva(synth_dir)
    keys = [(s, a) for s in d.positions_2d for a in d.positions_2d[s]]
    train, test = splits.split_chunks(keys, "videopose3d")
    seqs = data_sequences(d, train)
    kept, held = splits.validation_split(seqs, S.VALIDATION)
    frames = lambda s: sum(len(kp) for _, kp, _ in s)
    assert {k[:2] for k, _, _ in held} <= set(train) and not {k[:2] for k, _, _ in held} & set(test)
    assert 0.1 < frames(held) / frames(seqs) < 0.3
    again = splits.validation_split(list(reversed(seqs)), S.VALIDATION)[1]   # whatever order Ray delivers
    assert sorted((k, len(kp)) for k, kp, _ in again) == sorted((k, len(kp)) for k, kp, _ in held)


def test_space_files_and_their_errors(tmp_path):
    f = tmp_path / "space.toml"
    f.write_text('[space]\ntrain.members = [2, 3]\n"model.widths" = [[3, 3], [3, 3, 3]]\n'
                 'train.lr_decay = {uniform = [0.9, 0.99]}\n')
    assert S.read_space(f) == {"train.members": {"choice": [2, 3]}, "model.widths": {"choice": [[3, 3], [3, 3, 3]]},
                               "train.lr_decay": {"uniform": [0.9, 0.99]}}
    for text, expected in (("train.nope = [1]", "unknown"), ("train.members = [0, 2]", "train.members"),
                           ("train.lr = {normal = [1, 2]}", "expected a list"), ("run.time_budget = [5]", "set by"),
                           ("train.lr = {loguniform = [0, 1]}", "low > 0"), ("x = ", "not valid TOML"),
                           ("train.members = {uniform = [2, 6]}", "takes int")):
        f.write_text(text)
        with pytest.raises(UserError, match=expected):
            S.read_space(f)
    assert S.check_space(S.DEFAULT_SPACE) == S.DEFAULT_SPACE


def test_out_is_a_new_directory_or_the_same_search(tmp_path, capsys):
    from raypose.cli import main
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert main(["tune", "--data", "synthetic", "--budget-s", "5", "--trials", "1", "--out",
                 str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a raypose search" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert main(["tune", "--data", "synthetic", "--budget-s", "0", "--trials", "1", "--out",
                 str(tmp_path / "x")]) == 2
    assert "--budget-s" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_plot_and_table_of_trials(tmp_path):
    histories = {"a": [(60.0, 40.0), (130.0, 30.0), (200.0, 25.0)], "b": [(70.0, 60.0)], "c": []}
    rows = [S.trial_row("a", {"train.lr": 1e-3}, histories["a"], "completed", 200),
            S.trial_row("b", {"train.lr": 3e-3}, histories["b"], "stopped", 200),
            S.trial_row("c", {"train.lr": 2e-3}, [], "error", 200)]
    best = S.write_outputs(str(tmp_path), rows, histories, C.Config(), 200, {"train.lr": {"loguniform": [1e-4, 1e-2]}})
    assert best["trial"] == "a" and best[S.SCORE] == 25.0
    t = pd.read_csv(tmp_path / "trials.csv")
    assert list(t["trial"]) == ["a", "b", "c"] and list(t["stopped_early"]) == [False, True, False]
    assert C.load(tmp_path / "best.toml").train.lr == 1e-3
    assert (tmp_path / "tune.png").stat().st_size > 10_000

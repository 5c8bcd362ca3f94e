"""Run-level behaviour with every member in this process (`run.local`, no Ray): packing, budget,
pruning, resume, config checks, and metrics.json that training and evaluation share."""
import json
import os

import pytest
import torch
from runs import tiny_config

from raypose import config as C
from raypose.cli import main
from raypose.errors import UserError
from raypose.run import Run, member_name
from raypose.train.driver import train


def local(out, **kw):
    return tiny_config(out, **{"run.local": True, **kw})


def quiet(cfg):
    return train(cfg, echo=lambda s: None)


@pytest.mark.parametrize("name", ["demo", "humaneva", "humaneva_10min"])
def test_shipped_configs_load_and_validate(name):
    cfg = C.finalize(C.load(os.path.join(os.path.dirname(C.__file__), "configs", f"{name}.toml")))
    assert cfg.model.widths == [3, 3, 3] and cfg.train.members >= 2


def test_packed_members_train_resume_and_match_separate_ones(tmp_path):
    """--members-per-worker 2 packs both members into one stacked model (local: one worker)."""
    out, flat = tmp_path / "p", {"model.dropout": 0.0}   # no dropout draws: packed == separate
    quiet(local(out, **{"train.iterations": 1, "run.members_per_worker": 2, **flat}))
    last = quiet(local(out, **{"train.iterations": 2, "run.members_per_worker": 2, **flat}))
    run = Run(out)
    assert last["ensemble"]["mpjpe_mm"] < run.record(1)["ensemble"]["mpjpe_mm"]   # resumed, still learning
    a, b = run.load_member(0, 2), run.load_member(1, 2)
    resume = run.load_member(0, 2, "resume")
    assert a["epoch"] == b["epoch"] == 2 and len(resume["optimizer"]["state"]) == len(a["model"]) - 3 * 5  # no buffer
    assert not torch.equal(a["model"]["expand_conv.weight"], b["model"]["expand_conv.weight"])
    separate = quiet(local(tmp_path / "s", **{"train.iterations": 2, **flat}))
    # the same members and draws, trained packed: only float rounding differs
    assert last["member_p_mpjpe_mm"] == pytest.approx(separate["member_p_mpjpe_mm"], rel=0.03)


def test_time_budget_stops_with_complete_state(tmp_path):
    out, lines = tmp_path / "b", []
    last = train(local(out, **{"train.iterations": 50, "run.time_budget": 0.01}), echo=lines.append)
    assert last["iteration"] == 1 and Run(out).iterations() == [1]
    assert json.loads((out / "metrics.json").read_text())["iteration"] == 1
    assert "time budget 0.01s" in lines[0]
    progress = [line for line in lines if line.startswith("iter ")]
    assert progress[0].startswith("iter 1 ") and "/50" not in progress[0] and "budget left" in progress[0]


def test_keep_last_prunes_old_iterations(tmp_path):
    out = tmp_path / "k"
    quiet(local(out, **{"train.iterations": 3, "run.keep_last": 1}))
    assert sorted(os.listdir(out / "checkpoints")) == sorted(
        [member_name(2, k, 3, kind) for k in range(2) for kind in ("ckpt", "resume")] + ["iter3.json"])


def test_more_iterations_resume_and_other_config_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    quiet(local(out, **{"train.iterations": 1}))
    lines = []
    last = train(local(out, **{"train.iterations": 2}), echo=lines.append)
    assert last["iteration"] == 2 and "resuming after iteration 1" in lines[0]
    with pytest.raises(UserError, match="different config .*model.channels 16 here, 32 given"):
        quiet(local(out, **{"train.iterations": 2, "model.channels": 32}))
    code = main(["train", "--local", "--out", str(out), "--data", "synthetic", "--channels", "64"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "different config" in err


def test_incomplete_iteration_is_discarded(tmp_path):
    """Member files without their iteration record (a kill mid-iteration) are never used."""
    out = tmp_path / "i"
    quiet(local(out, **{"train.iterations": 1}))
    ck = out / "checkpoints"
    (ck / member_name(2, 0, 2)).write_bytes(b"half a file")
    (ck / (member_name(2, 1, 2) + ".tmp-1234")).write_bytes(b"temp")
    last = quiet(local(out, **{"train.iterations": 2}))
    assert last["iteration"] == 2
    Run(out).load_member(0, 2)   # checksum verified against iter2.json
    assert not [f for f in os.listdir(ck) if ".tmp-" in f]


def test_training_again_keeps_the_evaluation(tmp_path):
    """Bug: `train` on a finished run rewrote metrics.json and lost `evaluate`'s part."""
    from raypose.evaluation.evaluate import evaluate
    out = tmp_path / "e"
    quiet(local(out))
    evaluate(str(out), echo=lambda s: None, curve=False, noise_px=0)
    lines = []
    train(local(out), echo=lines.append)          # already complete: only metrics.json is rewritten
    assert "already complete" in lines[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluation"]["iteration"] == 2 and metrics["iteration"] == 2 and len(metrics["curve"]) == 2


def test_config_is_never_mutated_and_python_runs_what_the_cli_runs(tmp_path):
    """Derived defaults are resolved once (`config.finalize`), for the CLI and Python alike."""
    from raypose.cli import build_parser
    base = C.with_values(C.Config(), {"semi.mode": "gated"})
    assert C.finalize(base).semi.labelled_fraction == C.SEMI_DEFAULT_FRACTION
    assert base.semi.labelled_fraction == 0 and C.finalize(C.Config()).semi.labelled_fraction == 1
    args = build_parser().parse_args(["train", "--semi", "gated", "--epochs", "3", "--set", "train.epochs=4"])
    cli = C.finalize(C.from_args(args))
    assert cli.semi.labelled_fraction == C.SEMI_DEFAULT_FRACTION and cli.train.epochs == 4
    assert cli.hash() == C.finalize(C.with_values(base, {"train.epochs": 4})).hash()
    with pytest.raises(Exception):  # noqa: B017  frozen: a config is never changed in place
        cli.train.epochs = 5


def test_bad_train_options_are_one_line(capsys, tmp_path):
    for argv, needle in [
        (["--sampling", "random"], "train.sampling"),
        (["--members", "0"], "train.members"),
        (["--widths", "3,4"], "model.widths"),
        (["--set", "train.nope=1"], "train.nope"),
        (["--set", "train.epochs=many"], "train.epochs"),
        (["--set", "nope"], "key=value"),
        (["--time-budget", "-5"], "run.time_budget"),
        (["--time-budget", "inf"], "run.time_budget"),
        (["--gpus-per-member", "half"], "auto or a number >= 0"),
        (["--config", str(tmp_path / "missing.toml")], "missing.toml"),
        (["--data", str(tmp_path / "nowhere")], "nowhere"),
        (["--split", "seed", "--actions", "Dance"], "Dance"),
    ]:
        code = main(["train", "--local", "--out", str(tmp_path / "x"), "--channels", "16"] + argv)
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.count("\n") == 1 and needle in err, (argv, err)
        assert not (tmp_path / "x").exists(), argv


@pytest.mark.ray   # Ray's connection path, though no Ray ever starts
def test_unreachable_address_is_one_line_not_a_hang(tmp_path):
    import subprocess
    import sys
    import time
    t0 = time.time()
    r = subprocess.run([sys.executable, "-m", "raypose.cli", "train", "--data", "synthetic", "--out",
                        str(tmp_path / "x"), "--address", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "127.0.0.1:1" in r.stderr, r.stderr[-2000:]
    assert time.time() - t0 < 30 and not (tmp_path / "x").exists()


def test_calibration_is_reproduced_on_resume_and_absent_without_a_holdout(tmp_path, synth_dir, capsys):
    """The calibration split is the config's (the last frames of every training sequence), so a
    resumed run fits the same radii as one that never stopped; holdout 0 means no radii at all,
    and predict says so instead of writing any."""
    straight = quiet(local(tmp_path / "a", **{"model.dropout": 0.0}))
    quiet(local(tmp_path / "b", **{"model.dropout": 0.0, "train.iterations": 1}))
    resumed = quiet(local(tmp_path / "b", **{"model.dropout": 0.0}))
    a, b = straight["calibration"], resumed["calibration"]
    assert a["calibration_joint_frames"] == b["calibration_joint_frames"] > 0
    assert a["coef"] == pytest.approx(b["coef"], rel=1e-4)
    assert a["score_quantiles"] == pytest.approx(b["score_quantiles"], rel=1e-4)
    held = straight["train_windows"]["labelled"]
    none = quiet(local(tmp_path / "c", **{"uncertainty.holdout": 0.0, "train.iterations": 1}))
    assert "calibration" not in none and none["train_windows"]["labelled"] > held   # those frames train
    assert main(["predict", "--run", str(tmp_path / "c"), "--input", str(synth_dir / "data_2d_humaneva15_gt.npz"),
                 "--out", str(tmp_path / "p.npz")]) == 0
    from raypose.data.npz import read_npz
    d = read_npz(tmp_path / "p.npz")
    assert "radius" not in d and d["metadata"]["quantiles"] is None
    assert d["metadata"]["uncertainty_calibration"]["trusted"] is False
    # a run trained before calibration splits existed trained on every frame: resuming it with
    # today's default would train on other data, so it is refused, naming the key
    toml = tmp_path / "c" / "config.toml"
    text = toml.read_text()
    toml.write_text(text[:text.index("[uncertainty]")] + text[text.index("[run]"):])
    with pytest.raises(UserError, match="uncertainty.holdout 0.0 here, 0.1 given"):
        quiet(local(tmp_path / "c", **{"train.iterations": 2}))
    assert quiet(local(tmp_path / "c", **{"uncertainty.holdout": 0.0}))["iteration"] == 2

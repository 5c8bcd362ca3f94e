"""Ensemble runs on a local 2-CPU Ray instance: files, metrics, faults, budget, pruning, resume checks."""
import json
import os
import time

import numpy as np
import pytest
import ray
import torch

from raypose import config as C
from raypose.cli import main
from raypose.errors import UserError
from raypose.train.checkpoints import RunDir, member_name
from raypose.train.run import train
from raypose.train.timing import breakdown
from runs import tiny_config


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """One uninterrupted 2-member, 3-iteration run on Ray workers."""
    base = tmp_path_factory.mktemp("straight")
    lines = []
    cwd = os.getcwd()
    os.chdir(base)           # a relative --out, as users type it: workers run elsewhere
    try:
        t0 = time.time()
        last = train(tiny_config("run", **{"train.iterations": 3}), echo=lines.append)
        lines.append((t0, time.time()))
    finally:
        os.chdir(cwd)
    return base / "run", last, lines


@pytest.mark.parametrize("name", ["demo", "humaneva", "humaneva_10min"])
def test_shipped_configs_load_and_validate(name):
    cfg = C.validate(C.load(os.path.join(os.path.dirname(C.__file__), "configs", f"{name}.toml")))
    assert cfg.model.widths == [3, 3, 3] and cfg.train.members >= 2


def test_run_directory_layout(straight):
    out, last, lines = straight
    run = RunDir(out)
    assert run.iterations() == [1, 2, 3]
    names = set(os.listdir(out / "checkpoints"))
    assert names == {member_name(2, k, i) for k in range(2) for i in (1, 2, 3)} | {f"iter{i}.json" for i in (1, 2, 3)}
    rec = json.loads((out / "checkpoints" / "iter3.json").read_text())
    assert rec["members"] == 2 and rec["iteration"] == 3 and len(rec["train_loss"]) == 2
    assert rec["ensemble"]["aggregate"] == "mean"
    # the mean of two members is at least as good as their average error (convexity of the norm)
    assert rec["ensemble"]["mpjpe_mm"] <= np.mean(rec["member_mpjpe_mm"]) + 1e-6
    assert 0 < rec["ensemble"]["p_mpjpe_mm"] < rec["ensemble"]["mpjpe_mm"]
    first = json.loads((out / "checkpoints" / "iter1.json").read_text())
    assert rec["ensemble"]["mpjpe_mm"] < first["ensemble"]["mpjpe_mm"]     # it learns
    state = run.load_member(2, 1, 3)
    assert {"model", "optimizer", "epoch", "torch_rng"} <= set(state)
    assert state["epoch"] == 3 and state["index"] == 1
    assert C.loads((out / "config.toml").read_text()).hash() == rec["config_hash"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iteration"] == 3 and [c["iteration"] for c in metrics["curve"]] == [1, 2, 3]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out / "tensorboard"))
    progress = [line for line in lines if isinstance(line, str) and line.startswith("iter ")]
    assert len(progress) == 3 and "ensemble MPJPE" in progress[-1] and "ETA" in progress[-1]
    # the two members are really different models
    a, b = run.load_member(2, 0, 3)["model"], run.load_member(2, 1, 3)["model"]
    assert not torch.equal(a["expand_conv.weight"], b["expand_conv.weight"])


def test_wall_time_breakdown(straight):
    out, last, lines = straight
    t0, t1 = lines[-1]
    run = RunDir(out)
    records = [run.record(i) for i in run.iterations()]
    b = breakdown(records, t0, t1)
    parts = ("startup_s", "train_s", "eval_s", "checkpoint_s", "aggregate_s", "barrier_s", "finish_s")
    assert all(b[p] >= 0 for p in parts), b
    assert sum(b[p] for p in parts) == pytest.approx(b["wall_s"])
    assert b["ray_s"] == pytest.approx(b["wall_s"] - b["train_s"] - b["eval_s"])
    assert 0 < b["ray_share"] < 1 and b["workers"] == 2
    assert b["startup_s"] > 1          # Ray workers and ingest are never free
    # every member trained on a bootstrap draw of the labelled windows, flipped twins included
    windows = last["train_windows"]["labelled"]
    assert b["member_samples"] == 2 * 3 * 1 * 2 * windows


def test_member_crash_is_survived_with_identical_results(straight, tmp_path):
    out0, last0, _ = straight
    out = tmp_path / "faulty"
    last = train(tiny_config(out, **{"train.iterations": 3, "debug.fail_member_at": "1:2"}), echo=lambda s: None)
    assert (out / "debug" / "fault-1-2").exists(), "the crash was not injected"
    assert RunDir(out).iterations() == [1, 2, 3]
    assert last["ensemble"] == last0["ensemble"]
    assert last["member_p_mpjpe_mm"] == last0["member_p_mpjpe_mm"]
    assert last["files"] == last0["files"]          # bit-identical checkpoints


def test_too_many_crashes_fail_the_run(tmp_path):
    with pytest.raises(Exception, match="injected crash of member 0 at iteration 1"):  # noqa: B017
        train(tiny_config(tmp_path / "r", **{"train.iterations": 1, "debug.fail_member_at": "0:1",
                                               "run.max_failures": 0}), echo=lambda s: None)
    assert RunDir(tmp_path / "r").iterations() == []


# ---- local mode (members in this process, no worker start-up): run-level behaviour ----------

def local(out, **kw):
    return tiny_config(out, **{"run.local": True, **kw})


def test_local_mode_matches_workers(straight, tmp_path):
    """Same seeds, same numbers, whether members run on Ray workers or in one process."""
    _, last0, _ = straight
    last = train(local(tmp_path / "l", **{"train.iterations": 3, "run.cpus_per_member": 1}), echo=lambda s: None)
    assert last["files"] == last0["files"]


def test_packed_members_train_resume_and_match_separate_ones(tmp_path):
    """--members-per-worker 2 packs both members into one stacked model (local: one worker)."""
    out, flat = tmp_path / "p", {"model.dropout": 0.0}   # no dropout draws: packed == separate
    train(local(out, **{"train.iterations": 1, "run.members_per_worker": 2, **flat}), echo=lambda s: None)
    last = train(local(out, **{"train.iterations": 2, "run.members_per_worker": 2, **flat}), echo=lambda s: None)
    run = RunDir(out)
    assert last["ensemble"]["mpjpe_mm"] < run.record(1)["ensemble"]["mpjpe_mm"]   # resumed, still learning
    a, b = run.load_member(2, 0, 2), run.load_member(2, 1, 2)
    assert a["epoch"] == b["epoch"] == 2 and len(a["optimizer"]["state"]) == len(a["model"]) - 3 * 5   # every parameter, no buffer
    assert not torch.equal(a["model"]["expand_conv.weight"], b["model"]["expand_conv.weight"])
    separate = train(local(tmp_path / "s", **{"train.iterations": 2, **flat}), echo=lambda s: None)
    # the same members and draws, trained packed: only float rounding differs
    assert last["member_p_mpjpe_mm"] == pytest.approx(separate["member_p_mpjpe_mm"], rel=0.03)


def test_time_budget_stops_with_complete_state(tmp_path):
    out = tmp_path / "b"
    last = train(local(out, **{"train.iterations": 50, "run.time_budget": 0.01}), echo=lambda s: None)
    assert last["iteration"] == 1 and RunDir(out).iterations() == [1]
    assert json.loads((out / "metrics.json").read_text())["iteration"] == 1


def test_keep_last_prunes_old_iterations(tmp_path):
    out = tmp_path / "k"
    train(local(out, **{"train.iterations": 3, "run.keep_last": 1}), echo=lambda s: None)
    assert sorted(os.listdir(out / "checkpoints")) == [member_name(2, 0, 3), member_name(2, 1, 3), "iter3.json"]


def test_more_iterations_resume_and_other_config_is_refused(tmp_path, capsys):
    out = tmp_path / "r"
    train(local(out, **{"train.iterations": 1}), echo=lambda s: None)
    lines = []
    last = train(local(out, **{"train.iterations": 2}), echo=lines.append)
    assert last["iteration"] == 2 and "resuming after iteration 1" in lines[0]
    with pytest.raises(UserError, match="different config"):
        train(local(out, **{"train.iterations": 2, "model.channels": 32}), echo=lambda s: None)
    code = main(["train", "--local", "--out", str(out), "--data", "synthetic", "--channels", "64"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "different config" in err


def test_incomplete_iteration_is_discarded(tmp_path):
    """Member files without their iteration record (a kill mid-iteration) are never used."""
    out = tmp_path / "i"
    train(local(out, **{"train.iterations": 1}), echo=lambda s: None)
    ck = out / "checkpoints"
    (ck / member_name(2, 0, 2)).write_bytes(b"half a file")
    (ck / (member_name(2, 1, 2) + ".tmp-1234")).write_bytes(b"temp")
    last = train(local(out, **{"train.iterations": 2}), echo=lambda s: None)
    assert last["iteration"] == 2
    RunDir(out).load_member(2, 0, 2)   # checksum verified against iter2.json
    assert not [f for f in os.listdir(ck) if ".tmp-" in f]


def test_bad_train_options_are_one_line(capsys, tmp_path):
    for argv, needle in [
        (["--sampling", "random"], "train.sampling"),
        (["--members", "0"], "train.members"),
        (["--widths", "3,4"], "model.widths"),
        (["--set", "train.nope=1"], "train.nope"),
        (["--set", "train.epochs=many"], "train.epochs"),
        (["--gpus-per-member", "2"], "--gpus-per-member"),
        (["--config", str(tmp_path / "missing.toml")], "missing.toml"),
        (["--data", str(tmp_path / "nowhere")], "nowhere"),
        (["--split", "seed", "--actions", "Dance"], "Dance"),
    ]:
        code = main(["train", "--local", "--out", str(tmp_path / "x"), "--channels", "16"] + argv)
        err = capsys.readouterr().err
        assert code == 2, argv
        assert err.count("\n") == 1 and needle in err, (argv, err)

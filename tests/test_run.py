"""Ensemble runs on Ray workers (the session's 2-CPU Ray): files, metrics, timing, faults."""
import json
import os
import time

import numpy as np
import pytest
import torch
from runs import tiny_config

from raypose import config as C
from raypose.run import Run, member_name
from raypose.train.driver import train
from raypose.train.timing import breakdown

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def straight(tmp_path_factory, ray_local):
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


def test_run_directory_layout(straight):
    out, last, lines = straight
    run = Run(out)
    assert run.iterations() == [1, 2, 3]
    names = set(os.listdir(out / "checkpoints"))
    # every iteration keeps its weights; only the latest keeps what resuming needs
    assert names == ({member_name(2, k, i) for k in range(2) for i in (1, 2, 3)} | {f"iter{i}.json" for i in (1, 2, 3)}
                     | {member_name(2, k, 3, "resume") for k in range(2)})
    rec = json.loads((out / "checkpoints" / "iter3.json").read_text())
    assert rec["members"] == 2 and rec["iteration"] == 3 and len(rec["train_loss"]) == 2
    assert rec["ensemble"]["aggregate"] == "weighted"   # the default everywhere
    # the mean of two members is at least as good as their average error (convexity of the norm)
    assert rec["ensemble"]["mpjpe_mm"] <= np.mean(rec["member_mpjpe_mm"]) + 1e-6
    assert 0 < rec["ensemble"]["p_mpjpe_mm"] < rec["ensemble"]["mpjpe_mm"]
    first = json.loads((out / "checkpoints" / "iter1.json").read_text())
    assert rec["ensemble"]["mpjpe_mm"] < first["ensemble"]["mpjpe_mm"]     # it learns
    state, resume = run.load_member(1, 3), run.load_member(1, 3, "resume")
    assert {"model", "model_args", "epoch", "index"} <= set(state) and {"optimizer", "torch_rng"} <= set(resume)
    assert state["epoch"] == 3 and state["index"] == 1 and state["model_args"]["num_joints_in"] == 15
    assert "optimizer" not in run.load_member(1, 1)          # older iterations: weights only
    assert json.loads((out / "layout.json").read_text())["joints_2d"] == 15
    assert C.loads((out / "config.toml").read_text()).hash() == rec["config_hash"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["iteration"] == 3 and [c["iteration"] for c in metrics["curve"]] == [1, 2, 3]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out / "tensorboard"))
    progress = [line for line in lines if isinstance(line, str) and line.startswith("iter ")]
    assert len(progress) == 3 and " eval frames MPJPE" in progress[-1] and "ETA" in progress[-1]
    # the two members are really different models
    a, b = run.load_member(0, 3)["model"], run.load_member(1, 3)["model"]
    assert not torch.equal(a["expand_conv.weight"], b["expand_conv.weight"])


def test_wall_time_breakdown(straight):
    out, last, lines = straight
    t0, t1 = lines[-1]
    run = Run(out)
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
    assert Run(out).iterations() == [1, 2, 3]
    assert last["ensemble"] == last0["ensemble"]
    assert last["member_p_mpjpe_mm"] == last0["member_p_mpjpe_mm"]
    assert last["files"] == last0["files"]          # bit-identical checkpoints


def test_too_many_crashes_fail_the_run(tmp_path, ray_local):
    with pytest.raises(Exception, match="injected crash of member 0 at iteration 1"):  # noqa: B017
        train(tiny_config(tmp_path / "r", **{"train.iterations": 1, "debug.fail_member_at": "0:1",
                                               "run.max_failures": 0}), echo=lambda s: None)
    assert Run(tmp_path / "r").iterations() == []


def test_local_mode_matches_workers(straight, tmp_path):
    """Same seeds, same numbers, whether members run on Ray workers or in this process (no Ray)."""
    _, last0, _ = straight
    last = train(tiny_config(tmp_path / "l", **{"train.iterations": 3, "run.cpus_per_member": 1,
                                                 "run.local": True}), echo=lambda s: None)
    assert last["files"] == last0["files"]

"""One writer per run directory: a second driver is refused whatever its config; a gone
driver's lease is taken over; a failed resume leaves nothing half-written."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from runs import tiny_config, tiny_flags

from raypose import config as C
from raypose.errors import UserError
from raypose.run import LEASE, Run, member_name
from raypose.train.driver import train


def test_two_drivers_on_one_directory(tmp_path):
    """Started together with other seeds: one trains, the other gets one line naming the owner,
    and the directory's config.toml and every record agree."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "raypose.cli", "train", "--local", *tiny_flags(out, iterations=3, epochs=1)]
    procs = [subprocess.Popen(cmd + ["--seed", str(seed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=240), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, _, err in results if code == 2)
    assert loser.count("\n") == 1 and "another driver" in loser and "pid" in loser, loser
    winner = next(seed for seed, (code, _, _) in zip((1, 2), results) if code == 0)
    run = Run(out)
    assert run.config.train.seed == winner
    assert {run.record(i)["config_hash"] for i in run.iterations()} == {run.config.hash()}
    assert not (out / LEASE).exists()   # released


def test_a_gone_drivers_lease_is_taken_over(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LEASE).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "started": time.time(),
                                         "renewed": time.time(), "token": "x"}))
    assert train(tiny_config(out, **{"run.local": True, "train.iterations": 1}), echo=lambda s: None)
    assert not (out / LEASE).exists()
    # another host's lease: stale once it has not been renewed for a while, else its owner lives
    foreign = {"host": "elsewhere", "pid": 1, "started": 0, "token": "y"}
    (out / LEASE).write_text(json.dumps({**foreign, "renewed": time.time() - 3600}))
    run = Run(out)
    run.acquire()
    run.release()
    (out / LEASE).write_text(json.dumps({**foreign, "renewed": time.time()}))
    with pytest.raises(UserError, match="host elsewhere, pid 1"):
        Run(out).acquire()
    (out / LEASE).write_text("{half a lea")   # a driver killed while writing it
    Run(out).acquire()


def test_lease_on_a_filesystem_without_exclusive_create(tmp_path, monkeypatch):
    """S3 and GCS have no create-if-absent in pyarrow: write, read back, the token decides."""
    import raypose.run
    run = Run(tmp_path / "s3ish")
    monkeypatch.setattr(Run, "local", property(lambda self: False))
    monkeypatch.setattr(raypose.run, "LEASE_SETTLE_S", 0.05)
    run.acquire()
    other = Run(tmp_path / "s3ish")
    with pytest.raises(UserError, match="another driver"):
        other.acquire()
    run.release()
    other.acquire()
    assert json.loads((tmp_path / "s3ish" / LEASE).read_text())["token"] == other._lease["token"]


def test_damaged_member_on_resume_is_one_line_and_nothing_half_written(tmp_path):
    out = tmp_path / "d"
    cfg = tiny_config(out, **{"run.local": True, "train.iterations": 1})
    train(cfg, echo=lambda s: None)
    more = C.with_values(cfg, {"train.iterations": 2})
    ckpt = out / "checkpoints" / member_name(2, 1, 1, "resume")
    ckpt.write_bytes(ckpt.read_bytes()[:-10])
    with pytest.raises(UserError, match="checksum differs"):
        train(more, echo=lambda s: None)
    ckpt.unlink()
    with pytest.raises(UserError, match="not found"):
        train(more, echo=lambda s: None)
    assert sorted(os.listdir(out / "checkpoints")) == sorted(
        [member_name(2, 0, 1), member_name(2, 1, 1), member_name(2, 0, 1, "resume"), "iter1.json"])
    assert not (out / LEASE).exists()


def test_a_failed_iteration_leaves_no_member_file_without_its_record(tmp_path, monkeypatch):
    """Member 0 of iteration 2 is saved, then saving member 1 fails (a full disk, say)."""
    out = tmp_path / "f"
    save = Run.save_member

    def failing(self, k, i, *states):
        if (k, i) == (1, 2):
            raise OSError("No space left on device")
        return save(self, k, i, *states)
    monkeypatch.setattr(Run, "save_member", failing)
    with pytest.raises(OSError, match="No space"):
        train(tiny_config(out, **{"run.local": True}), echo=lambda s: None)
    names = set(os.listdir(out / "checkpoints"))
    assert "iter1.json" in names and not [n for n in names if "iter2" in n], names


def test_a_workers_commit_needs_the_drivers_lease(tmp_path):
    """Workers of a killed driver must not commit into the run its successor took over."""
    run = Run(tmp_path / "w")
    run.acquire()
    token = run.lease_token
    run.check_lease(token)
    (tmp_path / "w" / LEASE).write_text(json.dumps({"host": "x", "pid": 1, "started": 0, "renewed": time.time(),
                                                    "token": "successor"}))
    with pytest.raises(UserError, match="another driver took over"):
        Run(tmp_path / "w").check_lease(token)


def test_a_new_config_replaces_one_that_never_trained(tmp_path):
    """A first run that failed before any iteration is retried with a corrected config."""
    out = tmp_path / "n"
    with pytest.raises(RuntimeError, match="injected crash"):
        train(tiny_config(out, **{"run.local": True, "debug.fail_member_at": "0:1"}), echo=lambda s: None)
    assert (out / "config.toml").exists() and not Run(out).iterations()
    last = train(tiny_config(out, **{"run.local": True, "train.iterations": 1, "model.channels": 8}),
                 echo=lambda s: None)
    assert last["iteration"] == 1 and Run(out).config.model.channels == 8

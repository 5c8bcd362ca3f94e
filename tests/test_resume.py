"""Kill the driver with SIGKILL mid-run, run the same command again: it resumes and ends as if never killed."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from runs import tiny_config, tiny_flags

from raypose.run import Run
from raypose.train.driver import train

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ITERATIONS, EPOCHS = 4, 2


def _wait_group_gone(pgid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def test_sigkill_driver_then_same_command_resumes(tmp_path, ray_local):
    out = tmp_path / "run"
    # both drivers join this session's Ray (as `ray job submit` drivers join a cluster's)
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "raypose.cli", "train", *tiny_flags(out, ITERATIONS, EPOCHS),
           "--set", "run.cpus_per_member=1", "--address", address]
    # a deterministic kill point: the driver SIGKILLs itself once it sees iteration 1 committed,
    # while the workers wait there (debug.kill_driver_at is not part of the config's hash)
    proc = subprocess.Popen(cmd + ["--set", "debug.kill_driver_at=1"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not _wait_group_gone(proc.pid, 10):   # that driver's own processes, and no others
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert Run(out).latest() == 1

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    resumed = re.search(r"resuming after iteration (\d+)", again.stdout)
    assert resumed and int(resumed.group(1)) == 1
    assert "Token authentication" not in again.stdout + again.stderr   # nothing a user cannot act on
    assert "available CPUs" not in again.stdout + again.stderr
    run = Run(out)
    assert run.iterations() == list(range(1, ITERATIONS + 1))
    for i in run.iterations():          # every file is whole: checksums match the records
        for k in range(2):
            run.load_member(k, i)
    assert not [f for f in os.listdir(out / "checkpoints") if ".tmp-" in f]

    # the same run without interruption (members in this process: bit-identical to workers)
    straight = train(tiny_config(tmp_path / "straight", **{
        "train.iterations": ITERATIONS, "train.epochs": EPOCHS, "run.local": True,
        "run.cpus_per_member": 1}), echo=lambda s: None)
    assert run.record(ITERATIONS)["files"] == straight["files"]
    assert run.record(ITERATIONS)["ensemble"] == straight["ensemble"]

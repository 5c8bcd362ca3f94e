"""Kill the driver with SIGKILL mid-run, run the same command again: it resumes and ends as if never killed."""
import os
import re
import signal
import subprocess
import sys
import time

import ray

from raypose.train.checkpoints import RunDir
from raypose.train.run import train
from runs import tiny_config, tiny_flags

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


def test_sigkill_driver_then_same_command_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "raypose.cli", "train", *tiny_flags(out, ITERATIONS, EPOCHS),
           "--set", "run.cpus_per_member=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 180
    while not (out / "checkpoints" / "iter1.json").exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.time() < deadline, "no iteration within 3 minutes"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # Ray's own processes notice the dead driver and stop; give them time, then clear the rest
    if not _wait_group_gone(proc.pid, 10):
        os.killpg(proc.pid, signal.SIGKILL)
    killed_at = RunDir(out).latest()
    assert 1 <= killed_at < ITERATIONS, f"the run was not interrupted (at {killed_at})"

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    resumed = re.search(r"resuming after iteration (\d+)", again.stdout)
    assert resumed and int(resumed.group(1)) == killed_at
    run = RunDir(out)
    assert run.iterations() == list(range(1, ITERATIONS + 1))
    for i in run.iterations():          # every file is whole: checksums match the records
        for k in range(2):
            run.load_member(2, k, i)
    assert not [f for f in os.listdir(out / "checkpoints") if ".tmp-" in f]

    # the same run without interruption (members in one process: bit-identical to workers)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        straight = train(tiny_config(tmp_path / "straight", **{
            "train.iterations": ITERATIONS, "train.epochs": EPOCHS, "run.local": True,
            "run.cpus_per_member": 1}), echo=lambda s: None)
    finally:
        ray.shutdown()
    assert run.record(ITERATIONS)["files"] == straight["files"]
    assert run.record(ITERATIONS)["ensemble"] == straight["ensemble"]

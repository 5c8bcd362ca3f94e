"""The other two ways to run: `ray job submit` to a running head, and a multi-node cluster."""
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml
from runs import tiny_config, tiny_flags

from raypose.run import Run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def test_cluster_yaml_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        raw = yaml.safe_load(f)
    cfg = prepare_config(copy.deepcopy(raw))
    validate_config(cfg)                      # what `ray up` runs before touching the cloud
    assert cfg["head_node_type"] == "head"
    workers = cfg["available_node_types"]["gpu_worker"]
    assert workers["max_workers"] >= 1 and "g5" in workers["node_config"]["InstanceType"]
    assert any("pip install" in c and "raypose" in c for c in cfg["setup_commands"])
    bad = copy.deepcopy(raw)                  # the validation is real: a typo is caught
    bad["available_node_types"]["gpu_worker"]["max_workerz"] = 3
    with pytest.raises(Exception, match="max_workerz"):
        validate_config(prepare_config(bad))


@pytest.mark.ray
@pytest.mark.cluster
def test_members_spread_over_two_nodes(tmp_path, no_ray):
    """Two simulated 1-CPU nodes, two members of 1 CPU each: one member lands on each node."""
    import ray
    from ray.cluster_utils import Cluster

    from raypose.train.driver import train

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        last = train(tiny_config(tmp_path / "run", **{"train.iterations": 1}), echo=lambda s: None)
        assert last["iteration"] == 1
        assert len(set(last["member_nodes"])) == 2, last["member_nodes"]
    finally:
        ray.shutdown()
        cluster.shutdown()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url, timeout):
    import urllib.error
    import urllib.request
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return True
        except urllib.error.HTTPError:
            return True                       # it answers (token auth may refuse us): it is up
        except OSError:
            time.sleep(0.5)
    return False


def _stop_head(port):
    """Stop the Ray processes of the head on `port` only: never a Ray this test did not start."""
    import psutil
    mine = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if ("gcs" in cmd and f":{port}" in cmd) or f"gcs_server_port={port}" in cmd:
            mine.append(p)
    for p in mine:
        p.kill()
    psutil.wait_procs(mine, timeout=30)


@pytest.mark.ray
@pytest.mark.cluster
@pytest.mark.skipif(shutil.which("ray", path=BIN) is None, reason="ray CLI not installed beside python")
def test_ray_job_submit_to_running_head(tmp_path):
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"], RAY_AUTH_MODE="token")
    ray_cli = os.path.join(BIN, "ray")
    port, dash = _free_port(), _free_port()
    start = subprocess.run([ray_cli, "start", "--head", "--num-cpus", "2", "--port", str(port),
                            "--dashboard-port", str(dash), "--include-dashboard", "true",
                            "--disable-usage-stats"], env=env, capture_output=True, text=True, timeout=120)
    assert start.returncode == 0, start.stderr[-2000:]
    try:
        address = f"http://127.0.0.1:{dash}"
        assert _wait_http(address + "/api/version", 120), "the head's dashboard never came up"
        out = tmp_path / "jobrun"
        for _ in range(30):   # a fresh head's job agent can take a while to come up on a busy machine
            sub = subprocess.run([ray_cli, "job", "submit", "--address", address, "--submission-id",
                                  "raypose-test", "--working-dir", ROOT, "--",
                                  "python", "scripts/train.py", *tiny_flags(out)],
                                 env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
            if "No available agent" not in sub.stdout + sub.stderr:
                break
            time.sleep(2)
        # `ray job status` renders JobStatus.SUCCEEDED as "Job '<id>' succeeded"
        status = subprocess.run([ray_cli, "job", "status", "--address", address, "raypose-test"],
                                env=env, capture_output=True, text=True, timeout=60)
        assert "Job 'raypose-test' succeeded" in status.stdout + status.stderr, (
            status.stdout + status.stderr + sub.stdout[-3000:] + sub.stderr[-3000:])
        assert "iter 2/2" in sub.stdout          # the driver's progress lines reach the submitter
        run = Run(out)
        assert run.iterations() == [1, 2]
        for k in range(2):
            run.load_member(k, 2)
        assert json.loads((out / "metrics.json").read_text())["iteration"] == 2
    finally:
        _stop_head(port)

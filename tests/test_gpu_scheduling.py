"""GPU scheduling and `ray job submit` on real Ray without a GPU: a head (token auth, as Ray 2.60
starts them) with Ray's autoscaler,
whose fake node provider starts GPU nodes (logical GPUs, local raylets) when the members
ask for them, as `ray up cluster.yaml`'s autoscaler starts g5 instances."""
import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import torch
from raycluster import BIN, FakeAutoscalingCluster, free_port
from runs import tiny_config, tiny_flags

from raypose.errors import UserError
from raypose.run import Run
from raypose.train.driver import train

pytestmark = [pytest.mark.ray, pytest.mark.cluster, pytest.mark.slow]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPU_NODE = {"gpu_node": {"resources": {"CPU": 1, "GPU": 1}, "max_workers": 2}}


@pytest.fixture(scope="module")
def gpu_cluster(no_ray):
    """A 1-CPU head with no GPU and a GPU node type at 0 nodes; this process joins it."""
    import ray
    with FakeAutoscalingCluster(head_cpus=1, worker_types=GPU_NODE, dashboard_port=free_port()) as cluster:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            yield cluster
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def no_ray():   # module-scoped twin of conftest's: the session's Ray gives way to this cluster's
    import ray
    ray.shutdown()
    yield


def _gpu_nodes(ray):
    return {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")}


def test_requests_the_node_types_cannot_hold_are_refused_before_any_start(tmp_path, gpu_cluster):
    import ray
    quiet = lambda s: None
    assert not _gpu_nodes(ray)   # no GPU up: only the autoscaler's node type has them
    t0 = time.time()
    with pytest.raises(UserError, match="no node type of this cluster can hold") as e:
        train(tiny_config(tmp_path / "three", **{"run.gpus_per_member": "1", "train.members": 3}), echo=quiet)
    assert time.time() - t0 < 60 and "gpu_node: 0 up + 2 more x 1 CPU, 1 GPU" in str(e.value)
    with pytest.raises(UserError, match="--shared-out"):   # members may land on other nodes
        train(tiny_config(tmp_path / "local"), echo=quiet)
    assert not (tmp_path / "local" / "checkpoints").exists()


def _wait_http(url, timeout):
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


def test_ray_job_submit_members_ask_for_gpus_and_the_autoscaler_starts_gpu_nodes(tmp_path, gpu_cluster):
    """`ray job submit` as a user does it, with the token: the driver runs on the head, finds the
    autoscaler's node types there, and the members' GPU requests make it start two GPU nodes."""
    import ray
    assert not _gpu_nodes(ray)   # no GPU up: only the autoscaler's node type has them
    env = dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"])
    ray_cli = os.path.join(BIN, "ray")
    address = f"http://127.0.0.1:{gpu_cluster.dashboard_port}"
    assert _wait_http(address + "/api/version", 120), "the head's dashboard never came up"
    out = tmp_path / "jobrun"
    flags = [*tiny_flags(out, iterations=1), "--shared-out", "--set", "debug.gpu_as_cpu=true"]
    deadline = time.time() + 120
    while True:   # a fresh head's job agent can take a while to come up on a busy machine
        sub = subprocess.run([ray_cli, "job", "submit", "--address", address, "--submission-id", "raypose-test",
                              "--working-dir", ROOT, "--", "raypose", "train", *flags],
                             env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
        if "No available agent" not in sub.stdout + sub.stderr or time.time() > deadline:
            break
        time.sleep(2)
    status = subprocess.run([ray_cli, "job", "status", "--address", address, "raypose-test"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert "Job 'raypose-test' succeeded" in status.stdout + status.stderr, (
        status.stdout + status.stderr + sub.stdout[-3000:] + sub.stderr[-3000:])
    planned = [line for line in sub.stdout.splitlines() if "members on" in line]
    assert planned and "2 worker(s) (CPU 1, GPU 1) on gpu_node" in planned[0], sub.stdout[-3000:]
    assert "iter 1/1" in sub.stdout          # the driver's progress lines reach the submitter
    gpu_nodes = _gpu_nodes(ray)
    assert len(gpu_nodes) == 2, ray.nodes()   # started for the two members' requests
    last = Run(out).record(1)
    assert set(last["member_nodes"]) == gpu_nodes   # one member on each
    assert [d["device"] for d in last["member_devices"]] == ["cpu", "cpu"]   # debug.gpu_as_cpu: no CUDA here
    run = Run(out)
    assert run.iterations() == [1]
    for k in range(2):
        run.load_member(k, 1)
    assert json.loads((out / "metrics.json").read_text())["iteration"] == 1


def test_a_workers_user_error_reaches_the_user_as_its_one_line(monkeypatch):
    """What Ray Train raises when a worker fails (a node whose torch has no CUDA: see
    tests/test_device.py), unwrapped by the driver to the worker's own line."""
    from ray.exceptions import RayTaskError
    from ray.train.v2.api.exceptions import WorkerGroupError

    from raypose.model.device import worker_device
    from raypose.train.run import user_error as _user_error
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)   # as on this CPU machine
    try:
        worker_device([0], None, False, "10.0.0.5")
    except UserError as e:
        cause = e
    task_error = RayTaskError("train_loop", "Traceback (most recent call last): ...", cause).as_instanceof_cause()
    wrapped = WorkerGroupError("Training failed due to worker errors", {1: task_error})
    found = _user_error(wrapped)
    assert isinstance(found, UserError) and str(found) == str(cause)
    assert str(found).startswith("node 10.0.0.5: Ray gave this worker GPU(s) [0] but torch") and "\n" not in str(found)
    assert _user_error(WorkerGroupError("x", {0: RuntimeError("boom")})) is None


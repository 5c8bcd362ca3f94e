"""GPU scheduling on real Ray without a GPU: logical GPUs on nodes that Ray's autoscaler starts
(its fake node provider) when the members ask for them."""
import time

import pytest
from raycluster import FakeAutoscalingCluster
from runs import tiny_config

from raypose.errors import UserError
from raypose.run import Run
from raypose.train.driver import train

pytestmark = [pytest.mark.ray, pytest.mark.cluster, pytest.mark.slow]


def _gpu_nodes(ray):
    return {n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")}


def test_members_ask_for_gpus_and_the_autoscaler_starts_gpu_nodes(tmp_path, no_ray):
    import ray
    quiet = lambda s: None
    gpu_type = {"gpu_node": {"resources": {"CPU": 1, "GPU": 1}, "max_workers": 2}}
    with FakeAutoscalingCluster(head_cpus=1, worker_types=gpu_type) as cluster:
        ray.init(address=cluster.address, log_to_driver=False)
        try:
            assert not _gpu_nodes(ray)   # no GPU up: only the autoscaler's node type has them
            t0 = time.time()
            with pytest.raises(UserError, match="no node type of this cluster can hold") as e:
                train(tiny_config(tmp_path / "two", **{"run.gpus_per_member": "2"}), echo=quiet)
            assert time.time() - t0 < 60 and "gpu_node: 0 up + 2 more x 1 CPU, 1 GPU" in str(e.value)
            with pytest.raises(UserError, match="--shared-out"):   # members may land on other nodes
                train(tiny_config(tmp_path / "local"), echo=quiet)
            assert not (tmp_path / "local" / "checkpoints").exists()

            # a worker given a GPU by Ray whose torch has no CUDA: one line naming the node
            with pytest.raises(UserError, match=r"node [\d.]+: Ray gave this worker GPU\(s\) \[0\] but torch .* "
                                                "CPU-only build"):
                train(tiny_config(tmp_path / "nocuda", **{"run.shared_out": True, "run.max_failures": 0,
                                                          "train.iterations": 1}), echo=quiet)
            lines = []
            last = train(tiny_config(tmp_path / "run", **{"run.shared_out": True, "debug.gpu_as_cpu": True,
                                                          "train.iterations": 1}), echo=lines.append)
            gpu_nodes = _gpu_nodes(ray)
            assert len(gpu_nodes) == 2, ray.nodes()   # started for the two members' requests
            assert "2 worker(s) (CPU 1, GPU 1) on gpu_node" in lines[0]
            assert set(last["member_nodes"]) == gpu_nodes   # one member on each
            assert [d["device"] for d in last["member_devices"]] == ["cpu", "cpu"]
            run = Run(tmp_path / "run")
            assert run.iterations() == [1]
            for k in range(2):
                run.load_member(k, 1)
        finally:
            ray.shutdown()

"""Ray Train's side of a run: one TorchTrainer whose workers are the ensemble's members.

One `fit()` covers all iterations (every fit costs ~15 s of worker start-up). Members never
share gradients: no DDP; each worker runs an `EnsembleWorker` (plain PyTorch) over its
members. After each iteration the workers exchange their reports (an all-gather of the
evaluation predictions, a few MB) so that rank 0 can commit the iteration record, and
`ray.train.report` is the barrier before the next one. The driver only watches the run
directory (`driver.train`).
"""
import logging
import math
import os
import socket
import time

from ..errors import UserError
from ..layout import Layout


def _gather(obj):
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def train_loop(loop_cfg):
    """`train_loop_per_worker`: this worker's members, all iterations."""
    import ray.train
    import torch

    from .. import config as C
    from ..data.ingest import shard_sequences
    from ..run import Run
    from .worker import EnsembleWorker

    logging.getLogger("ray.data").setLevel(logging.ERROR)   # its warnings are about our own CPUs
    cfg, layout = C.from_dict(loop_cfg["cfg"]), Layout.from_dict(loop_cfg["layout"])
    ctx = ray.train.get_context()
    torch.set_num_threads(loop_cfg["threads"])
    device = ray.train.torch.get_device() if loop_cfg["use_gpu"] and torch.cuda.is_available() else "cpu"
    train = shard_sequences(ray.train.get_dataset_shard("train"), layout.joints_2d)
    if loop_cfg["unlabelled"]:   # 2D only: these chunks' 3D never reaches a worker
        train += shard_sequences(ray.train.get_dataset_shard("unlabelled"), layout.joints_2d)
    evaluation = shard_sequences(ray.train.get_dataset_shard("eval"), layout.joints_2d)
    worker = EnsembleWorker(cfg, layout, Run(cfg.run.out), train, evaluation, ctx.get_world_rank(),
                            ctx.get_world_size(), device, ray.get_runtime_context().get_node_id(),
                            loop_cfg["deadline"], loop_cfg["lease"])

    def after(i, record, stop):
        metrics = {"iteration": i}
        if record:
            metrics.update(ensemble_p_mpjpe_mm=record["ensemble"]["p_mpjpe_mm"])
        ray.train.report(metrics)   # a barrier: no member starts i+1 before the record exists
        if i == cfg.debug.kill_driver_at:   # tests: the driver kills itself on seeing this record
            time.sleep(300)
    worker.run_iterations(_gather, after)


def resources(cfg, cluster):
    """(num_workers, per-worker resources, threads, use_gpu) for this cluster."""
    n, per = cfg.train.members, cfg.run.members_per_worker
    workers = math.ceil(n / per)
    use_gpu = cluster.get("GPU", 0) >= 1
    cpus = cfg.run.cpus_per_member * per if cfg.run.cpus_per_member else None
    if cpus is None:
        total = cluster.get("CPU", 1)
        cpus = max(1, math.floor(total / workers)) if total >= workers else total / workers
    res = {"CPU": cpus, **({"GPU": 1} if use_gpu else {})}
    return workers, res, max(1, int(cpus)), use_gpu


def _answers(address, timeout=10.0):
    """Whether something listens at a host:port address (a Ray GCS), within `timeout`."""
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _address(address):
    """What ray.init gets: --address (or RAY_ADDRESS, or the last `ray start`'s cluster) when a
    cluster answers there; a new local Ray when none is given and the recorded one is gone."""
    from ray._private.services import get_ray_address_from_environment
    try:
        found = get_ray_address_from_environment(address or None, None)
    except ConnectionError as e:
        raise UserError(f"--address {address}: {e}") from None
    if found is None or found == "local" or found.startswith("ray://") or _answers(found):
        return found or "local"
    if address or os.environ.get("RAY_ADDRESS"):
        raise UserError(f"--address {found}: no Ray cluster answers there; expected the address "
                        "`ray start --head` printed, or no --address for a Ray on this machine")
    return "local"   # /tmp/ray records a cluster that is gone


def ensure_ray(address):
    """Connect to (or start) Ray, quietly: warnings a user cannot act on are left out."""
    import ray
    for name in ("ray", "ray.data", "ray._private.authentication.authentication_token_setup"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        ray.init(address=_address(address), log_to_driver=False, configure_logging=True, logging_level="ERROR")
    return ray


def _trainer_class():
    """TorchTrainer without Ray Train 2.60's placement-group cleaner, whose stop waits out a
    State API timeout at the end of every fit (measured here: 13-16 s, then 2-3 s without it).
    The cleaner guards against a controller that dies while its driver lives on; a raypose
    driver exits then, and Ray frees a finished job's placement groups itself."""
    from ray.train.torch import TorchTrainer
    try:
        from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
    except ImportError:   # another Ray: keep its defaults
        return TorchTrainer

    class Trainer(TorchTrainer):
        def _create_default_callbacks(self):
            return [c for c in super()._create_default_callbacks()
                    if not isinstance(c, PlacementGroupCleanerCallback)]
    return Trainer


def fit(cfg, layout, run, source, chunks, deadline):
    """Start the TorchTrainer; returns a function that waits for it (in a thread) and re-raises."""
    from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig

    from ..data.ingest import datasets

    ray = ensure_ray(cfg.run.address)
    dsets = datasets(source, *chunks)
    workers, res, threads, use_gpu = resources(cfg, ray.cluster_resources())
    loop_cfg = {"cfg": cfg.to_dict(), "layout": layout.to_dict(), "threads": threads, "use_gpu": use_gpu,
                "unlabelled": bool(chunks[1]), "deadline": deadline, "lease": run.lease_token}
    trainer = _trainer_class()(
        train_loop, train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=res),
        datasets=dsets, dataset_config=DataConfig(datasets_to_split=[]),
        run_config=RunConfig(storage_path=run.uri if not run.local else run.root, name="ray",
                             failure_config=FailureConfig(max_failures=cfg.run.max_failures)),
    )
    return f"{workers} worker(s) {res}", trainer.fit

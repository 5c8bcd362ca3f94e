"""Ray Train's side of a run: one TorchTrainer whose workers are the ensemble's members.

One `fit()` covers all iterations (every fit costs ~15 s of worker start-up). Members never
share gradients: no DDP; each worker runs an `EnsembleWorker` (plain PyTorch) over its
members. After each iteration the workers exchange their reports (an all-gather of the
evaluation predictions, a few MB) so that rank 0 can commit the iteration record, and
`ray.train.report` is the barrier before the next one. The driver only watches the run
directory (`driver.train`).
"""
import logging
import os
import socket
import time

from raypose.datasets.layout import Layout
from raypose.errors import UserError
from raypose.train import memory
from raypose.train.plan import NodeType, node_types_from_config, plan


def _gather(report):
    """Every worker's report of an iteration, for `EnsembleWorker.finish_iteration`.

    Rank 0 alone commits the record, so it alone receives the members' predictions of the
    evaluation and calibration frames (a gather, not an all-gather: with N workers an all-gather
    held N copies of every prediction, N^2 in all); every rank gets the rest of each report,
    training predictions included (pseudo-labels are made on every rank)."""
    import dataclasses

    import torch.distributed as dist
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [report]
    world, rank = dist.get_world_size(), dist.get_rank()
    light = dataclasses.replace(report, preds={}, calib_preds={})
    reports = [None] * world
    dist.all_gather_object(reports, light)
    heavy = [None] * world if rank == 0 else None
    dist.gather_object((report.preds, report.calib_preds), heavy, dst=0)
    if rank == 0:
        reports = [dataclasses.replace(r, preds=p, calib_preds=c) for r, (p, c) in zip(reports, heavy)]
    return reports


def train_loop(loop_cfg):
    """`train_loop_per_worker`: this worker's members, all iterations, on the run's windows, which
    Ray gives every worker of a node from its object store without a copy."""
    import ray.train
    import torch

    from raypose import config as C
    from raypose.model.device import worker_device
    from raypose.run import Run
    from raypose.train.worker import EnsembleWorker

    logging.getLogger("ray.data").setLevel(logging.ERROR)   # its warnings are about our own CPUs
    cfg, layout = C.from_dict(loop_cfg["cfg"]), Layout.from_dict(loop_cfg["layout"])
    ctx = ray.train.get_context()
    torch.set_num_threads(loop_cfg["threads"])
    device = worker_device(ray.get_gpu_ids(), ray.train.torch.get_device() if torch.cuda.is_available() else None,
                           cfg.debug.gpu_as_cpu, ray.util.get_node_ip_address())
    windows = ray.get(loop_cfg["windows"])
    worker = EnsembleWorker(cfg, layout, Run(cfg.run.out), windows, ctx.get_world_rank(), ctx.get_world_size(),
                            device, ray.get_runtime_context().get_node_id(), loop_cfg["deadline"], loop_cfg["lease"])

    def after(i, record, stop):
        metrics = {"iteration": i}
        if record:
            metrics.update(ensemble_p_mpjpe_mm=record["ensemble"]["p_mpjpe_mm"])
        ray.train.report(metrics)   # a barrier: no member starts i+1 before the record exists
        if i == cfg.debug.kill_driver_at:   # tests: the driver kills itself on seeing this record
            time.sleep(300)
    worker.run_iterations(_gather, after)


def _build_from_table(cfg_dict, layout_dict, source, chunks):
    """A Ray task: the WindowSet of a prepared table's chunks, read by Ray Data; its result lives
    in this node's object store, and Ray copies it to another node once, for all its workers."""
    from raypose import config as C
    from raypose.data.ingest import read_chunks
    from raypose.train.windowset import build

    logging.getLogger("ray.data").setLevel(logging.ERROR)
    train, test = read_chunks(source, *chunks)
    windows = build(C.from_dict(cfg_dict), Layout.from_dict(layout_dict), train, test)
    return windows.nbytes(), windows


def window_set(ray, cfg, layout, source, chunks):
    """(ObjectRef of the run's WindowSet, its bytes), built before any member holds a CPU.

    npz and synthetic frames are in the driver already: it builds the windows, puts them in the
    object store and lets its own copy go. A prepared table is read by a Ray task (Ray Data's
    reads), so that the driver never holds its frames."""
    from raypose.train.windowset import from_source
    if source.parquet is None:
        windows = from_source(cfg, layout, source, chunks)
        ref, size = ray.put(windows), windows.nbytes()
        del windows   # the object store holds them now
        return ref, size
    size, ref = ray.remote(num_cpus=0, num_returns=2, max_calls=1)(_build_from_table).remote(
        cfg.to_dict(), layout.to_dict(), source, chunks)
    try:
        return ref, ray.get(size)
    except Exception as e:   # the builder's UserError (a damaged file) as its one line
        raise user_error(e) or e from None


def user_error(e, depth=0):
    """A UserError a worker or task raised (a node without CUDA, a damaged file), from inside Ray's
    wrappers, so that the user gets its one line instead of Ray's tracebacks."""
    if e is None or depth > 6:
        return None
    if isinstance(e, UserError):
        cause = getattr(e, "cause", None)   # a RayTaskError made an instance of its cause
        return cause if isinstance(cause, UserError) else UserError(str(e.args[0]) if e.args else str(e))
    if "OutOfMemoryError" in type(e).__name__ or "running low on memory" in str(e):
        return UserError(memory.oom_message(str(e)))
    inner = [getattr(e, "cause", None), e.__cause__]
    inner += list((getattr(e, "worker_failures", None) or {}).values())
    for x in inner:
        found = user_error(x, depth + 1) if x is not e else None
        if found:
            return found
    return None


def _nodes(ray):
    """NodeTypes of the nodes that are up, alike ones grouped, the driver's own apart."""
    me = ray.get_runtime_context().get_node_id()
    groups = {}
    for n in ray.nodes():
        if n.get("Alive"):
            r = n.get("Resources", {})
            key = (float(r.get("CPU", 0)), float(r.get("GPU", 0)), n["NodeID"] == me)
            memory = float(r.get("memory", 0)) + float(r.get("object_store_memory", 0))
            groups.setdefault(key, []).append((n["NodeManagerAddress"], memory))
    return [NodeType("the driver's node" if mine else f"{len(nodes)} node(s) at "
                     f"{', '.join(sorted({ip for ip, _ in nodes}))}", cpus, gpus, len(nodes), 0, mine,
                     min(m for _, m in nodes)) for (cpus, gpus, mine), nodes in groups.items()]


def _autoscaler_config(gcs_address):
    """The running autoscaler's cluster config (the YAML of `ray up`, or `ray start
    --autoscaling-config`): its monitor runs on the head, where raypose's driver runs too (a
    local run, or `ray job submit`). None where there is no autoscaler."""
    import yaml
    port = gcs_address.rpartition(":")[2]
    paths, monitors = [], 0
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any("monitor" in a for a in args[:3]) and any(a.startswith("--gcs-address=") and
                                                         a.endswith(f":{port}") for a in args):
            monitors += 1   # a path given to `ray start` is the monitor's, relative to its directory
            paths += [os.path.join(f"/proc/{pid}/cwd", os.path.expanduser(a.split("=", 1)[1]))
                      for a in args if a.startswith("--autoscaling-config=")]
    if not monitors:   # not on this cluster's head: `ray up` leaves its config in the home directory
        paths.append(os.path.expanduser("~/ray_bootstrap_config.yaml"))
    for path in paths:
        try:
            with open(path) as f:
                return yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue
    return None


def cluster_types(ray):
    """What the planner sees: the nodes up, and the node types an autoscaler may start."""
    up = _nodes(ray)
    config = _autoscaler_config(ray.get_runtime_context().gcs_address)
    return node_types_from_config(config, up) if config else up


def plan_for(cfg, types):
    r = cfg.run
    return plan(cfg.train.members, types, r.gpus_per_member, r.members_per_worker, r.cpus_per_member)


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
        # workers of a Ray started elsewhere lack this shell's S3 endpoint and credentials; a driver
        # of `ray job submit` (RAY_JOB_CONFIG_JSON_ENV_VAR) has its job's own env_vars, which must not clash
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        env = {"env_vars": aws} if aws and "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ else None
        ray.init(address=_address(address), log_to_driver=False, configure_logging=True, logging_level="ERROR",
                 runtime_env=env)
    return ray


def _trainer_class(in_actor):
    """TorchTrainer without Ray Train 2.60's placement-group cleaner, whose stop waits out a
    State API timeout at the end of every fit (measured here: 13-16 s, then 2-3 s without it).
    The cleaner guards against a controller that dies while its job lives on; a raypose
    driver exits then, and Ray frees a finished job's placement groups itself. A driver that is
    an actor (a raypose tune trial, killed when the scheduler stops it) keeps it: its workers'
    placement group would otherwise hold their CPUs until the whole search ends."""
    from ray.train.torch import TorchTrainer
    if in_actor:
        return TorchTrainer
    try:
        from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback
    except ImportError:   # another Ray: keep its defaults
        return TorchTrainer

    class Trainer(TorchTrainer):
        def _create_default_callbacks(self):
            return [c for c in super()._create_default_callbacks()
                    if not isinstance(c, PlacementGroupCleanerCallback)]
    return Trainer


def _groups():
    from ray.util import placement_group_table
    return placement_group_table()


def _placed(p, before):
    """Whether a placement group with the plan's worker bundles is created (Ray Train V2 asks
    for one per worker group); groups that existed before this fit (other jobs) do not count."""
    want = {k: float(v) for k, v in p.resources.items()}
    for gid, g in _groups().items():
        if gid in before:
            continue
        bundles = list((g.get("bundles") or {}).values())
        if (g.get("state") == "CREATED" and len(bundles) == p.workers
                and all({k: float(v) for k, v in b.items() if k in want} == want for b in bundles)):
            return True
    return False


def placement_watch(cfg, p, echo):
    """A check, called every second while the fit runs, that raises once the workers have gone
    unplaced for run.placement_timeout: Ray Train would wait for ever, without a word."""
    timeout = cfg.run.placement_timeout or (900.0 if p.can_grow else 60.0)
    state = {"since": time.time(), "told": False, "checked": 0.0}
    before = set(_groups())

    def check():
        now = time.time()
        if now - state["checked"] < 5:
            return
        state["checked"] = now
        if _placed(p, before):
            state.update(since=now, told=False)
            return
        waited = now - state["since"]
        if waited > 20 and not state["told"]:
            state["told"] = True
            echo(f"raypose: waiting for {p.describe()}" + (" (the autoscaler starts nodes)" if p.can_grow else
                 " (other jobs may hold them)") + f"; giving up after {timeout:g}s (--placement-timeout)")
        if waited > timeout:
            raise UserError(f"{p.describe()}: not placed after {waited:.0f}s (--placement-timeout {timeout:g}); "
                            "expected the cluster to free or start such nodes (see `ray status`)")
    return check


def _check_out(cfg, run, p):
    """A local --out is on the driver's disk only: members on other nodes would write theirs
    elsewhere, and the run would fail at its end."""
    if run.local and not p.on_driver_only and not cfg.run.shared_out:
        raise UserError(f"--out {run.root}: a local directory, but members may run on {p.nodes} node(s) "
                        f"({', '.join(p.holders)}); expected an s3:// or gs:// URI, or --shared-out when "
                        "every node mounts this path")


def fit(cfg, layout, run, source, chunks, deadline):
    """Plan, then start the TorchTrainer; returns (what was asked, a function that waits for it
    and re-raises, the plan)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    from raypose import config as C

    ray = ensure_ray(cfg.run.address)
    types = cluster_types(ray)
    p = plan_for(cfg, types)
    _check_out(cfg, run, p)
    cfg = C.with_values(cfg, {"run.members_per_worker": p.members_per_worker})
    windows, size = window_set(ray, cfg, layout, source, chunks)
    memory.check(p, types, size, cfg, layout.joints_2d, layout.joints_3d)   # before any worker starts
    loop_cfg = {"cfg": cfg.to_dict(), "layout": layout.to_dict(), "threads": p.threads, "windows": windows,
                "deadline": deadline, "lease": run.lease_token}
    trainer = _trainer_class(ray.get_runtime_context().get_actor_id() is not None)(
        train_loop, train_loop_config=loop_cfg,
        torch_config=TorchConfig(backend="gloo"),   # the exchange is a few MB of numpy: CPU, whatever the devices
        scaling_config=ScalingConfig(num_workers=p.workers, use_gpu=p.use_gpu, resources_per_worker=p.resources),
        run_config=RunConfig(storage_path=run.uri if not run.local else run.root, name="ray",
                             # worker groups that cannot start (a node's runtime env) are retried
                             # as often as crashes, not for ever
                             failure_config=FailureConfig(max_failures=cfg.run.max_failures,
                                                          controller_failure_limit=max(1, cfg.run.max_failures))),
    )
    return p.describe(), trainer.fit, p

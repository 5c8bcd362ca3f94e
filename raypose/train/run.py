"""Assembling the Ray run: one TorchTrainer whose workers are the ensemble's members.

One `fit()` covers all iterations (every fit costs ~15 s of worker start-up). Members never
share gradients: no DDP, each worker owns its members' models. After each iteration every
worker saves its members, then the workers exchange their predictions on the evaluation split
(an all-gather, a few MB) so that rank 0 can aggregate the ensemble and commit the iteration
record. Aggregating inside the workers keeps the members alive between iterations and keeps the
test set off the driver. The driver only watches the run directory and prints progress.
"""
import math
import os
import threading
import time

import numpy as np

from .. import config as C
from ..errors import UserError
from .checkpoints import CAMERAS, RunDir


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

    from ..data.ingest import shard_sequences
    from ..data.windows import make_windows
    from ..ensemble import aggregate
    from ..geometry import focal_table, window_focals
    from ..metrics import mpjpe, p_mpjpe
    from ..semi import due, select
    from .member import Member, TrainSet, draw_sample
    from .packed import train_packed

    cfg = C.from_dict(loop_cfg["cfg"])
    t, n, semi = cfg.train, cfg.train.members, cfg.semi.mode != "off"
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(loop_cfg["threads"])
    device = "cpu"
    if torch.cuda.is_available() and loop_cfg["use_gpu"]:
        device = ray.train.torch.get_device()
    run = RunDir(cfg.run.out)
    rf = int(np.prod(cfg.model.widths))
    nj, sym = loop_cfg["num_joints_2d"], tuple(loop_cfg["symmetry"])
    seqs = shard_sequences(ray.train.get_dataset_shard("train"), nj)
    if loop_cfg["unlabelled"]:   # 2D only: these chunks' 3D never reaches a worker
        seqs += shard_sequences(ray.train.get_dataset_shard("unlabelled"), nj)
    train_w = make_windows(seqs, rf)
    eval_w = make_windows(shard_sequences(ray.train.get_dataset_shard("eval"), nj), rf)
    data = TrainSet(train_w, t.flip, sym, device)

    mine = [k for k in range(n) if k % world == rank]
    members = [Member(k, cfg.model, t, nj, t.iterations * t.epochs, sym, device) for k in mine]
    pack = cfg.run.pack and cfg.run.members_per_worker > 1 and len(members) > 1
    start = run.latest()
    if start:
        for m in members:
            m.load_state_dict(run.load_member(n, m.index, start, map_location=device))
        if run.exists(f"checkpoints/pseudo_iter{start}.npz"):
            p = run.load_npz(f"checkpoints/pseudo_iter{start}.npz", start)
            data.set_pseudo(p["index"], p["pose"], p["weight"])
    fault = C.fault(cfg)
    node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"

    # the cameras' focal lengths and the subjects' bones, from the labelled windows: fixed for
    # the whole run. Focal lengths go into the run (cameras.json) for evaluate/predict's 2D fit.
    centre, focal, bones = _centre_2d(train_w, nj), None, None
    cams = train_w.key_per_target(2)
    fit_2d = semi and cfg.semi.fit_2d and centre is not None
    table = run.focals()   # a resumed run's own
    if table is None and centre is not None and train_w.labelled.any() and (rank == 0 or fit_2d):
        table = focal_table(train_w.targets, centre, train_w.labelled, cams, seed=t.seed)
        if rank == 0:
            run.write_json(CAMERAS, {"focal": table, "units": "normalised: pixels x 2 / image width",
                                     "fitted_on": "labelled training windows"})
    if fit_2d and table is not None:
        focal = window_focals(table, cams)
    if semi and cfg.semi.fit_bones:
        bones = _bones(train_w)
    for i in range(start + 1, t.iterations + 1):
        losses, files, preds, train_preds, times = {}, {}, {}, {}, {}
        t_iter = time.time()
        pool = data.pool()
        samples = {m.index: pool[draw_sample(len(pool), m.index, n, i, t.sampling, t.subset_size, t.seed)]
                   for m in members}
        for m in members:
            if fault == (m.index, i) and not run.exists(f"debug/fault-{m.index}-{i}"):
                run.write_bytes(f"debug/fault-{m.index}-{i}", b"injected\n")
                raise RuntimeError(f"injected crash of member {m.index} at iteration {i}")
        train_s = {}
        if pack:   # one stacked model for this worker's members; the time is shared out evenly
            t0 = time.time()
            losses.update(zip(mine, train_packed(members, data, [samples[k] for k in mine], i, t.epochs)))
            train_s = dict.fromkeys(mine, (time.time() - t0) / len(members))
        for m in members:
            if not pack:
                t0 = time.time()
                losses[m.index] = m.train_iteration(data, samples[m.index], i, t.epochs)
                train_s[m.index] = time.time() - t0
            t1 = time.time()
            files[m.index] = run.save_member(n, m.index, i, m.state_dict())
            t2 = time.time()
            preds[m.index] = m.predict(eval_w, t.flip)
            if due(cfg.semi, i):
                train_preds[m.index] = m.predict(train_w, t.flip)
            times[m.index] = {"train_s": train_s[m.index], "save_s": t2 - t1, "eval_s": time.time() - t2,
                              "samples": len(samples[m.index]) * (2 if t.flip else 1) * t.epochs,
                              "worker": rank}
        over = loop_cfg["deadline"] > 0 and time.time() > loop_cfg["deadline"]
        nodes = {m.index: node for m in members}
        worker = {"rank": rank, "started": t_iter}
        gathered = _gather((losses, files, preds, over, nodes, train_preds, times, worker))
        t_gathered = time.time()
        stop = any(g[3] for g in gathered) or i == t.iterations
        for g in gathered:
            losses.update(g[0]), files.update(g[1]), preds.update(g[2]), nodes.update(g[4])
            train_preds.update(g[5]), times.update(g[6])
        order = sorted(preds)
        semi_info = None
        if due(cfg.semi, i):   # every rank makes the same pseudo-labels from the same predictions
            idx, pose, weight, semi_info = select(cfg.semi, i, np.stack([train_preds[k] for k in order]),
                                                  data.labelled, t.seed, centre, bones, focal)
            data.set_pseudo(idx, pose, weight)
        elif semi and data.pseudo.any():   # kept from an earlier iteration, saved again with this one
            idx = np.flatnonzero(data.pseudo)
            pose, weight = data.targets[idx].cpu().numpy(), data.weights[idx].cpu().numpy()
            semi_info = {"mode": cfg.semi.mode, "pseudo": len(idx), "kept": True}
        metrics = {"iteration": i}
        if rank == 0:
            if semi_info is not None:
                files[f"pseudo_iter{i}.npz"] = run.save_npz(f"checkpoints/pseudo_iter{i}.npz",
                                                            index=idx, pose=pose, weight=weight)
            stack = np.stack([preds[k] for k in order])
            gt = eval_w.targets
            ens = aggregate(stack, "mean")
            record = {
                "iteration": i, "members": n, "config_hash": cfg.hash(),
                "epochs_done": i * t.epochs, "eval_frames": len(gt),
                "files": {(f"{n}_members_ensemble{k}_iter{i}.ckpt" if isinstance(k, int) else k): v
                          for k, v in files.items()},
                "train_loss": [float(losses[k]) for k in order],
                "member_nodes": [nodes[k] for k in order],
                "member_mpjpe_mm": [1000 * float(mpjpe(p, gt)) for p in stack],
                "member_p_mpjpe_mm": [1000 * float(p_mpjpe(p, gt)) for p in stack],
                "ensemble": {"aggregate": "mean", "mpjpe_mm": 1000 * float(mpjpe(ens, gt)),
                             "p_mpjpe_mm": 1000 * float(p_mpjpe(ens, gt))},
                "train_windows": {"labelled": int(data.labelled.sum()),
                                  "unlabelled": int((~data.labelled).sum())},
                "time": time.time(),
                # where the wall time went (scripts/bench_ensemble_scaling.py reads this)
                "timing": {"members": [times[k] for k in order],
                           "workers": sorted((g[7] for g in gathered), key=lambda w: w["rank"]),
                           "gathered": t_gathered, "aggregate_s": time.time() - t_gathered},
            }
            if semi_info:
                record["semi"] = semi_info
            run.write_json(f"checkpoints/iter{i}.json", record)   # the commit point
            run.prune(n, cfg.run.keep_last)
            metrics.update(ensemble_mpjpe_mm=record["ensemble"]["mpjpe_mm"],
                           ensemble_p_mpjpe_mm=record["ensemble"]["p_mpjpe_mm"])
        ray.train.report(metrics)   # a barrier: no member starts i+1 before the record exists
        if stop:
            break


def _centre_2d(windows, num_joints_2d):
    """Each target's own 2D frame, when its joints are the 3D skeleton's (else None)."""
    if num_joints_2d != 15:
        return None
    return windows.centre()


def _bones(windows):
    """Each training window's reference bone lengths, from the labelled windows only."""
    from ..geometry import subject_bones
    return subject_bones(windows.targets, windows.labelled, windows.key_per_target(0))


def _resources(cfg, cluster):
    """(num_workers, per-worker resources, threads, use_gpu) for this cluster."""
    n, per = cfg.train.members, cfg.run.members_per_worker
    workers = math.ceil(n / per)
    gpus = cluster.get("GPU", 0)
    use_gpu = gpus >= 1
    cpus = cfg.run.cpus_per_member * per if cfg.run.cpus_per_member else None
    if cpus is None:
        total = cluster.get("CPU", 1)
        cpus = max(1, math.floor(total / workers)) if total >= workers else total / workers
    res = {"CPU": cpus}
    if use_gpu:
        res["GPU"] = 1
    return workers, res, max(1, int(cpus)), use_gpu


def check_config(run, cfg):
    """Refuse to resume a run made with another config; True if the run is new."""
    if not run.exists("config.toml"):
        return True
    old = C.loads(run.read_bytes("config.toml").decode(), source=run.path("config.toml"))
    if old.hash() != cfg.hash():
        raise UserError(f"{run.path('config.toml')}: this run directory holds a different "
                        f"config (hash {old.hash()} vs {cfg.hash()}); expected the same config "
                        "to resume, or choose another --out")
    return False


class Progress:
    """Watches the run directory from the driver: one line per committed iteration, TensorBoard."""

    def __init__(self, run, cfg, first, echo=print):
        self.run, self.cfg, self.seen, self.echo = run, cfg, first, echo
        self.first_done, self.t0 = first, time.time()
        self.writer = None
        if "://" not in run.uri:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(os.path.join(run.root, "tensorboard"))
            except ImportError:  # tensorboard is optional at run time
                pass

    def poll(self):
        for i in self.run.iterations():
            if i <= self.seen:
                continue
            r = self.run.record(i)
            self.seen = i
            done = i - self.first_done
            elapsed = time.time() - self.t0
            left = self.cfg.train.iterations - i
            eta = elapsed / max(done, 1) * left
            if self.cfg.run.time_budget:   # the budget ends the run first
                eta = min(eta, max(0.0, self.cfg.run.time_budget - elapsed))
            e = r["ensemble"]
            self.echo(f"iter {i}/{self.cfg.train.iterations}  loss "
                      + " ".join(f"{1000 * x:.1f}" for x in r["train_loss"])
                      + f" mm  ensemble MPJPE {e['mpjpe_mm']:.1f} mm  P-MPJPE {e['p_mpjpe_mm']:.1f} mm"
                      + f"  (best member {min(r['member_p_mpjpe_mm']):.1f})"
                      + f"  elapsed {elapsed:.0f}s  ETA {eta:.0f}s")
            if self.writer:
                w = self.writer
                for k, loss in enumerate(r["train_loss"]):
                    w.add_scalar(f"train_loss_mm/member{k}", 1000 * loss, i)
                    w.add_scalar(f"p_mpjpe_mm/member{k}", r["member_p_mpjpe_mm"][k], i)
                w.add_scalar("mpjpe_mm/ensemble", e["mpjpe_mm"], i)
                w.add_scalar("p_mpjpe_mm/ensemble", e["p_mpjpe_mm"], i)
                w.flush()


def _ensure_ray(address):
    import ray
    if not ray.is_initialized():
        kwargs = {"address": address} if address else {}
        ray.init(log_to_driver=False, configure_logging=True, logging_level="WARNING", **kwargs)
    import logging
    logging.getLogger("ray.data").setLevel(logging.WARNING)   # one progress line per iteration is ours
    return ray


def train(cfg, echo=print):
    """Train (or resume) the run described by cfg; returns the final iteration record."""
    C.validate(cfg)
    if "://" not in cfg.run.out:   # workers run in other directories (and on other machines)
        cfg.run.out = os.path.abspath(cfg.run.out)
    from ray.train import DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from ..data.ingest import datasets
    from ..data.source import open_source

    run = RunDir(cfg.run.out)
    new = check_config(run, cfg)
    n = cfg.train.members
    start = run.latest()
    if start >= cfg.train.iterations:
        echo(f"{run.uri}: already complete at iteration {start}")
        return _finish(run, cfg, echo)
    source = open_source(cfg.data)
    ray = _ensure_ray(cfg.run.address)
    dsets, train_keys, unlabelled_keys, test_keys = datasets(
        source, cfg.data.split, cfg.data.actions, cfg.semi.labelled_fraction, cfg.train.seed)
    workers, res, threads, use_gpu = _resources(cfg, ray.cluster_resources())
    if new:   # only now that the data and options are known to be good
        run.write_bytes("config.toml", C.to_toml(cfg).encode())
    run.clean_incomplete(n)
    if cfg.run.local:
        workers = 0
        threads = int(cfg.run.cpus_per_member) or max(1, int(ray.cluster_resources().get("CPU", 1)))
    echo(f"raypose: {n} members on {max(workers, 1)} worker(s) {res if workers else '(local)'}, "
         f"{source.description}, split {cfg.data.split}: {len(train_keys)} train"
         + (f" + {len(unlabelled_keys)} unlabelled ({cfg.semi.mode})" if unlabelled_keys else "")
         + f" / {len(test_keys)} eval chunks; " + (f"resuming after iteration {start}" if start else "starting"))
    loop_cfg = {"cfg": cfg.to_dict(), "num_joints_2d": source.num_joints_2d,
                "symmetry": [list(source.symmetry[0]), list(source.symmetry[1])],
                "threads": threads, "use_gpu": use_gpu, "unlabelled": bool(unlabelled_keys),
                "deadline": time.time() + cfg.run.time_budget if cfg.run.time_budget else 0}
    storage = run.uri if "://" in run.uri else run.root
    trainer = TorchTrainer(
        train_loop, train_loop_config=loop_cfg,
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu and workers > 0,
                                     resources_per_worker=res if workers else None),
        datasets=dsets, dataset_config=DataConfig(datasets_to_split=[]),
        run_config=RunConfig(storage_path=storage, name="ray",
                             failure_config=FailureConfig(max_failures=cfg.run.max_failures)),
    )
    progress = Progress(run, cfg, start, echo)
    outcome = {}

    def fit():
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # re-raised in the driver thread below
            outcome["error"] = e

    import torch
    driver_threads = torch.get_num_threads()   # local mode trains in this process
    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(1.0)
        progress.poll()
    progress.poll()
    torch.set_num_threads(driver_threads)
    if "error" in outcome:
        raise outcome["error"]
    return _finish(run, cfg, echo)


def _finish(run, cfg, echo):
    """metrics.json: the last iteration's record and the curve over iterations."""
    its = run.iterations()
    if not its:
        raise UserError(f"{run.uri}: no complete iteration was written")
    history = [run.record(i) for i in its]
    last = history[-1]
    summary = {"iteration": last["iteration"], "members": last["members"],
               "config_hash": last["config_hash"], "last": last,
               "curve": [{"iteration": r["iteration"], "train_loss": r["train_loss"],
                          "ensemble": r["ensemble"], "member_p_mpjpe_mm": r["member_p_mpjpe_mm"],
                          "member_mpjpe_mm": r["member_mpjpe_mm"]} for r in history]}
    run.write_json("metrics.json", summary)
    return last

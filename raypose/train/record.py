"""The iteration record: what the workers' reports add up to, as the run's commit point."""
import time

import numpy as np

from raypose.ensemble.aggregate import DEFAULT_AGGREGATE, aggregate
from raypose.evaluation.metrics import mpjpe, p_mpjpe


def iteration_record(cfg, i, reports, gt, labelled, extra_files, semi_info, t_gathered):
    """checkpoints/iter{i}.json from every worker's report; rank 0 writes it after every member
    file, so a record names only files that are whole (their SHA-256 with them)."""
    def merged(name):
        return {k: v for r in reports for k, v in getattr(r, name).items()}
    preds, losses, nodes, timing = merged("preds"), merged("losses"), merged("nodes"), merged("timing")
    devices = merged("devices")
    order = sorted(preds)
    stack = np.stack([preds[k] for k in order])
    ens = aggregate(stack, DEFAULT_AGGREGATE)
    record = {
        "iteration": i, "members": cfg.train.members, "config_hash": cfg.hash(),
        "epochs_done": i * cfg.train.epochs, "eval_frames": len(gt),
        "files": {**merged("files"), **extra_files},
        "train_loss": [float(losses[k]) for k in order],
        "member_nodes": [nodes[k] for k in order],
        "member_devices": [devices.get(k) for k in order],   # {"device": ..., "peak_mem_mib": ...}
        "member_mpjpe_mm": [1000 * float(mpjpe(p, gt)) for p in stack],
        "member_p_mpjpe_mm": [1000 * float(p_mpjpe(p, gt)) for p in stack],
        "ensemble": {"aggregate": DEFAULT_AGGREGATE, "mpjpe_mm": 1000 * float(mpjpe(ens, gt)),
                     "p_mpjpe_mm": 1000 * float(p_mpjpe(ens, gt))},
        "train_windows": {"labelled": int(labelled.sum()), "unlabelled": int((~labelled).sum())},
        "time": time.time(),
        # where the wall time went (train/timing.py and scripts/bench_ensemble_scaling.py read this)
        "timing": {"members": [timing[k] for k in order],
                   "workers": [{"rank": r.rank, "started": r.started} for r in sorted(reports, key=lambda r: r.rank)],
                   "gathered": t_gathered, "aggregate_s": time.time() - t_gathered},
    }
    if semi_info:
        record["semi"] = semi_info
    return record

"""Benchmark: an ensemble of 5 against its members, every aggregate, a corrupted member,
uncertainty calibration and the spread's response to noisy 2D input.

    python scripts/bench_ensemble.py [--real ../shared/data/humaneva] [--json benchmarks/ensemble.json]

Trains one ensemble per data set with `raypose train` (synthetic always; real HumanEva-I, official
protocol, Walk/Jog/Box, GT 2D, where --real exists), then evaluates it. Prints one summary line
per data set and writes JSON.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch
from benchlib import REAL_DEFAULT, data_sets, header, write

from raypose import config as C
from raypose.ensemble.aggregate import AGGREGATES, aggregate
from raypose.ensemble.ensemble import Ensemble, model_args
from raypose.evaluation.evaluate import eval_windows, evaluate, quick
from raypose.model.temporal import TemporalModel
from raypose.run import Run
from raypose.train.driver import train


def corrupted(run_dir, members=5, seed=0):
    """Replace member 0 by a model with random weights; P-MPJPE per aggregate, clean and corrupted."""
    run = Run.open(run_dir)
    ens = Ensemble.load(run, run.iteration())
    windows, _ = eval_windows(run.config)
    preds = ens.predict(windows, tta=True)
    torch.manual_seed(seed)
    bad = TemporalModel(**model_args(run.config.model, ens.layout)).eval()
    bad_preds = preds.copy()
    bad_preds[0] = Ensemble([bad], ens.layout).predict(windows, tta=True)[0]
    gt = windows.targets
    out = {}
    for m in AGGREGATES:
        clean, dirty = quick(aggregate(preds, m), gt), quick(aggregate(bad_preds, m), gt)
        out[m] = {"clean_p_mpjpe": clean["p_mpjpe"], "corrupted_p_mpjpe": dirty["p_mpjpe"],
                  "loss": dirty["p_mpjpe"] / clean["p_mpjpe"] - 1}
    out["corrupt_member_alone_p_mpjpe"] = quick(bad_preds[0], gt)["p_mpjpe"]
    return out


def bench(name, cfg, echo):
    t0 = time.time()
    train(cfg, echo=echo)
    train_s = time.time() - t0
    ev = evaluate(cfg.run.out, echo=echo)
    members = ev["member_summaries"]
    mean_member = {m: float(np.mean([x[m] for x in members])) for m in ("mpjpe", "p_mpjpe")}
    res = {
        "data": name, "members": cfg.train.members, "channels": cfg.model.channels,
        "iterations": cfg.train.iterations, "epochs_per_iteration": cfg.train.epochs,
        "train_seconds": train_s, "protocol_summary": ev["summary"], "mean_member": mean_member,
        "best_member_p_mpjpe": min(x["p_mpjpe"] for x in members),
        "aggregates_all_frames": ev["aggregates"],
        "ensemble_gain_mm": ev["gain_mm"],
        "calibration": {k: ev["calibration"][k] for k in ("spearman", "spearman_frame", "ause")},
        "spearman_per_joint": ev["calibration"]["spearman_per_joint"],
        "noise": ev["noise"], "corrupted": corrupted(cfg.run.out),
    }
    c = res["corrupted"]
    echo(f"[{name}] ensemble P-MPJPE {ev['summary']['p_mpjpe']:.1f} mm vs mean member "
         f"{mean_member['p_mpjpe']:.1f} (best {res['best_member_p_mpjpe']:.1f}); corrupted member: "
         + ", ".join(f"{m} {100 * c[m]['loss']:+.0f}%" for m in AGGREGATES)
         + f"; Spearman {res['calibration']['spearman']:.2f}, AUSE {res['calibration']['ause']:.3f}; "
         f"spread x{ev['noise']['spread_ratio']:.2f} at {ev['noise']['sigma_px']:g} px noise")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--out", default="bench_out/ensemble", help="where the runs go (replaced)")
    ap.add_argument("--json", default="benchmarks/ensemble.json")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    import shutil

    results = {**header(), "runs": []}
    for name, path in data_sets(args.real):
        out = os.path.join(args.out, name)
        shutil.rmtree(out, ignore_errors=True)
        cfg = C.with_values(C.Config(), {
            "data.path": path, "data.actions": "Walk,Jog,Box",
            "model.channels": args.channels, "model.dropout": 0.1,
            "train.members": args.members, "train.iterations": args.iterations, "train.epochs": args.epochs,
            "train.lr": 2e-3, "train.lr_decay": 0.95, "run.out": out})
        results["runs"].append(bench(name, C.finalize(cfg), print))
    write(args.json, results)


if __name__ == "__main__":
    main()

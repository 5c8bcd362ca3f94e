"""Benchmark: semi-supervised ensembles. Fully labelled, labelled-only, the 2022 schedule and
spread-gated pseudo-labels; same members, same iterations, official protocol, Walk/Jog/Box.

    python scripts/bench_semi.py [--real ../shared/data/humaneva] [--json benchmarks/semi.json]

Reports P-MPJPE (protocol 2, mean over actions then subjects) for each mode and the share of the
labelled-only -> fully-labelled gap that schedule and gated close.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from benchlib import REAL_DEFAULT, data_sets, header, write

from raypose import config as C
from raypose.ensemble.aggregate import aggregate
from raypose.ensemble.ensemble import Ensemble
from raypose.evaluation.evaluate import eval_windows, protocol
from raypose.run import Run
from raypose.train.driver import train

MODES = [("full", "off", 1.0), ("labelled_only", "off", None), ("schedule", "schedule", None),
         ("gated", "gated", None), ("gated_no_fit", "gated", None)]
NO_FIT = {"gated_no_fit": ["semi.fit_2d=false", "semi.fit_bones=false"]}   # the ablation: spread gate alone


def score(run_dir):
    run = Run.open(run_dir)
    windows, _ = eval_windows(run.config)
    preds = Ensemble.load(run, run.iteration()).predict(windows, tta=True)
    _, summary = protocol(windows, aggregate(preds, "mean"))
    return summary


def bench(name, path, args):
    res = {"data": name, "modes": {}}
    for mode, semi, fraction in MODES:
        if args.modes and mode not in args.modes.split(","):
            continue
        out = os.path.join(args.out, name, mode)
        shutil.rmtree(out, ignore_errors=True)
        values = {"data.path": path, "data.actions": "Walk,Jog,Box",
                  "model.channels": args.channels, "model.dropout": 0.1,
                  "train.members": args.members, "train.iterations": args.iterations, "train.epochs": args.epochs,
                  "train.lr": 2e-3, "train.lr_decay": 0.95,
                  "semi.mode": semi, "semi.labelled_fraction": fraction or args.fraction,
                  "semi.warmup": args.warmup, "semi.per_iteration": args.per_iteration, "run.out": out}
        cfg = C.with_values(C.Config(), values)
        for item in args.set + NO_FIT.get(mode, []):
            key, value = item.split("=", 1)
            cfg = C.with_values(cfg, {key.strip(): value.strip()})
        t0 = time.time()
        last = train(C.finalize(cfg), echo=lambda s: None)
        summary = score(out)
        res["modes"][mode] = {"p_mpjpe": summary["p_mpjpe"], "mpjpe": summary["mpjpe"],
                              "seconds": time.time() - t0, "semi": last.get("semi"),
                              "train_windows": last["train_windows"]}
        print(f"[{name}] {mode}: P-MPJPE {summary['p_mpjpe']:.1f} mm ({time.time() - t0:.0f} s)", flush=True)
    m = res["modes"]
    if len(m) < len(MODES):
        return res
    gap = m["labelled_only"]["p_mpjpe"] - m["full"]["p_mpjpe"]
    for mode in ("schedule", "gated", "gated_no_fit"):
        m[mode]["gap_closed"] = (m["labelled_only"]["p_mpjpe"] - m[mode]["p_mpjpe"]) / gap if gap > 0 else None
    print(f"[{name}] gap {gap:.1f} mm; schedule closes {100 * (m['schedule']['gap_closed'] or 0):.0f}%, "
          f"gated {100 * (m['gated']['gap_closed'] or 0):.0f}%")
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--synthetic-only", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--out", default="bench_out/semi")
    ap.add_argument("--json", default="benchmarks/semi.json")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--per-iteration", type=int, default=500)
    ap.add_argument("--fraction", type=float, default=0.4)
    ap.add_argument("--modes", help="subset, e.g. gated,schedule (no gap computed then)")
    ap.add_argument("--set", action="append", default=[], help="extra config key=value for every mode")
    args = ap.parse_args()
    results = {**header(), "runs": []}
    for name, path in data_sets(args.real, args.synthetic_only):
        if args.skip_synthetic and name == "synthetic":
            continue
        results["runs"].append(bench(name, path, args))
    write(args.json, results)


if __name__ == "__main__":
    main()

"""Benchmark: accuracy at a fixed wall-time budget on real HumanEva-I.

    python scripts/bench_budget.py [--real ../shared/data/humaneva] [--budget 600] [--json benchmarks/budget.json]

Official protocol (train Train/*, test Validate/*), Walk/Jog/Box, GT 2D. The whole
`raypose train` (start-up included) gets --budget seconds of wall time: training stops after the
iteration that crosses budget - --margin seconds, so one last iteration still fits. Then
P-MPJPE, the action-wise mean per validation subject and over the three: of the ensemble as
the members predict it, and fitted onto its input 2D with the focal lengths the run fitted on its
training windows (`geometry.fit_windows`; the 2D here is ground truth, i.e. exact).
Skips (exit 0, one line) where the real files are absent.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchlib import REAL_DEFAULT, header, write  # noqa: E402

from raypose import config as C  # noqa: E402
from raypose.ensemble.aggregate import DEFAULT_AGGREGATE, aggregate  # noqa: E402
from raypose.ensemble.ensemble import Ensemble  # noqa: E402
from raypose.evaluation.evaluate import eval_windows, protocol  # noqa: E402
from raypose.model.geometry import fit_windows  # noqa: E402
from raypose.run import Run  # noqa: E402
from raypose.train.driver import train  # noqa: E402
from raypose.train.timing import breakdown  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--budget", type=float, default=600.0, help="wall seconds for the whole raypose train")
    ap.add_argument("--margin", type=float, default=55.0, help="seconds kept for the last iteration")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=5, help="epochs per iteration")
    ap.add_argument("--lr-decay", type=float, default=0.98)
    ap.add_argument("--sampling", default="bootstrap", help="bootstrap, disjoint or full")
    ap.add_argument("--members-per-worker", type=int, default=1)
    ap.add_argument("--no-pack", dest="pack", action="store_false",
                    help="a worker's members train one after another, not stacked")
    ap.add_argument("--out", default="bench_out/budget")
    ap.add_argument("--json", default="benchmarks/budget.json")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.real, "data_3d_humaneva15.npz")):
        print(f"real HumanEva not found at {args.real}: skipped")
        return
    shutil.rmtree(args.out, ignore_errors=True)
    cfg = C.with_values(C.Config(), {
        "data.path": os.path.abspath(args.real), "data.actions": "Walk,Jog,Box",
        "model.channels": args.channels, "model.dropout": args.dropout,
        "train.members": args.members, "train.epochs": args.epochs, "train.iterations": 1000,
        "train.lr": 2e-3, "train.lr_decay": args.lr_decay, "train.sampling": args.sampling,
        "run.members_per_worker": args.members_per_worker, "run.pack": args.pack,
        "run.out": args.out, "run.time_budget": args.budget - args.margin})
    t0 = time.time()
    last = train(C.finalize(cfg))
    t1 = time.time()
    wall = t1 - t0
    run = Run.open(args.out)
    it, cfg = run.iteration(), run.config
    timing = breakdown([run.record(i) for i in run.iterations()], t0, t1)
    windows, _ = eval_windows(cfg)
    preds = Ensemble.load(run, it).predict(windows, tta=True)
    ens = aggregate(preds, DEFAULT_AGGREGATE)
    table, summary = protocol(windows, ens)
    per_subject = table.groupby("subject")["p_mpjpe"].mean().to_dict()
    focals = run.focals()
    if focals is None:
        sys.exit(f"{run.path('cameras.json')}: not written; expected HumanEva's 15-joint 2D")
    fit_table, fit_summary = protocol(windows, fit_windows(ens, windows, focals))
    fit_per_subject = fit_table.groupby("subject")["p_mpjpe"].mean().to_dict()
    res = {**header(), "budget_s": args.budget, "train_wall_s": wall, "iterations": it,
           "epochs": it * args.epochs, "members": args.members, "channels": args.channels, "dropout": args.dropout,
           "lr_decay": args.lr_decay,
           "sampling": args.sampling, "members_per_worker": args.members_per_worker, "pack": args.pack,
           "timing": timing,
           "aggregate": DEFAULT_AGGREGATE, "p_mpjpe": summary["p_mpjpe"], "mpjpe": summary["mpjpe"],
           "p_mpjpe_per_subject": per_subject, "ensemble_mean_p_mpjpe_all_frames": last["ensemble"]["p_mpjpe_mm"],
           "member_p_mpjpe_all_frames": last["member_p_mpjpe_mm"],
           "fit_2d": {"p_mpjpe": fit_summary["p_mpjpe"], "mpjpe": fit_summary["mpjpe"],
                      "p_mpjpe_per_subject": fit_per_subject, "focal": focals},
           "reference_tuned_videopose3d_mm": 21.7, "target_mm": 17.4}
    print(f"budget {args.budget:.0f} s: {wall:.0f} s wall, {it} iterations x {args.epochs} epochs, "
          f"{args.members} x {args.channels} ch, {args.sampling}, Ray share {100 * timing['ray_share']:.1f}%: "
          f"P-MPJPE {summary['p_mpjpe']:.1f} mm ("
          + " / ".join(f"{v:.1f}" for v in per_subject.values())
          + f"), fitted to the 2D {fit_summary['p_mpjpe']:.1f} mm ("
          + " / ".join(f"{v:.1f}" for v in fit_per_subject.values()) + ") vs 21.7 tuned VideoPose3D, target 17.4")
    write(args.json, res)


if __name__ == "__main__":
    main()

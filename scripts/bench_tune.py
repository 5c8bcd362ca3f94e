"""Benchmark: does `raypose tune`, never looking at the test split, find a config as good as the
hand-picked humaneva_10min.toml (chosen over a dozen runs scored on Validate/*, the test split)?

    python scripts/bench_tune.py [--real ../shared/data/humaneva] [--budget 545] [--search-time 4800]
        [--trials 40] [--reference-run RUN] [--json benchmarks/tune.json] [--figure docs/images/tune_humaneva.png]

1. The hand-picked config on the search's validation split (its score on the same footing as the trials').
2. The search: real HumanEva-I Walk, Jog, Box; every trial a whole `raypose train` with --budget seconds
   (545: humaneva_10min's, so a trial plus its start-up is 10 minutes); at most --search-time seconds.
3. The best config retrained once with `raypose train --config best.toml` and scored on Validate/*.
4. Both scored by the same protocol (bench_budget's: flip averaging, mean of the members) at their
   last iteration; the hand-picked run is --reference-run when given (trained the same day: the
   VM's speed drifts 10-20% between days), else trained here.
Nothing else may run on the machine meanwhile: every score is bought with seconds.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import REAL_DEFAULT, header, write  # noqa: E402

from raypose import config as C  # noqa: E402
from raypose.ensemble.aggregate import DEFAULT_AGGREGATE, aggregate  # noqa: E402
from raypose.ensemble.ensemble import Ensemble  # noqa: E402
from raypose.evaluation.evaluate import eval_windows, protocol  # noqa: E402
from raypose.run import Run  # noqa: E402
from raypose.train.driver import train  # noqa: E402
from raypose.tune import search as S  # noqa: E402
from raypose.tune.tuner import tune  # noqa: E402

HANDPICKED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "raypose", "configs",
                          "humaneva_10min.toml")


def test_score(out):
    """P-MPJPE (mm) on the test split at the run's last iteration, the protocol of bench_budget."""
    run = Run.open(out)
    windows, _ = eval_windows(run.config)
    preds = Ensemble.load(run, run.iteration()).predict(windows, tta=True)
    return protocol(windows, aggregate(preds, DEFAULT_AGGREGATE))[1]["p_mpjpe"]


def trained(cfg, out, reuse):
    """Train cfg into out (or keep a finished run there with --reuse); returns (run, wall seconds)."""
    if not (reuse and os.path.isfile(os.path.join(out, "metrics.json"))):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.time()
        train(C.with_values(cfg, {"run.out": out}))
        return Run.open(out), time.time() - t0
    return Run.open(out), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--budget", type=float, default=545.0, help="seconds per trial (humaneva_10min's time_budget)")
    ap.add_argument("--search-time", type=float, default=4800.0, help="seconds of the whole search (<= 5400)")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--reference-run", help="a run of humaneva_10min.toml on the test split, trained today")
    ap.add_argument("--out", default="bench_out/tune")
    ap.add_argument("--reuse", action="store_true", help="keep finished runs and the search in --out")
    ap.add_argument("--json", default="benchmarks/tune.json")
    ap.add_argument("--figure", default="docs/images/tune_humaneva.png", help="a copy of the search's tune.png")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.real, "data_3d_humaneva15.npz")):
        print(f"real HumanEva not found at {args.real}: skipped")
        return
    real = os.path.abspath(args.real)
    hand = C.with_values(C.load(HANDPICKED), {"data.path": real, "run.time_budget": args.budget})
    hand_val, hand_val_s = trained(C.with_values(hand, {"data.validation": S.VALIDATION}),
                                   os.path.join(args.out, "handpicked_validation"), args.reuse)
    search = os.path.join(args.out, "search")
    if not args.reuse:
        shutil.rmtree(search, ignore_errors=True)
    base = C.with_values(C.Config(), {"train.iterations": 1000, "data.actions": "Walk,Jog,Box"})
    t0 = time.time()
    best = tune(base, real, args.budget, args.trials, search, search_time_s=args.search_time)
    search_s = time.time() - t0
    found, found_s = trained(C.load(os.path.join(search, "best.toml")), os.path.join(args.out, "best_run"), args.reuse)
    ref_out = args.reference_run or os.path.join(args.out, "handpicked_test")
    ref, _ = trained(hand, ref_out, args.reuse or bool(args.reference_run))
    rows = S.read_trials(search)
    res = {**header(), "budget_s": args.budget, "search_time_limit_s": args.search_time, "search_wall_s": search_s,
           "trials": len(rows), "stopped_early": sum(bool(r["stopped_early"]) for r in rows),
           "errors": sum(r["status"] == "error" for r in rows),
           "validation": {"share": S.VALIDATION},
           "found": {"params": {k: best[k] for k in S.DEFAULT_SPACE}, "trial": best["trial"],
                     "validation_p_mpjpe": best[S.SCORE], "test_p_mpjpe": test_score(found.root),
                     "iterations": found.iteration(), "train_wall_s": found_s},
           "handpicked": {"config": "raypose/configs/humaneva_10min.toml",
                          "validation_p_mpjpe": hand_val.record(hand_val.iteration())["ensemble"]["p_mpjpe_mm"],
                          "test_p_mpjpe": test_score(ref.root), "iterations": ref.iteration(),
                          "test_run": os.path.relpath(ref.root), "validation_train_wall_s": hand_val_s}}
    res["found_over_handpicked_test"] = res["found"]["test_p_mpjpe"] / res["handpicked"]["test_p_mpjpe"]
    print(f"search: {len(rows)} trials in {search_s:.0f}s ({res['stopped_early']} stopped early); best validation "
          f"{best[S.SCORE]:.2f} mm (hand-picked {res['handpicked']['validation_p_mpjpe']:.2f}); test P-MPJPE "
          f"found {res['found']['test_p_mpjpe']:.2f} mm vs hand-picked {res['handpicked']['test_p_mpjpe']:.2f} mm "
          f"(x{res['found_over_handpicked_test']:.3f})")
    write(args.json, res)
    os.makedirs(os.path.dirname(os.path.abspath(args.figure)), exist_ok=True)
    shutil.copyfile(os.path.join(search, "tune.png"), args.figure)


if __name__ == "__main__":
    main()

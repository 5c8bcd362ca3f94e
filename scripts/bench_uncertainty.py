"""Calibrated error radii on real HumanEva-I: coverage, QCE, NLL, Spearman and AUSE, clean and
under 2D corruptions, for the shipped 10-minute config; the alternatives fitted on the same
members and calibration split, so every row compares like with like.

    python scripts/bench_uncertainty.py [--real ../shared/data/humaneva] [--reuse]

Trains `raypose/configs/humaneva_10min.toml` (10 minutes on 2 cores) into --out, unless --reuse
finds that run complete; then `raypose evaluate` (Validate/S1-S3, Walk/Jog/Box) and the
alternatives. Writes benchmarks/uncertainty.json; scripts/bench_table.py renders the README table.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import REAL_DEFAULT, header, write  # noqa: E402

from raypose import config as C  # noqa: E402
from raypose.data import splits  # noqa: E402
from raypose.data.source import read_sequences  # noqa: E402
from raypose.data.windows import make_windows  # noqa: E402
from raypose.ensemble import uncertainty as U  # noqa: E402
from raypose.ensemble.aggregate import DEFAULT_AGGREGATE, spread  # noqa: E402
from raypose.ensemble.ensemble import Ensemble  # noqa: E402
from raypose.evaluation.evaluate import (  # noqa: E402
    corrupted_estimates,
    eval_windows,
    protocol,
    radius_study,
    uncertainty_lines,
    uncertainty_study,
)
from raypose.run import Run  # noqa: E402
from raypose.train.driver import train  # noqa: E402

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "raypose", "configs", "humaneva_10min.toml")
NO_GAPS = tuple(f for f in U.FEATURES if f not in U.GAP_FEATURES)
# name -> (features used, members' spread only (no flip views), scale fitted on clean only, conformal on all,
#          without the calibration variant of filled-in 2D)
ALTERNATIVES = {
    "joint + members' spread": (("log_spread",), True, False, False, True),
    "joint + view spread": (("log_spread",), False, False, False, True),
    "joint + view spread + its 1 s mean": (("log_spread", "log_spread_1s"), False, False, False, True),
    "+ 2D roughness (shipped before gap features)": (NO_GAPS, False, False, False, True),
    "all features, scale fitted on clean only": (U.FEATURES, False, True, False, False),
    "all features, conformal on every variant": (U.FEATURES, False, False, True, False),
    "all features (shipped): + gaps filled in": (U.FEATURES, False, False, False, False),
}


def calibration_windows(run):
    """The run's own calibration variants, held out of its training sequences."""
    from raypose.data.source import open_source
    cfg = run.config
    source = open_source(cfg.data)
    train_keys, _ = splits.select(source.chunks, cfg.data.split, cfg.data.actions or None, dataset=source.dataset)
    labelled, _ = splits.labelled_split(train_keys, cfg.semi.labelled_fraction, cfg.train.seed)
    u = cfg.uncertainty
    _, calib = splits.calibration_split(read_sequences(source, labelled), u.holdout, u.holdout_by, cfg.train.seed)
    return U.variants(make_windows(calib, int(np.prod(cfg.model.widths))), run.layout, cfg.train.seed)


def calibrate(run, ensemble):
    """The shipped calibration, refitted from the members exactly as training fits it; and the
    calibration sets for the alternatives (views, and members' predictions only)."""
    variants = calibration_windows(run)
    views = [ensemble.predict_views(w) for _, w in variants]
    stored = ensemble.calibration
    info = {k: stored.info[k] for k in ("fitted_on", "tta") if k in stored.info} if stored else {
        "fitted_on": f"{len(variants[0][1])} held-out windows (refitted by the benchmark)", "tta": True}
    shipped = U.fit_from_predictions(views, variants, info=info)
    sets = U.calibration_sets(views, variants)
    member_sets = U.calibration_sets([v.mean(1, keepdims=True) for v in views], variants)
    return shipped, sets, member_sets, variants


def alternatives(ensemble, views, sets, member_sets, variants):
    """Every alternative's radius study on the evaluation conditions `views` ([(name, windows, pose,
    view spread)], clean first), same members, same split."""
    members = []
    for name, w, e, _ in views:
        members.append((name, w, e, spread(ensemble.predict(w), e)))
    groups = views[0][1].key_per_target(0)
    out = {}
    for name, (use, members_only, clean_scale, conformal_all, no_gaps) in ALTERNATIVES.items():
        s = member_sets if members_only else sets
        s = [x for x, (variant, _) in zip(s, variants) if not (no_gaps and variant.startswith("gaps"))]
        cal = U.fit(s[:1] if clean_scale else s, s if conformal_all else s[:1], s[0][1].shape[1], use=use)
        out[name] = {"coef": cal.coef[-len(U.FEATURES):].tolist(),
                     "conditions": radius_study(cal, members if members_only else views, groups)}
    return out


def targets(u, p_mpjpe, reference):
    """The issue's targets, each with its measured value."""
    clean, noisy, gaps = (u["conditions"][k] for k in ("clean", "gaussian 6px", "gaps 10%"))
    cov = clean["coverage_at"]
    return {
        "clean coverage within 0.03 of q at 0.5/0.9/0.95": max(abs(cov[q] - float(q)) for q in ("0.5", "0.9", "0.95")),
        "clean QCE <= 0.03": clean["qce"],
        "6 px: mean radius at 0.9 >= 1.5 x clean": noisy["mean_radius_mm"]["0.9"] / clean["mean_radius_mm"]["0.9"],
        "6 px: coverage at 0.9 >= 0.85": noisy["coverage_at"]["0.9"],
        "clean Spearman >= 0.6": clean["spearman"],
        "gaps 10%: coverage at 0.9 of filled-in joints >= 0.85": gaps["filled"]["coverage_at"]["0.9"],
        "gaps 10%: mean radius at 0.9, filled-in / observed joints (their error's ratio: next row)":
            gaps["filled"]["mean_radius_mm"]["0.9"] / gaps["observed"]["mean_radius_mm"]["0.9"],
        "gaps 10%: mean error, filled-in / observed joints": gaps["filled"]["error_mm"] / gaps["observed"]["error_mm"],
        "clean P-MPJPE (protocol) <= 1.03 x reference, both at the end of the budget": p_mpjpe / reference["p_mpjpe"],
        **({"the same at the same iteration": reference["same_iteration"]["p_mpjpe"]
            / reference["same_iteration"]["reference_p_mpjpe"]} if "same_iteration" in reference else {}),
    }


def protocol_p_mpjpe(run, iteration, windows):
    """P-MPJPE (protocol: actions, then subjects) of a run's ensemble at one iteration."""
    ensemble = Ensemble.load(run, iteration)
    return protocol(windows, ensemble.aggregate(ensemble.predict(windows)))[1]["p_mpjpe"]


def reference_figures(args, run, windows):
    """P-MPJPE (protocol) of the same config without a calibration split, and where it is from;
    with a reference run, both runs also at the same iteration (the same epochs: the cost of the
    held-out frames alone, whatever the VM's speed that day)."""
    if not args.reference_run:
        with open(args.reference) as f:
            r = json.load(f)
        return {"file": args.reference, "p_mpjpe": r["p_mpjpe"], "date": r["date"], "iterations": r["iterations"]}
    ref = Run.open(args.reference_run)
    last = ref.iteration()
    same = min(last, run.iteration())
    return {"file": args.reference_run, "p_mpjpe": protocol_p_mpjpe(ref, last, windows), "iterations": last,
            "date": time.strftime("%Y-%m-%d", time.localtime(ref.record(last)["time"])),
            "holdout": ref.config.uncertainty.holdout,
            "same_iteration": {"iteration": same, "reference_p_mpjpe": protocol_p_mpjpe(ref, same, windows),
                               "p_mpjpe": protocol_p_mpjpe(run, same, windows)}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--config", default=CONFIG)
    ap.add_argument("--holdout", type=float, help="uncertainty.holdout (default: the config's)")
    ap.add_argument("--holdout-by", help="uncertainty.holdout_by: chunk or tail (default: the config's)")
    ap.add_argument("--out", default="bench_out/uncertainty")
    ap.add_argument("--reuse", action="store_true", help="evaluate the run in --out if it is there")
    ap.add_argument("--reference", default="benchmarks/budget.json",
                    help="the same config's run without a calibration split (its P-MPJPE)")
    ap.add_argument("--reference-run", help="or that run's directory, trained the same day "
                    "(raypose train --config ... --calibration-holdout 0): the VM's speed drifts between days")
    ap.add_argument("--json", default="benchmarks/uncertainty.json")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.real, "data_3d_humaneva15.npz")):
        print(f"real HumanEva not found at {args.real}: skipped")
        return
    values = {"data.path": os.path.abspath(args.real), "run.out": args.out}
    if args.holdout is not None:
        values["uncertainty.holdout"] = args.holdout
    if args.holdout_by:
        values["uncertainty.holdout_by"] = args.holdout_by
    cfg = C.finalize(C.with_values(C.load(args.config), values))
    t0, wall = time.time(), None   # None: the run was reused, not trained here
    if not (args.reuse and os.path.isdir(args.out) and Run.open(args.out).iterations()):
        train(cfg)
        wall = time.time() - t0
    run = Run.open(args.out)
    ensemble = Ensemble.load(run)
    shipped, sets, member_sets, variants = calibrate(run, ensemble)
    stored = ensemble.calibration
    same = stored is not None and np.allclose(stored.coef, shipped.coef, rtol=1e-3, atol=1e-6)
    ensemble.calibration = shipped
    windows, _ = eval_windows(run.config)
    preds, ens, unc, vspread = ensemble.estimate(windows)
    summary = protocol(windows, ens)[1]
    corrupted = corrupted_estimates(ensemble, windows, DEFAULT_AGGREGATE, True)   # once, for every study
    reference = reference_figures(args, run, windows)
    res = {**header(), "config": os.path.relpath(args.config), "config_hash": run.config.hash(),
           "holdout": run.config.uncertainty.holdout,
           "holdout_by": run.config.uncertainty.holdout_by, "iteration": ensemble.iteration, "train_wall_s": wall,
           "calibration_as_stored": bool(same), "p_mpjpe": summary["p_mpjpe"], "mpjpe": summary["mpjpe"],
           "reference": reference,
           "uncertainty": uncertainty_study(ensemble, windows, (ens, unc, vspread), DEFAULT_AGGREGATE, True,
                                            corrupted_conditions=corrupted),
           "alternatives": alternatives(ensemble, [("clean", windows, ens, vspread)] + corrupted, sets, member_sets,
                                       variants),
           # why clean coverage can fall short: the held-out training frames against the test frames
           "mean_joint_error_mm": {
               "calibration": 1000 * float(sets[0][1][:, 1:].mean()),
               "evaluation": 1000 * float(np.linalg.norm(ens - windows.targets, axis=-1)[:, 1:].mean())}}
    for line in uncertainty_lines(res["uncertainty"]):
        print(line)
    res["targets"] = targets(res["uncertainty"], res["p_mpjpe"], reference)
    write(args.json, res)
    for k, v in res["targets"].items():
        print(f"{k}: {v:.3f}")


if __name__ == "__main__":
    main()

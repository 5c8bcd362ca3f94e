"""`raypose evaluate`: the field's tables for a run, every aggregate, the ensemble-size study,
error against iteration, and how well the members' spread predicts the error.

Evaluation runs in the driver process: the members are loaded from their checkpoints and run
over the evaluation split with the dilated form, which is cheap next to training.
"""
import dataclasses
import json

import numpy as np

from . import metrics as M
from .data import splits
from .data.source import open_source, read_sequences
from .data.windows import make_windows
from .ensemble import AGGREGATES, aggregate, frame_spread, load_members, member_predictions, spread
from .errors import UserError
from .geometry import fit_windows
from .predict import open_run

DEFAULT_AGGREGATE = "weighted"   # ties the mean on a clean ensemble, shrugs off a broken member (benchmarks/ensemble.json)
STUDY_DRAWS = 20
CURVE_POINTS = 8
NOISE_PX = 5.0


def eval_windows(cfg, data=None, split=None):
    """Windows over the evaluation chunks of the run's data (or another data set / split)."""
    data_cfg = cfg.data
    if data is not None:
        data_cfg.path = data
    source = open_source(data_cfg)
    _, test = splits.select(source.chunks, split or data_cfg.split, data_cfg.actions or None,
                            source=source.description)
    windows = make_windows(read_sequences(source, test), int(np.prod(cfg.model.widths)))
    return windows, source


def _records(windows, pose):
    """(subject, action, camera, pred, gt) per sequence, for metrics.evaluate_sequences."""
    out = []
    for s, (subject, action, camera) in enumerate(windows.keys):
        lo, hi = windows.offsets[s], windows.offsets[s + 1]
        out.append((subject, action, camera, pose[lo:hi], windows.targets[lo:hi]))
    return out


def protocol(windows, pose):
    """Per (subject, action) table and the field's summary: mean over actions, then subjects."""
    table = M.evaluate_sequences(_records(windows, pose))
    per_subject = table.groupby("subject")[list(M.METRICS)].mean()
    summary = {m: float(per_subject[m].mean()) for m in M.METRICS}
    return table, summary


def quick(pose, gt):
    return {"mpjpe": 1000 * M.mpjpe(pose, gt), "p_mpjpe": 1000 * M.p_mpjpe(pose, gt)}


def size_study(preds, gt, methods, draws=STUDY_DRAWS, seed=0):
    """Error of random member subsets of every size, per aggregate (the 2022 study, plus P-MPJPE)."""
    k = len(preds)
    rng = np.random.default_rng(seed)
    subsets = {n: ([tuple(range(k))] if n == k else
                   [tuple(sorted(rng.choice(k, n, replace=False))) for _ in range(draws)])
               for n in range(1, k + 1)}
    out = {}
    for method in methods:
        res = {"sizes": list(range(1, k + 1))}
        for metric in ("mpjpe", "p_mpjpe"):
            res[f"{metric}_mean"], res[f"{metric}_std"] = [], []
        for n, subs in subsets.items():
            errs = [quick(aggregate(preds[list(s)], method), gt) for s in subs]
            for metric in ("mpjpe", "p_mpjpe"):
                vals = [e[metric] for e in errs]
                res[f"{metric}_mean"].append(float(np.mean(vals)))
                res[f"{metric}_std"].append(float(np.std(vals)))
        out[method] = res
    return out


def noisy(windows, sigma_px, seed=0):
    """The same windows with Gaussian pixel noise on the 2D input."""
    rng = np.random.default_rng(seed)
    scale = sigma_px * 2 / 640            # pixels -> normalised units (x / w * 2)
    inputs = windows.inputs + rng.normal(0, scale, windows.inputs.shape).astype(np.float32)
    return dataclasses.replace(windows, inputs=inputs)


def evaluate(run_uri, iteration=None, method=None, data=None, split=None, tta=True, echo=print,
             curve=True, noise_px=NOISE_PX):
    from .calibration import calibration_report

    run, cfg, iteration = open_run(run_uri, iteration)
    method = method or DEFAULT_AGGREGATE
    if method not in AGGREGATES:
        raise UserError(f"--aggregate {method!r}: unknown, expected one of {', '.join(AGGREGATES)}")
    windows, source = eval_windows(cfg, data, split)
    if windows.targets is None:
        raise UserError(f"{source.description}: the evaluation split has no 3D ground truth")
    sym = source.symmetry
    n = cfg.train.members
    models = load_members(run, cfg, iteration, source.num_joints_2d)
    preds = member_predictions(models, windows, tta, sym)
    gt = windows.targets

    ens = aggregate(preds, method)
    table, summary = protocol(windows, ens)
    members = []
    for k in range(n):
        _, s = protocol(windows, preds[k])
        members.append({"member": k, **s})
    aggregates = {m: quick(aggregate(preds, m), gt) for m in AGGREGATES}
    unc = spread(preds, ens)
    err = M.per_joint_error(ens, gt)
    calib = calibration_report(unc, err)
    evaluation = {
        "iteration": iteration, "aggregate": method, "split": split or cfg.data.split,
        "data": source.description, "tta": tta, "frames": len(gt), "members": n,
        "table": json.loads(table.to_json(orient="records")),
        "summary": summary, "member_summaries": members,
        "gain_mm": {m: float(np.mean([x[m] for x in members]) - summary[m]) for m in ("mpjpe", "p_mpjpe")},
        "aggregates": aggregates,
        "ensemble_size": size_study(preds, gt, sorted({"mean", method})),
        "per_joint": {"spread_mm": (1000 * unc.mean(0)).tolist(), "error_mm": (1000 * err.mean(0)).tolist()},
        "calibration": calib,
    }
    focals = run.focals()
    if focals is not None:   # the run's 2D is the skeleton's 15 joints: fitted onto its input's 2D
        fitted = fit_windows(ens, windows, focals)
        fit_table, fit_summary = protocol(windows, fitted)
        evaluation["fit_2d"] = {"focal": focals, "summary": fit_summary, "all_frames": quick(fitted, gt),
                                "table": json.loads(fit_table.to_json(orient="records"))}
    if noise_px:
        noisy_w = noisy(windows, noise_px)
        noisy_preds = member_predictions(models, noisy_w, tta, sym)
        base = float(frame_spread(unc).mean())
        noisy_ens = aggregate(noisy_preds, method)
        evaluation["noise"] = {"sigma_px": noise_px, "spread_mm": 1000 * base,
                               "noisy_spread_mm": 1000 * float(frame_spread(spread(noisy_preds)).mean()),
                               "error_mm": quick(noisy_ens, gt)}
        evaluation["noise"]["spread_ratio"] = evaluation["noise"]["noisy_spread_mm"] / max(1000 * base, 1e-9)
        if "fit_2d" in evaluation:   # what the fit does where the 2D is not exact
            evaluation["noise"]["fit_2d_error_mm"] = quick(fit_windows(noisy_ens, noisy_w, focals), gt)
    if curve:
        evaluation["iterations"] = iteration_curve(run, cfg, windows, sym, tta, gt)
    _write(run, evaluation)
    for line in report_lines(evaluation):
        echo(line)
    return evaluation


def iteration_curve(run, cfg, windows, sym, tta, gt, points=CURVE_POINTS):
    """Every aggregate at up to `points` evenly spaced kept iterations."""
    its = run.iterations()
    if len(its) > points:
        its = sorted({its[round(j)] for j in np.linspace(0, len(its) - 1, points)})
    out = {"iteration": its, "aggregates": {m: {"mpjpe": [], "p_mpjpe": []} for m in AGGREGATES},
           "members": {"mpjpe": [[] for _ in range(cfg.train.members)],
                       "p_mpjpe": [[] for _ in range(cfg.train.members)]}}
    nj = windows.inputs.shape[1]
    for i in its:
        preds = member_predictions(load_members(run, cfg, i, nj), windows, tta, sym)
        for m in AGGREGATES:
            q = quick(aggregate(preds, m), gt)
            for metric in ("mpjpe", "p_mpjpe"):
                out["aggregates"][m][metric].append(q[metric])
        for k, p in enumerate(preds):
            q = quick(p, gt)
            for metric in ("mpjpe", "p_mpjpe"):
                out["members"][metric][k].append(q[metric])
    return out


def report_lines(ev):
    lines = [f"iteration {ev['iteration']}, {ev['members']} members, aggregate {ev['aggregate']}, "
             f"{ev['frames']} frames ({ev['data']}, split {ev['split']}, TTA {'on' if ev['tta'] else 'off'})", ""]
    lines += M.format_table(M.summary_table(_frame(ev["table"]))).splitlines()
    lines.append("")
    for m in ev["member_summaries"]:
        lines.append(f"member {m['member']}: MPJPE {m['mpjpe']:.1f} mm  P-MPJPE {m['p_mpjpe']:.1f} mm")
    s = ev["summary"]
    lines.append(f"ensemble ({ev['aggregate']}): MPJPE {s['mpjpe']:.1f} mm  P-MPJPE {s['p_mpjpe']:.1f} mm  "
                 f"gain over the mean member {ev['gain_mm']['mpjpe']:.1f} / {ev['gain_mm']['p_mpjpe']:.1f} mm")
    if "fit_2d" in ev:
        f = ev["fit_2d"]["summary"]
        lines.append(f"fitted to the input 2D (exact 2D only): MPJPE {f['mpjpe']:.1f} mm  "
                     f"P-MPJPE {f['p_mpjpe']:.1f} mm; focal lengths " + ", ".join(
                         f"{c} {v:.2f}" for c, v in ev["fit_2d"]["focal"].items()))
    lines.append("aggregates (all frames): " + ", ".join(
        f"{m} {v['p_mpjpe']:.1f}" for m, v in ev["aggregates"].items()) + " mm P-MPJPE")
    c = ev["calibration"]
    lines.append(f"uncertainty: Spearman(spread, error) {c['spearman']:.2f} per joint-frame, "
                 f"{c['spearman_frame']:.2f} per frame; AUSE {c['ause']:.3f}")
    if "noise" in ev:
        z = ev["noise"]
        lines.append(f"with {z['sigma_px']:g} px 2D noise: spread x{z['spread_ratio']:.2f} "
                     f"({z['spread_mm']:.1f} -> {z['noisy_spread_mm']:.1f} mm), P-MPJPE "
                     f"{z['error_mm']['p_mpjpe']:.1f} mm"
                     + (f", fitted to the noisy 2D {z['fit_2d_error_mm']['p_mpjpe']:.1f} mm"
                        if "fit_2d_error_mm" in z else ""))
    return lines


def _frame(records):
    import pandas as pd
    return pd.DataFrame.from_records(records)


def _write(run, evaluation):
    metrics = run.read_json("metrics.json") if run.exists("metrics.json") else {}
    metrics["evaluation"] = evaluation
    run.write_json("metrics.json", metrics)
    run.write_bytes("evaluation.md", ("# Evaluation\n\n```\n" + "\n".join(report_lines(evaluation))
                                      + "\n```\n").encode())

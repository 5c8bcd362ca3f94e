"""`raypose evaluate`: the field's tables for a run, every aggregate, the ensemble-size study,
error against iteration, and how well the members' spread predicts the error.

Evaluation runs in the driver process: the members are loaded from their checkpoints and run
over the evaluation split with the dilated form, which is cheap next to training.
"""
import dataclasses
import itertools
import json

import numpy as np

from raypose.data import splits
from raypose.data.source import open_source, read_sequences
from raypose.data.windows import make_windows
from raypose.datasets.registry import of_run
from raypose.ensemble import corrupt
from raypose.ensemble.aggregate import AGGREGATES, aggregate, check, frame_spread, spread
from raypose.ensemble.corrupt import EVAL_CORRUPTIONS
from raypose.ensemble.ensemble import Ensemble
from raypose.ensemble.uncertainty import QUANTILES
from raypose.errors import UserError
from raypose.evaluation import metrics as M
from raypose.evaluation import report as R
from raypose.evaluation.calibration import QCE_LEVELS, gaussian_radius, radius_report
from raypose.model.geometry import fit_windows
from raypose.run import Run

STUDY_DRAWS = 20
CURVE_POINTS = 8
NOISE_PX = 5.0


def eval_windows(cfg, data=None, split=None, run_dataset=None, **files):
    """Windows over the evaluation chunks of the run's data (read with the run's dataset,
    `run_dataset`, where given) or of other data (`files`: its dataset, skeleton, cameras)."""
    data_cfg = data_config(cfg, data, **files)
    source = open_source(data_cfg, run_dataset if data is None else None)
    _, test = splits.select(source.chunks, split or data_cfg.split, data_cfg.actions or None,
                            source=source.description, dataset=source.dataset)
    windows = make_windows(read_sequences(source, test), int(np.prod(cfg.model.widths)))
    return windows, source


def data_config(cfg, data=None, dataset=None, skeleton=None, cameras=None):
    """The data config to evaluate on: the run's own, or `data` with its own dataset, skeleton and
    cameras (given, else what its files say): the run's belong to the run's data, not to another's."""
    given = {"dataset": dataset, "skeleton": skeleton, "cameras": cameras}
    if data is None:
        extra = next((key for key, value in given.items() if value), None)
        if extra:
            raise UserError(f"evaluate --{extra}: only with --data OTHER; expected no --{extra} for the run's "
                            "own data (its dataset, skeleton and cameras are the run's, in layout.json)")
        return cfg.data
    return dataclasses.replace(cfg.data, path=data, **{key: value or "" for key, value in given.items()})


def _records(windows, pose):
    """(subject, action, camera, pred, gt) per sequence, for report.evaluate_sequences."""
    out = []
    for s, (subject, action, camera) in enumerate(windows.keys):
        lo, hi = windows.offsets[s], windows.offsets[s + 1]
        out.append((subject, action, camera, pose[lo:hi], windows.targets[lo:hi]))
    return out


def protocol(windows, pose):
    """Per (subject, action) table and the field's summary: mean over actions, then subjects."""
    table = R.evaluate_sequences(_records(windows, pose))
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
        for subs in subsets.values():
            errs = [quick(aggregate(preds[list(s)], method), gt) for s in subs]
            for metric in ("mpjpe", "p_mpjpe"):
                vals = [e[metric] for e in errs]
                res[f"{metric}_mean"].append(float(np.mean(vals)))
                res[f"{metric}_std"].append(float(np.std(vals)))
        out[method] = res
    return out


def evaluate(run_uri, iteration=None, method=None, data=None, split=None, tta=True, echo=print,
             curve=True, noise_px=NOISE_PX, device="cpu", corruptions=tuple(EVAL_CORRUPTIONS), **files):
    """Every table and study of one iteration's ensemble, its members run on `device`; merged
    into metrics.json. `files` (dataset, skeleton, cameras) describe other `data`."""
    from raypose.evaluation.calibration import calibration_report

    run = Run.open(run_uri)
    ensemble = Ensemble.load(run, iteration, device=device)
    method = check(method)   # an unknown name fails before any data is read
    windows, source = eval_windows(run.config, data, split, of_run(ensemble.layout), **files)
    ensemble.layout.check_2d(windows.inputs.shape[1], f"{source.description}: its 2D")
    if windows.targets is None:
        raise UserError(f"{source.description}: the evaluation split has no 3D ground truth")
    check_3d(ensemble.layout, windows.targets.shape[1], f"{source.description}: its 3D")
    check_skeleton(ensemble.layout, source.dataset.skeleton, source.description)
    preds, ens, unc, vspread = ensemble.estimate(windows, tta, method)
    gt = windows.targets
    table, summary = protocol(windows, ens)
    members = [{"member": k, **protocol(windows, p)[1]} for k, p in enumerate(preds)]
    evaluation = {
        "iteration": ensemble.iteration, "aggregate": method, "split": split or run.config.data.split,
        "data": source.description, "tta": tta, "frames": len(gt), "members": len(ensemble),
        "table": json.loads(table.to_json(orient="records")),
        "summary": summary, "member_summaries": members,
        "gain_mm": {m: float(np.mean([x[m] for x in members]) - summary[m]) for m in ("mpjpe", "p_mpjpe")},
        "aggregates": {m: quick(aggregate(preds, m), gt) for m in AGGREGATES},
        "ensemble_size": size_study(preds, gt, sorted({"mean", method})),
        "action_order": list(action_order(source)),
        "per_joint": {"spread_mm": (1000 * unc.mean(0)).tolist(),
                      "error_mm": (1000 * M.per_joint_error(ens, gt).mean(0)).tolist(),
                      "joint_names": list(ensemble.layout.skeleton.joint_names)},
        "calibration": calibration_report(unc, M.per_joint_error(ens, gt)),
    }
    focals = run.focals()
    if focals is not None:   # the run's 2D is the skeleton's joints: fitted onto its input's 2D
        fitted = fit_windows(ens, windows, focals)
        fit_table, fit_summary = protocol(windows, fitted)
        evaluation["fit_2d"] = {"focal": focals, "summary": fit_summary, "all_frames": quick(fitted, gt),
                                "table": json.loads(fit_table.to_json(orient="records"))}
    if noise_px:
        evaluation["noise"] = noise_study(ensemble, windows, unc, method, tta, noise_px, focals)
    evaluation["uncertainty"] = uncertainty_study(ensemble, windows, (ens, unc, vspread), method, tta, corruptions)
    if curve:
        evaluation["iterations"] = iteration_curve(run, windows, tta, device=device)
    _write(run, evaluation)
    for line in report_lines(evaluation):
        echo(line)
    return evaluation


def check_3d(layout, joints, where):
    """The evaluation data's 3D must be the run's skeleton: its joint count, or the user's line."""
    if joints != layout.joints_3d:
        raise UserError(f"{where} has {joints} joints; expected {layout.joints_3d}, the run's skeleton "
                        f"{layout.skeleton.name!r} (layout.json)")


def check_skeleton(layout, skeleton, where):
    """The evaluation data's skeleton must be the run's (parents, left, right): with left and right
    swapped, or other bones, every number would be wrong without a word."""
    run = layout.skeleton
    if skeleton.num_joints != run.num_joints:
        diff = [f"{skeleton.num_joints} joints vs {run.num_joints}"]
    else:
        moved = [j for j, (a, b) in enumerate(zip(skeleton.parents, run.parents)) if a != b]
        diff = [f"the parents of joints {moved}"] if moved else []
        diff += [f"{side} {list(getattr(skeleton, side))} vs {list(getattr(run, side))}" for side in ("left", "right")
                 if tuple(getattr(skeleton, side)) != tuple(getattr(run, side))]
    if diff:
        raise UserError(f"{where}: skeleton {skeleton.name!r} differs from the run's {run.name!r} (layout.json) in "
                        f"{'; '.join(diff)}; expected the run's skeleton (--skeleton FILE for data of your own)")


def action_order(source):
    """The per-action table's column order: the evaluation data's dataset's (report's by its name
    where the dataset names none)."""
    return tuple(source.dataset.action_order) or R.action_order(source.dataset.name)


def corrupted(windows, layout, corruptions=tuple(EVAL_CORRUPTIONS)):
    """[(name, windows)]: the evaluation windows clean, then under each named 2D corruption
    (seeded by position, so every caller scores the same corrupted inputs)."""
    out = [("clean", windows)]
    for i, name in enumerate(corruptions, 1):
        kind, value = EVAL_CORRUPTIONS[name]
        out.append((name, corrupt.apply(windows, kind, value, layout, seed=i)))
    return out


def radius_study(cal, conditions, groups, quantiles=QUANTILES):
    """{condition: radius_report + errors} for a Calibration over [(name, windows, pose, view spread)]
    (any iterable: a generator's conditions are made one at a time, each dropped before the next)."""
    levels = np.concatenate([QCE_LEVELS, quantiles])
    out = {}
    for name, w, ens, vspread in conditions:
        err = M.per_joint_error(ens, w.targets)
        scale = cal.scale(w, vspread)   # once: the radii and the Gaussian both scale it
        radius = cal.radius_of(scale, levels)
        rep = radius_report(radius, err, levels, quantiles, groups, cal.gaussian_sd(scale))
        user = radius[..., len(QCE_LEVELS):]
        out[name] = {**rep, **quick(ens, w.targets), **_filled_report(w, user, err, quantiles)}
        del w, ens, vspread, err, scale, radius, user   # before the next condition is made (`each_corrupted`)
    return out


def _filled_report(w, radius, err, quantiles):
    """Coverage and size of the radii on filled-in joint-frames vs observed ones (root left out),
    where the windows had gaps and their 2D joints are the 3D skeleton's."""
    if w.gaps is None or w.gaps.shape[1] != err.shape[1]:
        return {}
    filled = (w.gaps[w.starts + w.receptive_field // 2] > 0)[:, 1:]
    if not filled.any():
        return {}

    def part(m):
        r, e = radius[:, 1:][m], err[:, 1:][m]
        return {"joint_frames": int(m.sum()), "error_mm": float(1000 * e.mean()),
                "coverage_at": {f"{q:g}": float((e <= r[:, i]).mean()) for i, q in enumerate(quantiles)},
                "mean_radius_mm": {f"{q:g}": float(1000 * r[:, i].mean()) for i, q in enumerate(quantiles)}}
    return {"filled": part(filled), "observed": part(~filled)}


def corrupted_estimates(ensemble, windows, method, tta, corruptions=tuple(EVAL_CORRUPTIONS)):
    """[(name, windows, pose, view spread)] for every corruption of the evaluation windows."""
    return list(each_corrupted(ensemble, windows, method, tta, corruptions))


def each_corrupted(ensemble, windows, method, tta, corruptions=tuple(EVAL_CORRUPTIONS)):
    """`corrupted_estimates` one at a time, each made when asked for: what evaluate holds of the
    corrupted inputs is then one condition's 2D and estimates, not every condition's."""
    for i, name in enumerate(corruptions, 1):   # the seeds of `corrupted`
        kind, value = EVAL_CORRUPTIONS[name]
        w = corrupt.apply(windows, kind, value, ensemble.layout, seed=i)
        _, ens, _, vspread = ensemble.estimate(w, tta, method)
        yield name, w, ens, vspread


def uncertainty_study(ensemble, windows, clean, method, tta, corruptions=tuple(EVAL_CORRUPTIONS),
                      quantiles=QUANTILES, corrupted_conditions=None):
    """The calibrated radii on the evaluation split, clean (`clean`: pose, members' spread, view
    spread) and under each 2D corruption: coverage, QCE, NLL, Spearman, AUSE, and the error; the
    members' raw spread read as a Gaussian for comparison."""
    cal = ensemble.calibration
    if cal is None:
        return {"calibrated": False, "why": "the run has no calibration at this iteration "
                "(uncertainty.holdout = 0, or trained before radii existed)"}
    ens, unc, vspread = clean
    if corrupted_conditions is None:   # the caller may have them already (scripts/bench_uncertainty.py)
        names, corrupted_conditions = list(corruptions), each_corrupted(ensemble, windows, method, tta, corruptions)
    else:
        names = [name for name, *_ in corrupted_conditions]
    conditions = itertools.chain([("clean", windows, ens, vspread)], corrupted_conditions)
    levels = np.concatenate([QCE_LEVELS, quantiles])
    sd = unc / np.sqrt(3)
    return {"calibrated": True, "calibration": dict(cal.info), "mismatch": cal.mismatch(method, tta),
            "order": ["clean", *names],   # metrics.json sorts keys
            "conditions": radius_study(cal, conditions, windows.key_per_target(0), quantiles),
            "spread_as_gaussian": radius_report(gaussian_radius(sd, levels), M.per_joint_error(ens, windows.targets),
                                                levels, quantiles, sd=sd)}


def noise_study(ensemble, windows, unc, method, tta, sigma_px, focals):
    """The same ensemble on the 2D with Gaussian pixel noise: how spread and error react."""
    noisy_w = corrupt.gaussian(windows, sigma_px, width=corrupt.image_width(ensemble.layout))
    noisy_preds = ensemble.predict(noisy_w, tta)
    noisy_ens = aggregate(noisy_preds, method)
    base = float(frame_spread(unc).mean())
    out = {"sigma_px": sigma_px, "spread_mm": 1000 * base,
           "noisy_spread_mm": 1000 * float(frame_spread(spread(noisy_preds)).mean()),
           "error_mm": quick(noisy_ens, windows.targets)}
    out["spread_ratio"] = out["noisy_spread_mm"] / max(1000 * base, 1e-9)
    if focals is not None:   # what the fit does where the 2D is not exact
        out["fit_2d_error_mm"] = quick(fit_windows(noisy_ens, noisy_w, focals), windows.targets)
    return out


def iteration_curve(run, windows, tta, points=CURVE_POINTS, device="cpu"):
    """Every aggregate at up to `points` evenly spaced kept iterations."""
    its = run.iterations()
    if len(its) > points:
        its = sorted({its[round(j)] for j in np.linspace(0, len(its) - 1, points)})
    n = run.config.train.members
    out = {"iteration": its, "aggregates": {m: {"mpjpe": [], "p_mpjpe": []} for m in AGGREGATES},
           "members": {"mpjpe": [[] for _ in range(n)], "p_mpjpe": [[] for _ in range(n)]}}
    for i in its:
        preds = Ensemble.load(run, i, device=device).predict(windows, tta)
        for m in AGGREGATES:
            q = quick(aggregate(preds, m), windows.targets)
            for metric in ("mpjpe", "p_mpjpe"):
                out["aggregates"][m][metric].append(q[metric])
        for k, p in enumerate(preds):
            q = quick(p, windows.targets)
            for metric in ("mpjpe", "p_mpjpe"):
                out["members"][metric][k].append(q[metric])
    return out


def report_lines(ev):
    lines = [f"iteration {ev['iteration']}, {ev['members']} members, aggregate {ev['aggregate']}, "
             f"{ev['frames']} frames ({ev['data']}, split {ev['split']}, TTA {'on' if ev['tta'] else 'off'})", ""]
    order = ev.get("action_order", R.ACTION_ORDER)   # an evaluation from before datasets: HumanEva's
    lines += R.format_table(R.summary_table(_frame(ev["table"]), order=order)).splitlines()
    lines.append("")
    for m in ev["member_summaries"]:
        lines.append(f"member {m['member']}: MPJPE {m['mpjpe']:.1f} mm  P-MPJPE {m['p_mpjpe']:.1f} mm")
    s = ev["summary"]
    lines.append(f"ensemble ({ev['aggregate']}; mean over actions, then subjects, as the table): "
                 f"MPJPE {s['mpjpe']:.1f} mm  P-MPJPE {s['p_mpjpe']:.1f} mm  "
                 f"gain over the mean member {ev['gain_mm']['mpjpe']:.1f} / {ev['gain_mm']['p_mpjpe']:.1f} mm")
    if "fit_2d" in ev:
        f = ev["fit_2d"]["summary"]
        lines.append(f"fitted to the input 2D (exact 2D only): MPJPE {f['mpjpe']:.1f} mm  "
                     f"P-MPJPE {f['p_mpjpe']:.1f} mm; focal lengths " + ", ".join(
                         f"{c} {v:.2f}" for c, v in ev["fit_2d"]["focal"].items()))
    lines.append("aggregates (mean over all frames, not by action): " + ", ".join(
        f"{m} {v['p_mpjpe']:.1f}" for m, v in ev["aggregates"].items()) + " mm P-MPJPE")
    c = ev["calibration"]
    lines.append(f"uncertainty: Spearman(spread, error) {c['spearman']:.2f} per joint-frame, "
                 f"{c['spearman_frame']:.2f} per frame; AUSE {c['ause']:.3f}")
    lines += uncertainty_lines(ev.get("uncertainty"))
    if "noise" in ev:
        z = ev["noise"]
        lines.append(f"with {z['sigma_px']:g} px 2D noise: spread x{z['spread_ratio']:.2f} "
                     f"({z['spread_mm']:.1f} -> {z['noisy_spread_mm']:.1f} mm), P-MPJPE "
                     f"{z['error_mm']['p_mpjpe']:.1f} mm"
                     + (f", fitted to the noisy 2D {z['fit_2d_error_mm']['p_mpjpe']:.1f} mm"
                        if "fit_2d_error_mm" in z else ""))
    return lines


def uncertainty_lines(u):
    """One line per condition: coverage at the user's quantiles, QCE, mean radius, error."""
    if not u:
        return []
    if not u["calibrated"]:
        return [f"radii: none ({u['why']})"]
    lines = [f"radii not as calibrated: {'; '.join(u['mismatch'])}"] if u.get("mismatch") else []
    order = u.get("order", list(u["conditions"]))
    for name, c in [("spread as a Gaussian", u["spread_as_gaussian"]), *((n, u["conditions"][n]) for n in order)]:
        cover = " ".join(f"{q} {v:.2f}" for q, v in c["coverage_at"].items())
        radius = " ".join(f"{v:.0f}" for v in c["mean_radius_mm"].values())
        err = f", P-MPJPE {c['p_mpjpe']:.1f} mm" if "p_mpjpe" in c else ""
        lines.append(f"radii, {name}: coverage {cover}; QCE {c['qce']:.3f}; mean radius {radius} mm; "
                     f"Spearman {c['spearman']:.2f}" + (f"; NLL {c['nll']:.2f}" if "nll" in c else "") + err)
        if "filled" in c:
            lines.append("  " + "; ".join(
                f"{part} joints: coverage {' '.join(f'{q} {v:.2f}' for q, v in c[part]['coverage_at'].items())}, "
                f"mean radius {' '.join(f'{v:.0f}' for v in c[part]['mean_radius_mm'].values())} mm, "
                f"error {c[part]['error_mm']:.0f} mm" for part in ("filled", "observed")))
    return lines


def _frame(records):
    import pandas as pd
    return pd.DataFrame.from_records(records)


def _write(run, evaluation):
    run.update_metrics({"evaluation": evaluation})
    run.write_bytes("evaluation.md", ("# Evaluation\n\n```\n" + "\n".join(report_lines(evaluation))
                                      + "\n```\n").encode())

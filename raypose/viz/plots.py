"""Figures for a run's evaluation. Plain data in, PNG out.

Every function takes lists/dicts/numpy arrays (errors in mm) and an output path, writes the
file and returns the path. Figures are built on the Agg canvas directly
(`matplotlib.figure.Figure` + `FigureCanvasAgg`), so importing this module never changes the
user's pyplot backend and no figure is left open in pyplot's registry.

    plot_ensemble_size(study, out)        MPJPE / P-MPJPE vs number of members, +-1 std band
    plot_iterations(curve, out)           error vs training iteration, aggregates and members
    plot_per_joint(spread_mm, error_mm, out, joint_names)  per-joint error and spread (root left out)
    plot_sparsification(curves, out)      sparsification curve vs oracle and random, with AUSE
    plot_heatmap(table, out, metric)      subject x action table as a heat map
    plot_reliability(study, out)          coverage of the error radii against q, clean and corrupted
    save_all(evaluation, out_dir)         the figures above from one evaluation dict

The skeleton animation (a GIF) is in `raypose.viz.animation`.
"""
import os

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

from raypose.evaluation.report import ACTION_ORDER, action_key, subject_key

DPI = 120
METRIC_LABEL = {"mpjpe": "MPJPE (mm)", "p_mpjpe": "P-MPJPE (mm)", "n_mpjpe": "N-MPJPE (mm)",
                "mpjve": "MPJVE (mm/frame)"}
METRIC_NAME = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "n_mpjpe": "N-MPJPE", "mpjve": "MPJVE"}


def _figure(figsize):
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, out):
    """Lay out, write the PNG (bounding box grown to every label), free the figure."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI, bbox_inches="tight", pad_inches=0.1, facecolor="white")
    fig.clear()
    return out


def _integer_ticks(ax, values):
    """Every value as a tick when there are few, else integer ticks chosen by matplotlib."""
    values = sorted({int(v) for v in values})
    if 0 < len(values) <= 12:
        ax.set_xticks(values)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# ----------------------------------------------------------------------------- evaluation figures

def plot_ensemble_size(study, out):
    """Error of random member subsets vs ensemble size, per aggregate, +-1 std over subsets.

    `study`: {aggregate: {"sizes": [1..N], "mpjpe_mean": [...], "mpjpe_std": [...],
    "p_mpjpe_mean": [...], "p_mpjpe_std": [...]}} in mm.
    """
    fig = _figure((10.5, 4.2))
    axes = fig.subplots(1, 2)
    sizes = set()
    for ax, metric in zip(axes, ("mpjpe", "p_mpjpe")):
        for k, (name, s) in enumerate(study.items()):
            x = np.asarray(s["sizes"], dtype=float)
            sizes.update(s["sizes"])
            m = np.asarray(s[f"{metric}_mean"], dtype=float)
            sd = np.asarray(s.get(f"{metric}_std", np.zeros_like(m)), dtype=float)
            colour = f"C{k}"
            ax.fill_between(x, m - sd, m + sd, color=colour, alpha=0.18, lw=0)
            ax.plot(x, m, marker="o", ms=4, color=colour,
                    label=f"{name} ({m[-1]:.1f} mm at {int(x[-1])})")
        _integer_ticks(ax, sizes)
        ax.set_xlabel("ensemble size (members)")
        ax.set_ylabel(METRIC_LABEL[metric])
        ax.set_title(f"{METRIC_NAME[metric]} vs ensemble size")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        handles.append(Rectangle((0, 0), 1, 1, color="0.5", alpha=0.25, lw=0))
        labels.append("±1 std over member subsets")
        ax.legend(handles, labels, title="aggregate", fontsize=8, title_fontsize=8)
    return _save(fig, out)


def plot_iterations(curve, out):
    """Error vs training iteration: one line per aggregate, the members as thin grey lines.

    `curve`: {"iteration": [...], "aggregates": {name: {"mpjpe": [...], "p_mpjpe": [...]}},
    "members": {"mpjpe": [[per iteration] per member], "p_mpjpe": [...]}} in mm. The y axis turns
    logarithmic when the curve spans more than a factor 3, so that the late iterations, where the
    aggregates differ by a few mm, stay readable next to the first ones.
    """
    fig = _figure((11, 4.4))
    axes = fig.subplots(1, 2)
    it = np.asarray(curve["iteration"], dtype=float)
    members = curve.get("members") or {}
    for ax, metric in zip(axes, ("mpjpe", "p_mpjpe")):
        values = []
        member_curves = [np.asarray(v, dtype=float) for v in members.get(metric, [])]
        for k, v in enumerate(member_curves):
            ax.plot(it[:len(v)], v, color="0.65", lw=0.9, zorder=1,
                    label=f"members (n={len(member_curves)})" if k == 0 else None)
            values.append(v)
        for k, (name, agg) in enumerate(curve["aggregates"].items()):
            v = np.asarray(agg[metric], dtype=float)
            values.append(v)
            last = f", last {v[-1]:.1f}" if len(v) else ""
            ax.plot(it[:len(v)], v, marker="o", ms=3, lw=1.5, color=f"C{k}", zorder=2,
                    label=f"{name}{last}")
        flat = np.concatenate(values) if values else np.array([])
        flat = flat[np.isfinite(flat) & (flat > 0)]
        if len(flat) and flat.max() / flat.min() > 3:
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_locator(LogLocator(subs=(1, 1.5, 2, 3, 4, 5, 6, 8), numticks=30))
        _integer_ticks(ax, it)
        ax.set_xlabel("training iteration")
        ax.set_ylabel(METRIC_LABEL[metric] + (", log scale" if ax.get_yscale() == "log" else ""))
        ax.set_title(f"{METRIC_NAME[metric]} vs iteration")
        ax.grid(alpha=0.3, which="both")
        ax.legend(title="ensemble aggregate (mm)", fontsize=8, title_fontsize=8)
    return _save(fig, out)


def plot_per_joint(spread_mm, error_mm, out, joint_names=None):
    """Grouped bars per joint: the ensemble's mean error and the members' mean spread (mm), the
    joints named by the run's skeleton (`joint_names`; "joint j" without).

    The root (joint 0) is left out: root-relative poses make both 0 there by construction.
    """
    error, spread = np.asarray(error_mm, dtype=float), np.asarray(spread_mm, dtype=float)
    joint_names = [f"joint {j}" for j in range(len(error))] if joint_names is None else list(joint_names)
    if not len(joint_names) == len(error) == len(spread):
        raise ValueError(f"plot_per_joint: {len(joint_names)} joint names for {len(error)} errors and "
                         f"{len(spread)} spreads")
    idx = np.arange(1, len(joint_names))
    fig = _figure((max(7.0, 0.7 * len(idx) + 1.5), 4.4))
    ax = fig.subplots()
    w = 0.4
    ax.bar(idx - w / 2, error[idx], w, color="C0",
           label="ensemble error (mean per-joint position error)")
    ax.bar(idx + w / 2, spread[idx], w, color="C1", label="ensemble spread (RMS member distance)")
    ax.set_xticks(idx, [joint_names[i] for i in idx], rotation=40, ha="right",
                  rotation_mode="anchor")
    ax.set_xlim(idx[0] - 0.6, idx[-1] + 0.6)
    ax.set_ylabel("mean over frames (mm)")
    ax.set_title(f"Per-joint error and ensemble spread ({joint_names[0]} omitted: root, always 0)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.set_ylim(0, 1.18 * max(float(np.nanmax(error[idx], initial=0)),
                              float(np.nanmax(spread[idx], initial=0)), 1e-6))
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    return _save(fig, out)


def plot_sparsification(curves, out):
    """Mean error of the frames kept after removing the most uncertain fraction, vs the oracle.

    `curves`: {"fractions": [0..1], "curve": [...], "oracle": [...], "random": float or list,
    "ause": float (mm), optional "ause_normalised"}; the shaded gap between the two is the AUSE.
    """
    f = 100 * np.asarray(curves["fractions"], dtype=float)
    cur = np.asarray(curves["curve"], dtype=float)
    orc = np.asarray(curves["oracle"], dtype=float)
    rnd = curves.get("random")
    fig = _figure((7, 4.6))
    ax = fig.subplots()
    ause = curves.get("ause")
    text = "AUSE"
    if ause is not None:
        text += f" {ause:.2f} mm"
        if curves.get("ause_normalised") is not None:
            text += f" ({curves['ause_normalised']:.3f} of the mean error)"
    ax.fill_between(f, orc, cur, color="C0", alpha=0.15, lw=0, label="gap between the two (AUSE)")
    ax.plot(f, cur, color="C0", lw=2, label="removing the largest ensemble spread first")
    ax.plot(f, orc, "--", color="C1", lw=1.8, label="oracle: removing the largest true error first")
    if rnd is not None:
        r = np.full_like(f, float(rnd)) if np.ndim(rnd) == 0 else np.asarray(rnd, dtype=float)
        ax.plot(f, r, ":", color="0.3", lw=1.8, label="random order (expected)")
    ax.set_xlim(0, 100)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("frames removed (%)")
    ax.set_ylabel("mean error of the remaining frames (mm)")
    ax.set_title(f"Sparsification by ensemble spread\n{text}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, out)


def plot_heatmap(table, out, metric="p_mpjpe", order=ACTION_ORDER):
    """Subject x action heat map of `metric` (mm) with each value written in its cell, actions in
    the dataset's `order` (`report.action_order`) and any others after them.

    `table`: records {"subject", "action", metric, ...}. Combinations without a record are drawn
    grey and marked 'n/a'; a repeated (subject, action) keeps the frame-weighted mean.
    """
    label = METRIC_LABEL.get(metric, f"{metric} (mm)")
    subjects = sorted({str(r["subject"]) for r in table}, key=subject_key)
    actions = sorted({str(r["action"]) for r in table}, key=lambda a: action_key(a, order))
    total = np.zeros((len(subjects), len(actions)))
    weight = np.zeros_like(total)
    for r in table:
        v = r.get(metric)
        if v is None or not np.isfinite(float(v)):
            continue
        w = float(r.get("frames") or 1)
        i, j = subjects.index(str(r["subject"])), actions.index(str(r["action"]))
        total[i, j] += w * float(v)
        weight[i, j] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = np.where(weight > 0, total / np.maximum(weight, 1e-12), np.nan)
    fig = _figure((1.25 * max(len(actions), 2) + 3.2, 0.55 * max(len(subjects), 2) + 1.8))
    ax = fig.subplots()
    cmap = colormaps["viridis"].with_extremes(bad="0.88")
    finite = grid[np.isfinite(grid)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    norm = Normalize(lo, hi)
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    for i in range(len(subjects)):
        for j in range(len(actions)):
            v = grid[i, j]
            if np.isfinite(v):
                r, g, b, _ = cmap(norm(v))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=10,
                        color="white" if dark else "black")
            else:
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=9, color="0.45")
    ax.set_xticks(range(len(actions)), actions)
    ax.set_yticks(range(len(subjects)), subjects)
    ax.set_xticks(np.arange(len(actions) + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(len(subjects) + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", lw=2)
    ax.tick_params(which="minor", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_xlabel("action")
    ax.set_ylabel("subject")
    ax.set_title(f"{METRIC_NAME.get(metric, metric)} per subject and action (mm)")
    fig.colorbar(im, ax=ax, label=label, fraction=0.06, pad=0.03)
    return _save(fig, out)


def plot_reliability(study, out):
    """Reliability diagram: the share of joints inside their radius against the promised q, for
    every input condition of `study` (evaluate's "uncertainty": "conditions" and
    "spread_as_gaussian", each with "levels", "coverage", "qce"); on the diagonal is calibrated."""
    fig = _figure((6.4, 5.6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, label="calibrated")
    nq = len(study["conditions"]["clean"]["levels"]) - len(study["conditions"]["clean"]["quantiles"])
    rows = [(name, study["conditions"][name]) for name in study.get("order", study["conditions"])]
    for i, (name, c) in enumerate(rows):
        lv, cv = np.asarray(c["levels"][:nq]), np.asarray(c["coverage"][:nq])
        ax.plot(lv, cv, "o-", ms=3, lw=2.2 if name == "clean" else 1.4, color=f"C{i}",
                label=f"{name}: QCE {c['qce']:.3f}, P-MPJPE {c['p_mpjpe']:.1f} mm")
    if study.get("spread_as_gaussian"):
        g = study["spread_as_gaussian"]
        ax.plot(g["levels"][:nq], g["coverage"][:nq], ":", color="0.25", lw=1.6,
                label=f"raw spread read as a Gaussian (clean): QCE {g['qce']:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("promised probability q")
    ax.set_ylabel("share of joints within their radius")
    ax.set_title("Reliability of the error radii (root joint left out)", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, out)


def save_all(evaluation, out_dir):
    """Every figure whose data is present in `evaluation`; returns the paths written.

    Keys: "ensemble_size", "iterations", "per_joint" {"spread_mm", "error_mm", "joint_names"},
    "sparsification", "table" (with "action_order", the dataset's), "uncertainty" ->
    ensemble_size.png, iterations.png, per_joint.png, sparsification.png, heatmap_p_mpjpe.png,
    reliability.png.
    """
    paths = []

    def join(name):
        return os.path.join(out_dir, name)

    if evaluation.get("ensemble_size"):
        paths.append(plot_ensemble_size(evaluation["ensemble_size"], join("ensemble_size.png")))
    if evaluation.get("iterations"):
        paths.append(plot_iterations(evaluation["iterations"], join("iterations.png")))
    if evaluation.get("per_joint"):
        pj = evaluation["per_joint"]
        paths.append(plot_per_joint(pj["spread_mm"], pj["error_mm"], join("per_joint.png"), pj.get("joint_names")))
    if evaluation.get("sparsification"):
        paths.append(plot_sparsification(evaluation["sparsification"], join("sparsification.png")))
    if evaluation.get("table"):
        paths.append(plot_heatmap(evaluation["table"], join("heatmap_p_mpjpe.png"),
                                  order=evaluation.get("action_order", ACTION_ORDER)))
    if (evaluation.get("uncertainty") or {}).get("calibrated"):
        paths.append(plot_reliability(evaluation["uncertainty"], join("reliability.png")))
    return paths


def plot_search(histories, status, best, budget_s, out):
    """raypose tune: each trial's validation P-MPJPE against the seconds it had used; trials the
    scheduler stopped dashed, the best one drawn thick."""
    fig = _figure((7, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    scores = [s for h in histories.values() for _, s in h]
    for trial, h in sorted(histories.items()):
        if not h:
            continue
        t, s = zip(*h)
        mine = trial == best
        ax.plot(t, s, "-" if status.get(trial) != "stopped" else "--", marker="o", markersize=3,
                linewidth=2.5 if mine else 1, alpha=1 if mine else 0.6, color="C3" if mine else None,
                label=f"best: {trial} ({s[-1]:.1f} mm)" if mine else None, zorder=3 if mine else 2)
    ax.axvline(budget_s, color="0.5", linewidth=0.8, linestyle=":", label=f"budget {budget_s:g} s")
    if scores:   # log: a bad trial's first iterations would squash the rest
        ax.set_yscale("log")
        ax.set_ylim(min(scores) * 0.95, max(scores) * 1.05)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.2, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("seconds of the trial's budget used")
    ax.set_ylabel("validation P-MPJPE (mm)")
    ax.set_title(f"raypose tune: {len(histories)} trials (dashed: stopped early)")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, out)

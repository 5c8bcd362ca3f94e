"""The per-action report: sequence errors grouped by (subject, action), in millimetres.

`evaluate_sequences` turns (subject, action, camera, pred, gt) records into one row per subject
and action name, `summary_table` lays that out the way VideoPose3D reports HumanEva (actions as
columns, a subject "All" row, an "Avg" column) and `format_table` writes it as Markdown. The
errors themselves come from `raypose.evaluation.metrics` (metres, numpy).
"""
import re

import numpy as np
import pandas as pd

from raypose.data.splits import action_name
from raypose.datasets.registry import DATASETS, HUMANEVA_DATASET
from raypose.evaluation.metrics import METRICS, _pair, _scale_align, _velocity_errors, per_joint_error, procrustes_align

ACTION_ORDER = HUMANEVA_DATASET.action_order   # the default: HumanEva's Walk, Jog, Box, ... as VideoPose3D


def action_order(dataset):
    """The column order of a built-in dataset by its name (`Layout.dataset_name`), from raypose.datasets.registry
    (Human3.6M's: h36m.ACTIONS); () for one without."""
    return DATASETS[dataset].action_order if dataset in DATASETS else ()


def subject_key(s):
    """Natural order: digit runs compare as numbers, so S9 comes before S11 and 'Validate/S10' after
    'Validate/S9'."""
    parts = re.split(r"([0-9]+)", str(s))   # text, digits, text, ...: alike positions compare alike
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def _record(r):
    if isinstance(r, dict):
        return r["subject"], r["action"], r.get("camera"), r["pred"], r["gt"]
    subject, action, camera, pred, gt = r
    return subject, action, camera, pred, gt


def _sums(subject, action, pred, gt):
    """One record's per-frame errors summed over its frames (metres), and its frame counts."""
    pred, gt = _pair(pred, gt)
    if pred.ndim != 3:
        raise ValueError(f"{subject}/{action}: pred and gt must be (T, J, 3), got {pred.shape}")
    vel = _velocity_errors(pred, gt)
    return {"subject": subject, "action": action_name(action), "frames": len(gt),
            "mpjpe": per_joint_error(pred, gt).mean(-1).sum(),
            "p_mpjpe": per_joint_error(procrustes_align(pred, gt), gt).mean(-1).sum(),
            "n_mpjpe": per_joint_error(_scale_align(pred, gt), gt).mean(-1).sum(),
            "mpjve": vel.mean(-1).sum(), "vframes": len(vel)}


def evaluate_sequences(records):
    """One row per (subject, action name), errors in mm, frame-weighted over chunks and cameras.

    `records`: dicts with keys subject, action, camera, pred, gt, or 5-tuples in that order, pred
    and gt (T, J, 3) in metres. Sums over frames divided by total frames, so a long chunk counts
    more than a short one (as if the chunks were one sequence); MPJVE is weighted by velocity
    frames (T-1 per chunk), and is nan for a group with none.
    """
    rows = []
    for r in records:
        subject, action, _camera, pred, gt = _record(r)
        rows.append(_sums(subject, action, pred, gt))
    cols = ["subject", "action", "frames", *METRICS]
    if not rows:
        return pd.DataFrame(columns=cols)
    g = pd.DataFrame(rows).groupby(["subject", "action"], sort=True).sum().reset_index()
    for m in METRICS[:3]:
        g[m] = 1000 * g[m] / g["frames"]
    g["mpjve"] = 1000 * g["mpjve"] / g["vframes"].where(g["vframes"] > 0)
    g["frames"] = g["frames"].astype(int)
    return g[cols]


def action_key(a, order=ACTION_ORDER):
    """Sort key: the dataset's actions in `order` (HumanEva's by default), any other after them,
    alphabetically."""
    order = tuple(order)
    return (order.index(a), "") if a in order else (len(order), a)


def summary_table(df, metrics=METRICS, order=ACTION_ORDER):
    """The VideoPose3D-style report from `evaluate_sequences`' output, actions in the dataset's
    `order` (`action_order`).

    Index (metric, subject) with a final subject row "All"; columns the actions and "Avg". "Avg"
    is the unweighted mean over actions and "All" the unweighted mean over subjects, as the field
    reports them (each action and subject counts once, however many frames it has).
    """
    actions = sorted(df["action"].unique(), key=lambda a: action_key(a, order))
    blocks = []
    for m in metrics:
        t = df.pivot(index="subject", columns="action", values=m).reindex(columns=actions)
        t = t.reindex(sorted(t.index, key=subject_key))
        t["Avg"] = t[actions].mean(axis=1)
        t.loc["All"] = t.mean(axis=0)
        t.index = pd.MultiIndex.from_product([[m], t.index], names=["metric", "subject"])
        blocks.append(t)
    out = pd.concat(blocks)
    out.columns.name = None
    return out


def format_table(df, decimals=1):
    """Markdown table with aligned columns: floats (mm) at `decimals`, nan as '-'."""
    d = df.reset_index() if not isinstance(df.index, pd.RangeIndex) else df

    def cell(x):
        if isinstance(x, (float, np.floating)):
            return "-" if np.isnan(x) else f"{x:.{decimals}f}"
        return str(x)

    header = [str(c) for c in d.columns]
    body = [[cell(x) for x in row] for row in d.itertuples(index=False)]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    numeric = [pd.api.types.is_numeric_dtype(d[c]) for c in d.columns]

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if n else c.ljust(w)
                                 for c, w, n in zip(cells, widths, numeric)) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if n else "-" * (w + 2)
                          for w, n in zip(widths, numeric)) + "|"
    return "\n".join([line(header), rule, *map(line, body)])

"""Pose errors under the VideoPose3D protocols, a per-action report, and the training losses.

Poses are arrays (..., J, 3) in metres and every function returns metres; millimetres appear only
in the report (`evaluate_sequences`, `summary_table`, `format_table`). Everything is computed in
float64 so that the numbers do not depend on the dtype the model produced.
"""
import numpy as np
import pandas as pd
import torch

_EPS = 1e-12
METRICS = ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve")
# HumanEva's conventional column order (VideoPose3D reports Walk, Jog, Box); others follow sorted.
ACTION_ORDER = ("Walking", "Jog", "Box", "Gestures", "ThrowCatch", "Combo")


def _pair(pred, gt):
    """float64 copies; a shape mismatch is a bug upstream, and broadcasting would hide it."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (..., J, 3)")
    return pred, gt


def per_joint_error(pred, gt):
    """Euclidean distance per joint, shape (..., J): the building block of every protocol."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred, gt):
    """Protocol 1: no alignment at all, so global position and scale errors count in full."""
    return float(per_joint_error(pred, gt).mean())


def procrustes_align(pred, gt):
    """Per pose, the similarity transform (rotation, scale, translation) of pred closest to gt.

    Umeyama/Kabsch as in VideoPose3D's p_mpjpe; the rotation is forced proper (det +1) so a
    mirrored pose is not "aligned" by a reflection. A pose with no spread (e.g. all zeros) maps
    to gt's centroid instead of NaN.
    """
    pred, gt = _pair(pred, gt)
    mu_x, mu_y = gt.mean(-2, keepdims=True), pred.mean(-2, keepdims=True)
    x0, y0 = gt - mu_x, pred - mu_y
    nx = np.sqrt((x0 ** 2).sum((-2, -1), keepdims=True))
    ny = np.sqrt((y0 ** 2).sum((-2, -1), keepdims=True))
    nx, ny = np.where(nx > _EPS, nx, 1.0), np.where(ny > _EPS, ny, 1.0)  # zero spread: H = 0
    x0, y0 = x0 / nx, y0 / ny
    u, s, vt = np.linalg.svd(np.swapaxes(x0, -1, -2) @ y0)
    v = np.swapaxes(vt, -1, -2)
    sign = np.where(np.linalg.det(v @ np.swapaxes(u, -1, -2)) < 0, -1.0, 1.0)
    v[..., -1] *= sign[..., None]
    s[..., -1] *= sign
    r = v @ np.swapaxes(u, -1, -2)
    a = s.sum(-1)[..., None, None] * nx / ny
    return a * (pred @ r) + (mu_x - a * (mu_y @ r))


def p_mpjpe(pred, gt):
    """Protocol 2: error left after the best similarity transform, i.e. of the pose's shape only."""
    return mpjpe(procrustes_align(pred, gt), gt)


def _scale_align(pred, gt):
    """VideoPose3D's n_mpjpe scale: least squares per pose, about the origin (no centring)."""
    pred, gt = _pair(pred, gt)
    num = (gt * pred).sum((-2, -1), keepdims=True)
    den = (pred * pred).sum((-2, -1), keepdims=True)
    return np.where(den > _EPS, num / np.where(den > _EPS, den, 1.0), 0.0) * pred


def n_mpjpe(pred, gt):
    """Scale-only alignment: separates a wrong body size from a wrong pose."""
    return mpjpe(_scale_align(pred, gt), gt)


def _velocity_errors(pred, gt):
    """Per velocity frame and joint, (..., T-1, J); frames are axis -3 (axis 0 for (T, J, 3))."""
    pred, gt = _pair(pred, gt)
    if pred.ndim < 3:
        raise ValueError(f"mpjve needs a frame axis: (..., T, J, 3), got {pred.shape}")
    return np.linalg.norm(np.diff(pred, axis=-3) - np.diff(gt, axis=-3), axis=-1)


def mpjve(pred, gt):
    """Mean per-joint velocity error (m/frame): measures jitter, which MPJPE averages away.

    A sequence of fewer than 2 frames has no velocity: the result is nan (no warning).
    """
    e = _velocity_errors(pred, gt)
    return float(e.mean()) if e.size else float("nan")


def action_name(action):
    """'Walking 1 chunk0' -> 'Walking': HumanEva reports per action, over trials and chunks."""
    return str(action).split()[0] if str(action).split() else str(action)


def _record(r):
    if isinstance(r, dict):
        return r["subject"], r["action"], r.get("camera"), r["pred"], r["gt"]
    subject, action, camera, pred, gt = r
    return subject, action, camera, pred, gt


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
        pred, gt = _pair(pred, gt)
        if pred.ndim != 3:
            raise ValueError(f"{subject}/{action}: pred and gt must be (T, J, 3), got {pred.shape}")
        vel = _velocity_errors(pred, gt)
        rows.append({
            "subject": subject, "action": action_name(action), "frames": len(gt),
            "mpjpe": per_joint_error(pred, gt).mean(-1).sum(),
            "p_mpjpe": per_joint_error(procrustes_align(pred, gt), gt).mean(-1).sum(),
            "n_mpjpe": per_joint_error(_scale_align(pred, gt), gt).mean(-1).sum(),
            "mpjve": vel.mean(-1).sum(), "vframes": len(vel)})
    cols = ["subject", "action", "frames", *METRICS]
    if not rows:
        return pd.DataFrame(columns=cols)
    g = pd.DataFrame(rows).groupby(["subject", "action"], sort=True).sum().reset_index()
    for m in METRICS[:3]:
        g[m] = 1000 * g[m] / g["frames"]
    g["mpjve"] = 1000 * g["mpjve"] / g["vframes"].where(g["vframes"] > 0)
    g["frames"] = g["frames"].astype(int)
    return g[cols]


def _action_key(a):
    return (ACTION_ORDER.index(a), "") if a in ACTION_ORDER else (len(ACTION_ORDER), a)


def summary_table(df, metrics=METRICS):
    """The VideoPose3D-style report from `evaluate_sequences`' output.

    Index (metric, subject) with a final subject row "All"; columns the actions and "Avg". "Avg"
    is the unweighted mean over actions and "All" the unweighted mean over subjects, as the field
    reports them (each action and subject counts once, however many frames it has).
    """
    actions = sorted(df["action"].unique(), key=_action_key)
    blocks = []
    for m in metrics:
        t = df.pivot(index="subject", columns="action", values=m).reindex(columns=actions)
        t = t.sort_index()
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


def mpjpe_loss(pred, target):
    """Training loss: MPJPE on torch tensors (mean Euclidean norm over the last dim)."""
    return torch.mean(torch.norm(pred - target, dim=-1))


def weighted_mpjpe_loss(pred, target, weights):
    """MPJPE with a weight per sample (B,), e.g. a pseudo-label's confidence.

    mean(w * e) rather than sum(w * e) / sum(w): with all weights 1 it equals `mpjpe_loss`, and
    a batch of low-confidence samples stays a small step instead of being renormalised up.
    """
    e = torch.norm(pred - target, dim=-1).reshape(pred.shape[0], -1).mean(-1)
    return torch.mean(weights.to(e.dtype).reshape(-1) * e)

"""Figures for a run's evaluation, and the skeleton animation. Plain data in, PNG/GIF out."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from .skeleton import JOINT_NAMES, LEFT, PARENTS, RIGHT

DPI = 120
METRIC_LABEL = {"mpjpe": "MPJPE (mm)", "p_mpjpe": "P-MPJPE (mm)"}


def _save(fig, out):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def plot_ensemble_size(study, out):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("mpjpe", "p_mpjpe")):
        for name, s in study.items():
            x = np.asarray(s["sizes"])
            m, sd = np.asarray(s[f"{metric}_mean"]), np.asarray(s[f"{metric}_std"])
            ax.plot(x, m, marker="o", label=name)
            ax.fill_between(x, m - sd, m + sd, alpha=0.2)
        ax.set_xticks(x)
        ax.set_xlabel("ensemble size (members)")
        ax.set_ylabel(METRIC_LABEL[metric])
        ax.set_title(f"{METRIC_LABEL[metric].split()[0]} vs ensemble size (±1 sd over subsets)")
        ax.grid(alpha=0.3)
        ax.legend(title="aggregate")
    return _save(fig, out)


def plot_iterations(curve, out):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    it = curve["iteration"]
    for ax, metric in zip(axes, ("mpjpe", "p_mpjpe")):
        for k, values in enumerate(curve.get("members", {}).get(metric, [])):
            ax.plot(it, values, color="0.7", lw=0.8, label="members" if k == 0 else None)
        for name, values in curve["aggregates"].items():
            ax.plot(it, values[metric], marker="o", ms=3, label=f"ensemble ({name})")
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_ylabel(METRIC_LABEL[metric])
        ax.set_title(f"{METRIC_LABEL[metric].split()[0]} vs iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out)


def plot_per_joint(spread_mm, error_mm, out, joint_names=JOINT_NAMES):
    idx = np.arange(1, len(joint_names))              # the root is 0 by construction
    fig, ax = plt.subplots(figsize=(10, 4))
    w = 0.4
    ax.bar(idx - w / 2, np.asarray(error_mm)[idx], w, label="mean error (MPJPE)")
    ax.bar(idx + w / 2, np.asarray(spread_mm)[idx], w, label="mean spread of members")
    ax.set_xticks(idx)
    ax.set_xticklabels([joint_names[i] for i in idx], rotation=45, ha="right")
    ax.set_ylabel("mm")
    ax.set_title("Per-joint error and ensemble spread (root omitted: 0 by construction)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return _save(fig, out)


def plot_sparsification(curves, out):
    f = 100 * np.asarray(curves["fractions"])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(f, curves["curve"], label=f"by ensemble spread (AUSE {curves.get('ause_normalised', curves['ause']):.3f})")
    ax.plot(f, curves["oracle"], "--", label="oracle (by true error)")
    rnd = curves["random"]
    ax.plot(f, np.full_like(f, rnd) if np.isscalar(rnd) else rnd, ":", label="random order")
    ax.set_xlabel("frames removed, most uncertain first (%)")
    ax.set_ylabel("MPJPE of remaining frames (mm)")
    ax.set_title("Sparsification")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out)


def plot_heatmap(table, out, metric="p_mpjpe"):
    subjects = sorted({r["subject"] for r in table})
    order = ["Walking", "Jog", "Box", "Gestures", "ThrowCatch"]
    actions = sorted({r["action"] for r in table}, key=lambda a: (order.index(a) if a in order else 99, a))
    grid = np.full((len(subjects), len(actions)), np.nan)
    for r in table:
        grid[subjects.index(r["subject"]), actions.index(r["action"])] = r[metric]
    fig, ax = plt.subplots(figsize=(1.6 * len(actions) + 2.5, 0.6 * len(subjects) + 1.8))
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, aspect="auto")
    for i in range(len(subjects)):
        for j in range(len(actions)):
            if not np.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center",
                        color="white" if grid[i, j] < np.nanmean(grid) else "black")
    ax.set_xticks(range(len(actions)), actions)
    ax.set_yticks(range(len(subjects)), subjects)
    ax.set_title(f"{METRIC_LABEL.get(metric, metric)} per subject and action")
    fig.colorbar(im, ax=ax, label=METRIC_LABEL.get(metric, metric))
    return _save(fig, out)


def save_all(evaluation, out_dir):
    """Every figure whose data is present; returns the paths written."""
    paths = []
    if "ensemble_size" in evaluation:
        paths.append(plot_ensemble_size(evaluation["ensemble_size"], os.path.join(out_dir, "ensemble_size.png")))
    if "iterations" in evaluation:
        paths.append(plot_iterations(evaluation["iterations"], os.path.join(out_dir, "iterations.png")))
    if "per_joint" in evaluation:
        pj = evaluation["per_joint"]
        paths.append(plot_per_joint(pj["spread_mm"], pj["error_mm"], os.path.join(out_dir, "per_joint.png")))
    if "sparsification" in evaluation:
        paths.append(plot_sparsification(evaluation["sparsification"], os.path.join(out_dir, "sparsification.png")))
    if "table" in evaluation:
        paths.append(plot_heatmap(evaluation["table"], os.path.join(out_dir, "heatmap_p_mpjpe.png")))
    return paths


def skeleton_limits(*arrays, margin=0.1):
    """(lo, hi) per axis over every frame of every array (..., 3), with a margin, equal span."""
    pts = np.concatenate([np.asarray(a).reshape(-1, 3) for a in arrays if a is not None])
    lo, hi = pts.min(0), pts.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 * (1 + margin)
    return centre - half, centre + half


def _upright(p):
    """Camera frame (x right, y down, z forward) -> plot axes (x, depth, up)."""
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def animate(kp2d_px, pred3d, out, gt3d=None, spread=None, fps=30, title="", step=1):
    """GIF: the 2D input beside the ensemble's 3D skeleton (joints coloured by spread) and the truth."""
    from matplotlib.animation import FuncAnimation, PillowWriter

    kp = np.asarray(kp2d_px)[::step]
    pred = _upright(np.asarray(pred3d)[::step])
    gt = None if gt3d is None else _upright(np.asarray(gt3d)[::step])
    spr = None if spread is None else 1000 * np.asarray(spread)[::step]
    lo, hi = skeleton_limits(pred, gt)
    fig = plt.figure(figsize=(10, 5))
    ax2 = fig.add_subplot(1, 2, 1)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    ax2.set_xlim(0, 640)
    ax2.set_ylim(480, 0)
    ax2.set_aspect("equal")
    ax2.set_xlabel("x (px)")
    ax2.set_ylabel("y (px)")
    ax2.set_title("2D input")
    ax3.set_xlim(lo[0], hi[0])
    ax3.set_ylim(lo[1], hi[1])
    ax3.set_zlim(lo[2], hi[2])
    ax3.set_xlabel("x (m)")
    ax3.set_ylabel("depth (m)")
    ax3.set_zlabel("up (m)")
    ax3.set_title("3D: ensemble (coloured by spread) and ground truth")
    bones = [(j, PARENTS[j]) for j in range(1, 15)]
    colour = lambda j: "tab:red" if j in LEFT else "tab:blue" if j in RIGHT else "k"
    lines2 = [ax2.plot([], [], color=colour(j), lw=2)[0] for j, _ in bones] if kp.shape[1] == 15 else []
    pts2 = ax2.plot([], [], "o", color="k", ms=3)[0]
    lines_p = [ax3.plot([], [], [], color=colour(j), lw=2)[0] for j, _ in bones]
    lines_g = [ax3.plot([], [], [], color="0.4", lw=1.5, ls="--")[0] for _ in bones] if gt is not None else []
    if gt is not None:
        lines_g[0].set_label("ground truth")
    lines_p[0].set_label("ensemble")
    vmax = float(np.percentile(spr, 99)) if spr is not None else 1.0
    sc = ax3.scatter([], [], [], c=[], cmap="plasma", vmin=0, vmax=max(vmax, 1e-3), s=25)
    if spr is not None:
        fig.colorbar(sc, ax=ax3, shrink=0.6, pad=0.1, label="member spread (mm)")
    ax3.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)

    def draw(t):
        for line, (j, p) in zip(lines2, bones):
            line.set_data([kp[t, j, 0], kp[t, p, 0]], [kp[t, j, 1], kp[t, p, 1]])
        pts2.set_data(kp[t, :, 0], kp[t, :, 1])
        for line, (j, p) in zip(lines_p, bones):
            line.set_data_3d(*[[pred[t, j, a], pred[t, p, a]] for a in range(3)])
        for line, (j, p) in zip(lines_g, bones):
            line.set_data_3d(*[[gt[t, j, a], gt[t, p, a]] for a in range(3)])
        sc._offsets3d = (pred[t, :, 0], pred[t, :, 1], pred[t, :, 2])
        if spr is not None:
            sc.set_array(spr[t])
        return lines2 + lines_p + lines_g + [pts2, sc]

    anim = FuncAnimation(fig, draw, frames=len(pred), blit=False)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    anim.save(out, writer=PillowWriter(fps=fps))
    plt.close(fig)
    return out

"""The skeleton animation: a GIF of the 2D input beside the ensemble's 3D pose and the truth.

    skeleton_limits(*arrays)              fixed, equal-span 3D limits over whole clips
    animate(kp2d_px, pred3d, out, ...)    GIF: 2D input beside the 3D ensemble and ground truth

Like `raypose.plots`, the figure is built on the Agg canvas directly, so importing this module
never changes the user's pyplot backend. The skeleton defaults to HumanEva's 15 joints
(`raypose.skeleton`); `animate` takes `parents`, `left` and `right` for another one.
"""
import math
import os
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .cameras import IMAGE_HEIGHT, IMAGE_WIDTH
from .errors import UserError
from .skeleton import LEFT, PARENTS, RIGHT

ANIMATION_DPI = 100
# Body-side colours shared by the 2D and 3D skeletons (the subject's left / right).
SIDE_COLOURS = {"left": "tab:blue", "right": "tab:green", "centre": "0.35"}
GT_STYLE = {"color": "k", "lw": 1.3, "ls": (0, (3, 2))}


def skeleton_limits(*arrays, margin=0.1):
    """(lo, hi), each (3,), over every point of every array (..., 3); None arrays are skipped.

    All three axes get the same span (the largest extent, plus `margin` of it on each side), so
    a 3D plot with a cubic box keeps the body's proportions and never clips any frame.
    """
    parts = [np.asarray(a, dtype=float).reshape(-1, 3) for a in arrays if a is not None]
    pts = np.concatenate(parts) if parts else np.zeros((0, 3))
    pts = pts[np.isfinite(pts).all(1)]
    if not len(pts):
        return -np.ones(3), np.ones(3)
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    half = max(float((hi - lo).max()) / 2, 0.05) * (1 + 2 * margin)
    return centre - half, centre + half


def _upright(p):
    """Camera frame (x right, y down, z forward) -> plot axes (x, depth z, up -y)."""
    p = np.asarray(p, dtype=float)
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def _side(j, left=LEFT, right=RIGHT):
    return "left" if j in left else "right" if j in right else "centre"


def _bone_path(children, parents=PARENTS):
    """Joint indices tracing each bone child -> parent, -1 (a break) between bones."""
    idx = []
    for j in children:
        idx += [j, int(parents[j]), -1]
    return np.asarray(idx, dtype=int)


def _path_coords(points, idx):
    """Coordinates (one array per axis) along `idx` from `_bone_path`, NaN at the breaks."""
    xyz = np.where((idx >= 0)[:, None], points[np.maximum(idx, 0)], np.nan)
    return tuple(xyz.T)


def _frame_step(n, step, max_frames):
    if step is None:
        return max(1, math.ceil(n / max_frames)) if max_frames else 1
    if int(step) < 1:
        raise UserError(f"animate: step {step!r} must be a positive integer")
    return int(step)


def _bone_groups(parents, left, right):
    """Bone paths per body side, and one over every bone (the ground truth is drawn in one line).

    One polyline per side, bones separated by NaN: 3-4 artists instead of 14 per skeleton.
    """
    bones = [j for j in range(len(parents)) if parents[j] >= 0]
    groups = {side: _bone_path([j for j in bones if _side(j, left, right) == side], parents)
              for side in SIDE_COLOURS}
    return groups, _bone_path(bones, parents)


# ----------------------------------------------------------------------------- the clip

@dataclass
class _Clip:
    """The frames drawn, already upright (3D) and in mm (spread), with what the counter says."""

    frames: np.ndarray      # indices into the input clip
    n: int                  # frames in the input clip
    step: int
    kp: np.ndarray          # (F, J2, 2) pixels
    pred: np.ndarray        # (F, J, 3) plot axes
    gt: np.ndarray | None
    spread: np.ndarray | None   # (F, J) mm


def _pillow():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - Pillow is a matplotlib dependency
        raise UserError("animate: writing a GIF needs Pillow (pip install pillow)") from e
    return Image


def _check(kp2d_px, pred3d, gt3d, spread, num_joints):
    """kp and pred as float arrays; a shape that does not fit is the user's error."""
    kp = np.asarray(kp2d_px, dtype=float)
    pred = np.asarray(pred3d, dtype=float)
    if pred.ndim != 3 or pred.shape[1:] != (num_joints, 3):
        raise UserError(f"animate: pred3d has shape {pred.shape}, expected (T, {num_joints}, 3)")
    if kp.ndim != 3 or kp.shape[-1] != 2 or len(kp) != len(pred):
        raise UserError(f"animate: kp2d_px has shape {kp.shape}, expected ({len(pred)}, J, 2)")
    for name, a, shape in (("gt3d", gt3d, pred.shape), ("spread", spread, pred.shape[:2])):
        if a is not None and np.shape(a) != shape:
            raise UserError(f"animate: {name} has shape {np.shape(a)}, expected {shape}")
    if len(pred) == 0:
        raise UserError("animate: no frames")
    return kp, pred


def _clip(kp, pred, gt3d, spread, step, max_frames):
    """Every `step`-th frame (default: the smallest step keeping at most `max_frames`)."""
    n = len(pred)
    s = _frame_step(n, step, max_frames)
    frames = np.arange(0, n, s)
    return _Clip(frames=frames, n=n, step=s, kp=kp[frames], pred=_upright(pred[frames]),
                 gt=None if gt3d is None else _upright(np.asarray(gt3d)[frames]),
                 spread=None if spread is None else 1000 * np.asarray(spread, dtype=float)[frames])


# ----------------------------------------------------------------------------- the static figure

def _figure(title):
    """The figure and its three axes: 2D panel, 3D panel, colour bar."""
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3d projection)

    fig = Figure(figsize=(11, 5.4), dpi=ANIMATION_DPI)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    ax2 = fig.add_axes([0.065, 0.13, 0.37, 0.68])
    ax3 = fig.add_axes([0.45, 0.0, 0.45, 0.86], projection="3d")
    cax = fig.add_axes([0.915, 0.2, 0.013, 0.5])
    if title:
        fig.suptitle(title, fontsize=12, y=0.975)
    return fig, ax2, ax3, cax


def _panel_2d(ax2, kp):
    """The image frame, with room for keypoints that fall outside it."""
    x0 = min(0.0, float(np.nanmin(kp[..., 0])))
    x1 = max(IMAGE_WIDTH, float(np.nanmax(kp[..., 0])))
    y0 = min(0.0, float(np.nanmin(kp[..., 1])))
    y1 = max(IMAGE_HEIGHT, float(np.nanmax(kp[..., 1])))
    ax2.add_patch(Rectangle((0, 0), IMAGE_WIDTH, IMAGE_HEIGHT, fc="0.96", ec="0.5", lw=1))
    ax2.set_xlim(x0, x1)
    ax2.set_ylim(y1, y0)                                      # image rows grow downwards
    ax2.set_aspect("equal")
    ax2.set_xlabel("x (px)")
    ax2.set_ylabel("y (px)")
    ax2.set_title(f"2D input: {kp.shape[1]} keypoints in the {IMAGE_WIDTH}×{IMAGE_HEIGHT} image",
                  fontsize=10)


def _panel_3d(ax3, lo, hi):
    """Fixed cube over the clip, viewed a little from above and beside the camera."""
    ax3.set_xlim(lo[0], hi[0])
    ax3.set_ylim(lo[1], hi[1])
    ax3.set_zlim(lo[2], hi[2])
    ax3.set_box_aspect((1, 1, 1))
    ax3.view_init(elev=12, azim=-68)
    ax3.set_xlabel("x (m)", labelpad=2)
    ax3.set_ylabel("depth z (m)", labelpad=2)
    ax3.set_zlabel("up −y (m)", labelpad=2)
    for axis in (ax3.xaxis, ax3.yaxis, ax3.zaxis):
        axis.set_major_locator(MaxNLocator(nbins=5))
    ax3.tick_params(labelsize=8, pad=0)


def _spread_colours(spr):
    """Discrete colour map (it survives the 256-colour GIF palette) and its fixed 0..max scale."""
    cmap = colormaps["YlOrRd"].resampled(12)
    vmax = float(np.nanmax(spr)) if spr is not None and np.isfinite(spr).any() else 0.0
    return cmap, Normalize(0.0, max(vmax, 1e-3))


def _legend(fig, cax, has_gt, spr, cmap, norm):
    """Line legend above the 3D panel, and the spread colour bar (hidden without a spread)."""
    handles = [Line2D([], [], color=SIDE_COLOURS["left"], lw=2.6, label="ensemble, left side"),
               Line2D([], [], color=SIDE_COLOURS["right"], lw=2.6, label="ensemble, right side")]
    if has_gt:
        handles.append(Line2D([], [], label="ground truth", **GT_STYLE))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.675, 0.925), ncol=3,
               fontsize=8, title="3D: root-relative, camera frame", title_fontsize=10,
               frameon=False)
    if spr is not None:
        fig.colorbar(ScalarMappable(norm, cmap), cax=cax, label="ensemble spread per joint (mm)")
        cax.tick_params(labelsize=8)
    else:
        cax.set_visible(False)


# ----------------------------------------------------------------------------- the moving parts

@dataclass
class _Artists:
    """What each frame redraws: skeleton lines, 2D points, 3D joints, the frame counter."""

    lines2: dict
    pts2: object
    line_g: object
    lines_p: dict
    joints: object
    counter: object

    def all(self):
        return [*self.lines2.values(), self.pts2, *([self.line_g] if self.line_g else []),
                *self.lines_p.values(), self.joints, self.counter]


def _artists(fig, ax2, ax3, clip, groups, num_joints, cmap, norm):
    """The animated artists at frame 0 (2D bones only when the 2D has the 3D's joints)."""
    pred, spr = clip.pred, clip.spread
    lines2 = {side: ax2.plot([], [], color=SIDE_COLOURS[side], lw=2, solid_capstyle="round")[0]
              for side in groups} if clip.kp.shape[1] == num_joints else {}
    pts2 = ax2.plot([], [], "o", color="k", ms=3)[0]
    line_g = ax3.plot([], [], [], **GT_STYLE)[0] if clip.gt is not None else None
    lines_p = {side: ax3.plot([], [], [], color=SIDE_COLOURS[side], lw=2.6,
                              solid_capstyle="round")[0] for side in groups}
    joints = ax3.scatter(pred[0, :, 0], pred[0, :, 1], pred[0, :, 2], s=34, edgecolors="k",
                         linewidths=0.6, depthshade=False,
                         **({"c": "0.3"} if spr is None else
                            {"c": spr[0], "cmap": cmap, "norm": norm}))
    counter = fig.text(0.065, 0.025, "", fontsize=9, color="0.3")
    art = _Artists(lines2, pts2, line_g, lines_p, joints, counter)
    for a in art.all():
        a.set_animated(True)
    return art


def _renderer(fig, art, clip, groups, everything):
    """render(t) -> RGB array of frame t, redrawing only the moving artists (blitting)."""
    canvas = fig.canvas
    canvas.draw()                                   # static parts once; sets the 3D projection
    background = canvas.copy_from_bbox(fig.bbox)
    animated = art.all()
    shown = f", every {clip.step} frames shown" if clip.step > 1 else ""

    def render(t):
        canvas.restore_region(background)
        for side, line in art.lines2.items():
            line.set_data(*_path_coords(clip.kp[t], groups[side]))
        art.pts2.set_data(clip.kp[t, :, 0], clip.kp[t, :, 1])
        if art.line_g is not None:
            art.line_g.set_data_3d(*_path_coords(clip.gt[t], everything))
        for side, line in art.lines_p.items():
            line.set_data_3d(*_path_coords(clip.pred[t], groups[side]))
        art.joints.set_offsets(clip.pred[t, :, :2])
        art.joints.set_3d_properties(clip.pred[t, :, 2], "z")
        if clip.spread is not None:
            art.joints.set_array(clip.spread[t])
        art.joints.do_3d_projection()
        art.counter.set_text(f"frame {clip.frames[t] + 1}/{clip.n}{shown}")
        for a in animated:
            (fig if a is art.counter else a.axes).draw_artist(a)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    return render


def _gif_images(Image, render, count):
    """Every frame as a palette image, with one palette for the whole clip.

    GIF frames are 256-colour images; the palette comes from a montage of a few frames, and
    mapping to a fixed palette is ~50x faster than quantising every frame on its own.
    """
    sample = np.unique(np.linspace(0, count - 1, min(count, 4)).round().astype(int))
    montage = Image.fromarray(np.concatenate([render(t) for t in sample]))
    palette = montage.quantize(255, method=Image.Quantize.MEDIANCUT)
    return [Image.fromarray(render(t)).quantize(palette=palette, dither=Image.Dither.NONE)
            for t in range(count)]


def _write_gif(images, out, fps):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    duration = max(20, round(1000 / fps))
    images[0].save(out, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return out


def animate(kp2d_px, pred3d, out, gt3d=None, spread=None, fps=30, title="", step=None,
            max_frames=240, parents=None, left=None, right=None):
    """GIF: the 2D input beside the ensemble's 3D skeleton (joints coloured by spread) and truth.

    kp2d_px (T, J2, 2) pixels in the 640x480 image (bones drawn when J2 == J, else points);
    pred3d and gt3d (T, J, 3) camera-frame root-relative metres (x right, y down, z forward),
    shown upright as (x, depth, -y); spread (T, J) metres. The skeleton is `parents` (J,), -1 at
    the root, with the `left` and `right` joint lists; each defaults to HumanEva's (J = 15).
    Every `step`-th frame is drawn (default: the smallest step that keeps at most `max_frames`
    frames). Axis limits and the colour scale are fixed over the whole clip. The static parts are
    drawn once and each frame only redraws the moving artists (blitting), so 60 frames take
    about a second.
    """
    if not str(out).lower().endswith(".gif"):
        raise UserError(f"animate: {out}: only GIF output is supported, give a path ending in .gif")
    Image = _pillow()
    parents = PARENTS if parents is None else np.asarray(parents, dtype=int)
    left, right = LEFT if left is None else list(left), RIGHT if right is None else list(right)
    kp, pred = _check(kp2d_px, pred3d, gt3d, spread, len(parents))
    clip = _clip(kp, pred, gt3d, spread, step, max_frames)
    groups, everything = _bone_groups(parents, left, right)
    cmap, norm = _spread_colours(clip.spread)

    fig, ax2, ax3, cax = _figure(title)
    _panel_2d(ax2, clip.kp)
    _panel_3d(ax3, *skeleton_limits(clip.pred, clip.gt))
    art = _artists(fig, ax2, ax3, clip, groups, len(parents), cmap, norm)
    _legend(fig, cax, clip.gt is not None, clip.spread, cmap, norm)
    images = _gif_images(Image, _renderer(fig, art, clip, groups, everything), len(clip.frames))
    fig.clear()
    return _write_gif(images, out, fps)

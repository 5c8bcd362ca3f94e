"""The skeleton animation: a GIF of the 2D input beside the ensemble's 3D pose and the truth.

    skeleton_limits(*arrays)              fixed, equal-span 3D limits over whole clips
    animate(kp2d_px, pred3d, out, ...)    GIF: 2D input beside the 3D ensemble, with the ground
                                          truth, the joints filled in and the root's path if given

Like `raypose.viz.plots`, the figure is built on the Agg canvas directly, so importing this module
never changes the user's pyplot backend. Callers pass the run's skeleton (`parents`, `left`,
`right`) and image size; without them `animate` draws HumanEva's 15 joints in a 640x480 image.
"""
import math
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from raypose.datasets.cameras import IMAGE_HEIGHT, IMAGE_WIDTH
from raypose.datasets.skeleton import HUMANEVA
from raypose.errors import UserError
from raypose.viz.gif import gif_images, pillow, write_gif

ANIMATION_DPI = 100
FIGURE_IN = (11.0, 5.4)     # width, height in inches; a top view of the root's path adds TOP_VIEW_IN
TOP_VIEW_IN = 2.7
# Body-side colours shared by the 2D and 3D skeletons (the subject's left / right).
SIDE_COLOURS = {"left": "tab:blue", "right": "tab:green", "centre": "0.35"}
GT_STYLE = {"color": "k", "lw": 1.3, "ls": (0, (3, 2))}
# Joints filled in from their neighbours in time: a ring around the joint, in both panels.
FILLED_STYLE = {"ls": "", "marker": "o", "mfc": "none", "mec": "m", "mew": 1.8}
PATH_COLOUR = "0.1"
SPREAD_LABEL = "ensemble spread per joint (mm)"
DEFAULT_SKELETON = HUMANEVA          # what `animate` draws where the caller names no skeleton
LEFT, RIGHT = list(DEFAULT_SKELETON.left), list(DEFAULT_SKELETON.right)   # its sides
DEFAULT_IMAGE_SIZE = (IMAGE_WIDTH, IMAGE_HEIGHT)      # and no image size: HumanEva's


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


def _bone_path(children, parents=DEFAULT_SKELETON.parents):
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
    filled: np.ndarray | None = None    # (F, J2) bool: 2D joints filled in
    traj: np.ndarray | None = None      # (F, 3) root position, camera frame, metres


def _check(kp2d_px, pred3d, gt3d, spread, num_joints, filled=None, trajectory=None):
    """kp and pred as float arrays; a shape that does not fit is the user's error."""
    kp = np.asarray(kp2d_px, dtype=float)
    pred = np.asarray(pred3d, dtype=float)
    if pred.ndim != 3 or pred.shape[1:] != (num_joints, 3):
        raise UserError(f"animate: pred3d has shape {pred.shape}, expected (T, {num_joints}, 3)")
    if kp.ndim != 3 or kp.shape[-1] != 2 or len(kp) != len(pred):
        raise UserError(f"animate: kp2d_px has shape {kp.shape}, expected ({len(pred)}, J, 2)")
    for name, a, shape in (("gt3d", gt3d, pred.shape), ("spread", spread, pred.shape[:2]),
                           ("filled", filled, kp.shape[:2]), ("trajectory", trajectory, (len(pred), 3))):
        if a is not None and np.shape(a) != shape:
            raise UserError(f"animate: {name} has shape {np.shape(a)}, expected {shape}")
    if len(pred) == 0:
        raise UserError("animate: no frames")
    return kp, pred


def _clip(kp, pred, gt3d, spread, step, max_frames, filled=None, trajectory=None):
    """Every `step`-th frame (default: the smallest step keeping at most `max_frames`)."""
    n = len(pred)
    s = _frame_step(n, step, max_frames)
    frames = np.arange(0, n, s)
    return _Clip(frames=frames, n=n, step=s, kp=kp[frames], pred=_upright(pred[frames]),
                 gt=None if gt3d is None else _upright(np.asarray(gt3d)[frames]),
                 spread=None if spread is None else 1000 * np.asarray(spread, dtype=float)[frames],
                 filled=None if filled is None else np.asarray(filled, dtype=bool)[frames],
                 traj=None if trajectory is None else np.asarray(trajectory, dtype=float)[frames])


# ----------------------------------------------------------------------------- the static figure

def _figure(title, top_view=False):
    """The figure and its axes: 2D panel, 3D panel, colour bar, and on the right the top view of
    the root's path (None without one); the first three keep their size in inches either way."""
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3d projection)

    width = FIGURE_IN[0] + (TOP_VIEW_IN if top_view else 0.0)
    fig = Figure(figsize=(width, FIGURE_IN[1]), dpi=ANIMATION_DPI)
    FigureCanvasAgg(fig)
    fig.patch.set_facecolor("white")
    k = FIGURE_IN[0] / width
    ax2 = fig.add_axes([0.065 * k, 0.13, 0.37 * k, 0.68])
    ax3 = fig.add_axes([0.45 * k, 0.0, 0.45 * k, 0.86], projection="3d")
    cax = fig.add_axes([0.915 * k, 0.2, 0.013 * k, 0.5])
    axt = fig.add_axes([(FIGURE_IN[0] + 0.55) / width, 0.25, (TOP_VIEW_IN - 0.75) / width, 0.45]) if top_view else None
    if title:
        fig.suptitle(title, fontsize=12, y=0.975)
    return fig, ax2, ax3, cax, axt


def _panel_2d(ax2, kp, size):
    """The image frame (`size` w, h pixels), with room for keypoints that fall outside it."""
    w, h = (float(v) for v in size)
    x0 = min(0.0, float(np.nanmin(kp[..., 0])))
    x1 = max(w, float(np.nanmax(kp[..., 0])))
    y0 = min(0.0, float(np.nanmin(kp[..., 1])))
    y1 = max(h, float(np.nanmax(kp[..., 1])))
    ax2.add_patch(Rectangle((0, 0), w, h, fc="0.96", ec="0.5", lw=1))
    ax2.set_xlim(x0, x1)
    ax2.set_ylim(y1, y0)                                      # image rows grow downwards
    ax2.set_aspect("equal")
    ax2.set_xlabel("x (px)")
    ax2.set_ylabel("y (px)")
    ax2.set_title(f"2D input: {kp.shape[1]} keypoints in the {w:g}×{h:g} image", fontsize=10)


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


def _legend(fig, ax3, cax, clip, cmap, norm, label=SPREAD_LABEL):
    """Line legend above the 3D panel, and the spread colour bar (hidden without a spread)."""
    spr = clip.spread
    handles = [Line2D([], [], color=SIDE_COLOURS["left"], lw=2.6, label="ensemble, left side"),
               Line2D([], [], color=SIDE_COLOURS["right"], lw=2.6, label="ensemble, right side")]
    if clip.gt is not None:
        handles.append(Line2D([], [], label="ground truth", **GT_STYLE))
    if clip.filled is not None and clip.filled.any():
        handles.append(Line2D([], [], ms=8, label="filled in (missing in the 2D)", **FILLED_STYLE))
    box = ax3.get_position()
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=((box.x0 + box.x1) / 2, 0.925), ncol=3,
               fontsize=8, title="3D: root-relative, camera frame", title_fontsize=10,
               frameon=False)
    if spr is not None:
        fig.colorbar(ScalarMappable(norm, cmap), cax=cax, label=label)
        cax.tick_params(labelsize=8)
    else:
        cax.set_visible(False)


# ----------------------------------------------------------------------------- the moving parts

@dataclass
class _Artists:
    """What each frame redraws: skeleton lines, 2D points, 3D joints, the frame counter, and the
    rings on filled joints and the root's path when the clip has them."""

    lines2: dict
    pts2: object
    line_g: object
    lines_p: dict
    joints: object
    counter: object
    rings2: object = None       # filled joints in the 2D panel
    rings3: object = None       # the same joints in 3D (when the 2D has the 3D's joints)
    path: object = None         # the root's path so far, top view
    here: object = None         # the root now, top view

    def all(self):
        optional = (self.rings2, self.rings3, self.path, self.here)
        return [*self.lines2.values(), self.pts2, *([self.line_g] if self.line_g else []),
                *self.lines_p.values(), self.joints, *(a for a in optional if a is not None), self.counter]


def _top_view(ax, traj):
    """Top view (x right, depth z away from the camera) of the root's path in camera coordinates,
    the camera at the origin: the whole path faint; returns the animated path-so-far and dot."""
    ax.plot(traj[:, 0], traj[:, 2], color="0.75", lw=1)
    ax.plot([0], [0], marker="^", color="0.3", ms=7, ls="")
    ax.annotate("camera", (0, 0), xytext=(6, -3), textcoords="offset points", fontsize=8, color="0.3")
    pts = np.concatenate([traj[:, [0, 2]], np.zeros((1, 2))])
    lo, hi = pts.min(0), pts.max(0)
    half = max(float((hi - lo).max()) / 2, 0.5) * 1.15
    centre = (lo + hi) / 2
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_aspect("equal")
    ax.set_title("root's path, top view\n(camera coordinates)", fontsize=10)
    ax.set_xlabel("x (m)", fontsize=9)
    ax.set_ylabel("depth z (m)", fontsize=9)
    ax.tick_params(labelsize=8)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=4))
    path = ax.plot([], [], color=PATH_COLOUR, lw=1.6)[0]
    here = ax.plot([], [], "o", color=PATH_COLOUR, ms=5)[0]
    return path, here


def _artists(fig, axes, clip, groups, num_joints, cmap, norm):
    """The animated artists at frame 0 (2D bones, and 3D rings on filled joints, only when the
    2D has the 3D's joints)."""
    (ax2, ax3, axt), pred, spr = axes, clip.pred, clip.spread
    same = clip.kp.shape[1] == num_joints
    lines2 = {side: ax2.plot([], [], color=SIDE_COLOURS[side], lw=2, solid_capstyle="round")[0]
              for side in groups} if same else {}
    pts2 = ax2.plot([], [], "o", color="k", ms=3)[0]
    line_g = ax3.plot([], [], [], **GT_STYLE)[0] if clip.gt is not None else None
    lines_p = {side: ax3.plot([], [], [], color=SIDE_COLOURS[side], lw=2.6,
                              solid_capstyle="round")[0] for side in groups}
    joints = ax3.scatter(pred[0, :, 0], pred[0, :, 1], pred[0, :, 2], s=34, edgecolors="k",
                         linewidths=0.6, depthshade=False,
                         **({"c": "0.3"} if spr is None else
                            {"c": spr[0], "cmap": cmap, "norm": norm}))
    counter = fig.text(ax2.get_position().x0, 0.025, "", fontsize=9, color="0.3")
    art = _Artists(lines2, pts2, line_g, lines_p, joints, counter)
    if clip.filled is not None:
        art.rings2 = ax2.plot([], [], ms=9, **FILLED_STYLE)[0]
        art.rings3 = ax3.plot([], [], [], ms=12, **FILLED_STYLE)[0] if same else None
    if clip.traj is not None:
        art.path, art.here = _top_view(axt, clip.traj)
    for a in art.all():
        a.set_animated(True)
    return art


def _update(art, clip, groups, everything, t):
    """Move every animated artist to frame t."""
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
    if art.rings2 is not None:
        f = clip.filled[t]
        art.rings2.set_data(clip.kp[t, f, 0], clip.kp[t, f, 1])
        if art.rings3 is not None:
            art.rings3.set_data_3d(*clip.pred[t, f].T)
    if art.path is not None:
        art.path.set_data(clip.traj[:t + 1, 0], clip.traj[:t + 1, 2])
        art.here.set_data(clip.traj[t:t + 1, 0], clip.traj[t:t + 1, 2])


def _renderer(fig, art, clip, groups, everything):
    """render(t) -> RGB array of frame t, redrawing only the moving artists (blitting)."""
    canvas = fig.canvas
    canvas.draw()                                   # static parts once; sets the 3D projection
    background = canvas.copy_from_bbox(fig.bbox)
    animated = art.all()
    shown = f", every {clip.step} frames shown" if clip.step > 1 else ""

    def render(t):
        canvas.restore_region(background)
        _update(art, clip, groups, everything, t)
        art.counter.set_text(f"frame {clip.frames[t] + 1}/{clip.n}{shown}")
        for a in animated:
            (fig if a is art.counter else a.axes).draw_artist(a)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    return render


def animate(kp2d_px, pred3d, out, gt3d=None, spread=None, fps=30, title="", step=None,
            max_frames=240, parents=None, left=None, right=None, filled=None, trajectory=None,
            image_size=None, spread_label=SPREAD_LABEL):
    """GIF: the 2D input beside the ensemble's 3D skeleton (joints coloured by spread) and truth.

    kp2d_px (T, J2, 2) pixels in an image of `image_size` (w, h; default HumanEva's 640x480; bones
    drawn when J2 == J, else points); pred3d and gt3d (T, J, 3) camera-frame root-relative metres (x
    right, y down, z forward), shown upright as (x, depth, -y); spread (T, J) metres, any
    per-joint size the colour bar names with `spread_label` (shown in mm). The skeleton is
    `parents` (J,), -1 at the root, with the `left` and `right` joint lists (the run's `Skeleton`);
    each defaults to HumanEva's (J = 15). `filled` (T, J2) bool rings the 2D joints filled in from their
    neighbours in time (and the 3D joints too when J2 == J); `trajectory` (T, 3), the root in
    camera coordinates (metres), adds a top view of its path so far.
    Every `step`-th frame is drawn (default: the smallest step that keeps at most `max_frames`
    frames). Axis limits and the colour scale are fixed over the whole clip. The static parts are
    drawn once and each frame only redraws the moving artists (blitting), so 60 frames take
    about a second.
    """
    if not str(out).lower().endswith(".gif"):
        raise UserError(f"animate: {out}: only GIF output is supported, give a path ending in .gif")
    Image = pillow()
    sk = DEFAULT_SKELETON
    parents = np.asarray(sk.parents if parents is None else parents, dtype=int)
    left, right = list(sk.left if left is None else left), list(sk.right if right is None else right)
    kp, pred = _check(kp2d_px, pred3d, gt3d, spread, len(parents), filled, trajectory)
    clip = _clip(kp, pred, gt3d, spread, step, max_frames, filled, trajectory)
    groups, everything = _bone_groups(parents, left, right)
    cmap, norm = _spread_colours(clip.spread)

    fig, ax2, ax3, cax, axt = _figure(title, clip.traj is not None)
    _panel_2d(ax2, clip.kp, image_size or DEFAULT_IMAGE_SIZE)
    _panel_3d(ax3, *skeleton_limits(clip.pred, clip.gt))
    art = _artists(fig, (ax2, ax3, axt), clip, groups, len(parents), cmap, norm)
    _legend(fig, ax3, cax, clip, cmap, norm, spread_label)
    colours = [to_rgb(c) for c in (FILLED_STYLE["mec"], PATH_COLOUR, *SIDE_COLOURS.values())]
    colours += [cmap(i)[:3] for i in range(cmap.N)] if clip.spread is not None else []
    images = gif_images(Image, _renderer(fig, art, clip, groups, everything), len(clip.frames), colours)
    fig.clear()
    return write_gif(images, out, fps)

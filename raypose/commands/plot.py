"""`raypose plot`: a run's evaluation as pictures, and one sequence (of a run's evaluation or of a
prediction file) as an animation."""
import os
import tempfile

import numpy as np

from raypose.data.source import open_source, read_sequences
from raypose.data.windows import make_windows
from raypose.datasets.cameras import image_coordinates
from raypose.datasets.layout import Layout
from raypose.datasets.registry import of_run
from raypose.ensemble.ensemble import Ensemble
from raypose.errors import UserError
from raypose.evaluation import report as R
from raypose.interop.export import camera_names
from raypose.interop.predfile import is_parquet, read_parquet
from raypose.npzfile import read_npz
from raypose.outputs import check_out_file
from raypose.run import Run

PREDICTION_KEYS = ("positions_3d", "uncertainty", "keypoints_2d", "metadata")
COLOUR_QUANTILE = 0.9   # joints are coloured by the radius at the highest quantile up to this one


def run_plots(run_uri):
    """PNG figures into RUN/plots from the evaluation in metrics.json (evaluated first if needed);
    returns the paths (or URIs) written.

    Rendered into a temporary local directory, then written into the run through `Run`, so a run
    in S3 or GCS gets its plots too, each file whole under its real name (atomic writes).
    """
    from raypose.evaluation.evaluate import evaluate
    from raypose.viz import plots

    run = Run.open(run_uri)
    ev = run.metrics().get("evaluation") or evaluate(run_uri, echo=lambda s: None)
    layout = run.layout   # an evaluation from before skeletons and datasets: its run's (HumanEva's)
    try:
        data = {"table": ev["table"], "ensemble_size": ev["ensemble_size"],
                "per_joint": {"joint_names": list(layout.skeleton.joint_names), **ev["per_joint"]},
                "action_order": ev.get("action_order", R.action_order(layout.dataset_name)),
                "sparsification": ev["calibration"]["sparsification"]}
    except (KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{run.path('metrics.json')}: its evaluation lacks {e} (from another raypose, or edited); "
                        "expected the evaluation raypose evaluate writes: run raypose evaluate again") from None
    for key in ("iterations", "uncertainty"):
        if key in ev:
            data[key] = ev[key]
    written = []
    with tempfile.TemporaryDirectory(prefix="raypose-plots-") as tmp:
        for path in plots.save_all(data, tmp):
            name = os.path.basename(path)
            with open(path, "rb") as f:
                run.write_bytes(f"plots/{name}", f.read())
            written.append(_location(run, f"plots/{name}"))
    return written


def _location(run, rel):
    """What to tell the user: a local path as before, else the URI the run was given."""
    return os.path.join(run.root, *rel.split("/")) if run.local else f"{run.uri.rstrip('/')}/{rel}"


def animation(run_uri, sequence, camera, out, iteration=None, method=None, overwrite=False):
    """GIF of one (subject, action, camera): 2D input beside the ensemble's 3D and the ground truth."""
    from raypose.viz.animation import animate

    if not out:
        raise UserError("--animate needs --out FILE.gif")
    check_out_file(out, overwrite=overwrite, what="a GIF file", runs=[] if "://" in os.fspath(run_uri) else [run_uri])
    if "/" not in sequence:
        raise UserError(f"--animate {sequence!r}: expected SUBJECT/ACTION such as 'Validate/S1/Walking 1 chunk0'")
    subject, action = sequence.rsplit("/", 1)
    run = Run.open(run_uri)
    ensemble = Ensemble.load(run, iteration)
    source = open_source(run.config.data, of_run(ensemble.layout))   # the run's skeleton and cameras, not the files'
    chunks = [(s, a) for s, a in source.chunks if s == subject and (a == action or a.startswith(action))]
    if not chunks:
        raise UserError(f"--animate {sequence!r}: no such subject/action in {source.description}")
    camera, seqs = _camera_track(read_sequences(source, chunks[:1]), camera, chunks[0], source.description)
    windows = make_windows(seqs, int(np.prod(run.config.model.widths)))
    _, ens, unc = ensemble.pose(windows, run.config.train.flip, method)
    layout = ensemble.layout
    sk, size = layout.skeleton, layout.image_size(camera)
    title = f"{chunks[0][0]} {chunks[0][1]} {camera}, {len(ensemble)} members, iteration {ensemble.iteration}"
    return animate(image_coordinates(seqs[0][1], *size), ens, out, gt3d=windows.targets, spread=unc, title=title,
                   parents=sk.parents, left=sk.left, right=sk.right, image_size=size)


def _camera_track(seqs, camera, chunk, description):
    """(camera, [its sequence]) of a chunk's sequences: the named camera's (the first one's by
    default), or one line naming the cameras the data has for the chunk."""
    names = list(dict.fromkeys(key[2] for key, _, _ in seqs))
    camera = camera or (names[0] if names else None)
    if camera not in names:
        raise UserError(f"--camera {camera}: {chunk[0]}/{chunk[1]} in {description} has cameras "
                        f"{', '.join(names) or 'none'}; expected one of them")
    found = [s for s in seqs if s[0][2] == camera and len(s[1])]
    if not found:
        raise UserError(f"--camera {camera}: {chunk[0]}/{chunk[1]} has no frames from it in {description}; "
                        "expected one of its cameras")
    return camera, found


# ----------------------------------------------------------------------------- a prediction file

def prediction_animation(pred_path, sequence, camera, out, overwrite=False):
    """GIF of one track of a `raypose predict` file, no ground truth: the 2D the members saw beside
    the 3D, joints coloured by the error radius (the spread without radii), filled joints ringed,
    the root's path when the file has a trajectory. Everything is checked before the GIF is drawn."""
    from raypose.viz.animation import animate

    if not out:
        raise UserError("--animate needs --out FILE.gif")
    check_out_file(out, pred_path, overwrite, what="a GIF file", input_flag="--pred")
    d = _read_prediction(pred_path)
    meta, skeleton = d["metadata"], d["skeleton"]
    subject, action = _sequence(d["positions_3d"], pred_path, sequence)
    names = camera_names(meta, subject, action, len(d["positions_3d"][subject][action]))
    camera = camera or names[0]
    if camera not in names:
        raise UserError(f"--camera {camera}: {subject}/{action} in {pred_path} has cameras {', '.join(names)}; "
                        "expected one of them")
    c = names.index(camera)
    track = {name: _track(d, name, subject, action, c, pred_path)
             for name in ("positions_3d", "keypoints_2d", "filled", "trajectory") if name in d}
    if not len(track["positions_3d"]):
        raise UserError(f"--animate {sequence!r}: camera {camera} has 0 frames in {pred_path}; expected a track "
                        "with frames")
    colour, label = _joint_colour(d, subject, action, c, pred_path)
    size = (meta.get("input") or {}).get("tracks", {}).get(f"{subject}/{action}/{camera}", {}).get("image_size")
    title = (f"{subject} {action} {camera}: {os.path.basename(os.fspath(pred_path))}, "
             f"{meta.get('ensemble_size', '?')} members, iteration {meta.get('iteration', '?')}")
    return animate(track["keypoints_2d"], track["positions_3d"], out, spread=colour, title=title,
                   parents=skeleton.parents, left=skeleton.left, right=skeleton.right,
                   filled=track.get("filled"), trajectory=track.get("trajectory"),
                   image_size=size, spread_label=label)


def _read_prediction(path):
    """The arrays of a prediction file and its 3D skeleton (`skeleton`), or one line naming what
    is missing."""
    d = read_parquet(path) if is_parquet(path) else read_npz(path)   # the same nested dicts either way
    expected = f"expected a prediction file from raypose predict ({', '.join(PREDICTION_KEYS)})"
    for key in PREDICTION_KEYS:
        if key not in d:
            older = " (files from an older raypose predict lack the 2D: predict again)" if key == "keypoints_2d" else ""
            raise UserError(f"{path}: no {key}{older}; {expected}")
    if not isinstance(d["metadata"], dict) or "layout" not in d["metadata"]:
        raise UserError(f"{path}: metadata has no layout; {expected}")
    if not isinstance(d["positions_3d"], dict) or not all(isinstance(v, dict) for v in d["positions_3d"].values()):
        raise UserError(f"{path}: positions_3d is not {{subject: {{action: [per camera]}}}}; {expected}")
    d["skeleton"] = Layout.from_dict(d["metadata"]["layout"], f"{path}: metadata['layout']").skeleton
    return d


def _sequence(positions, path, sequence):
    """(subject, action) named by SUBJECT/ACTION (or the first action starting with ACTION)."""
    tracks = [(s, a) for s in positions for a in positions[s]]
    found = ([t for t in tracks if f"{t[0]}/{t[1]}" == sequence]
             or [t for t in tracks if sequence.startswith(f"{t[0]}/") and t[1].startswith(sequence[len(t[0]) + 1:])])
    if not found:   # a few that exist, of the subject named if there is one
        near = [t for t in tracks if sequence.startswith(f"{t[0]}/")] or tracks
        some = ", ".join(repr(f"{s}/{a}") for s, a in near[:3]) + (", ..." if len(near) > 3 else "")
        raise UserError(f"--animate {sequence!r}: no such SUBJECT/ACTION in {path}; expected one such as {some}")
    return found[0]


def _track(d, name, subject, action, c, path):
    try:
        return np.asarray(d[name][subject][action][c])
    except (KeyError, IndexError, TypeError):
        raise UserError(f"{path}: {name} has no camera {c + 1} for {subject}/{action}; expected one array per "
                        "camera as in positions_3d") from None


def _joint_colour(d, subject, action, c, path):
    """(T, J) metres to colour the joints by, and the colour bar's words: the error radius at the
    highest quantile up to COLOUR_QUANTILE (the lowest one above it if none) where the file has
    radii, else the members' spread."""
    qs = d["metadata"].get("quantiles")
    if qs and not (isinstance(qs, list) and all(isinstance(q, (int, float)) and 0 < q < 1 for q in qs)):
        raise UserError(f"{path}: metadata['quantiles'] is {str(qs)[:80]}; expected the probabilities in (0, 1) of "
                        "the radii, as raypose predict writes them")
    if "radius" not in d or not qs:
        return (_track(d, "uncertainty", subject, action, c, path),
                "ensemble spread per joint (mm)\n(the file's uncertainty: no radii)")
    below = [i for i, q in enumerate(qs) if q <= COLOUR_QUANTILE]
    i = max(below, key=lambda i: qs[i]) if below else int(np.argmin(qs))
    radius = _track(d, "radius", subject, action, c, path)
    if radius.ndim != 3 or radius.shape[-1] != len(qs):
        raise UserError(f"{path}: radius has shape {radius.shape}; expected (T, J, {len(qs)}) for the "
                        f"{len(qs)} quantiles in metadata")
    guess = (d["metadata"].get("uncertainty_calibration") or {}).get("trusted") is False
    return radius[..., i], (f"error radius at p = {qs[i]:g} per joint (mm)"
                            + ("\nuntrusted here: see metadata" if guess else ""))

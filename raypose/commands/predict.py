"""`raypose predict`: 3D poses and per-joint spread for new 2D tracks, from a run's members."""
import os

import numpy as np

from raypose.data.windows import make_windows
from raypose.datasets.cameras import image_coordinates
from raypose.ensemble.aggregate import check
from raypose.ensemble.ensemble import Ensemble
from raypose.ensemble.uncertainty import QUANTILES, Carry, features
from raypose.errors import UserError
from raypose.interop.inputs import read_2d, read_frame_order
from raypose.interop.predfile import output_format, sink
from raypose.interop.tracks import CONFIDENCE_THRESHOLD, prepare
from raypose.model.geometry import ALL_CAMERAS, fit_windows, trajectory, window_focals
from raypose.npzfile import atomic_write
from raypose.outputs import check_out_file
from raypose.run import CAMERAS, Run

OUTSIDE_LIMIT = 0.05   # share of joint-frames beyond the calibration's range that makes radii a guess


def parse_quantiles(text):
    """'0.5,0.9,0.95' (or a sequence of numbers) -> (0.5, 0.9, 0.95): probabilities strictly
    between 0 and 1, or one line."""
    items = str(text).split(",") if isinstance(text, str) else list(text)
    try:
        qs = tuple(float(x) for x in items if str(x).strip())
    except (TypeError, ValueError):
        qs = ()
    if not qs or not all(0 < q < 1 for q in qs):
        raise UserError(f"--quantiles {text!r}: expected probabilities in (0, 1) separated by commas, "
                        "e.g. 0.5,0.9,0.95")
    return qs


def predict_file(run_uri, input_path, out_path, iteration=None, method=None, flip=True, fit_2d=False, focal=None,
                 overwrite=False, device="cpu", quantiles=QUANTILES, image_size=None, frames=None,
                 threshold=CONFIDENCE_THRESHOLD, fill_missing_frames=False, fov_correction=False):
    """Predictions for every track of `input_path` (`data.inputs.read_2d`'s formats), written to
    `out_path` (.npz or .parquet by its suffix, `interop.predfile`; an existing file only with
    `overwrite`), the members run on `device`; its path.

    One track at a time: windowed, run through the members, aggregated, its radii and trajectory,
    handed to the file's writer, dropped. Memory is then the input, the output (an npz is written
    whole at the end; Parquet as it goes) and one track's work, not a dozen arrays the size of
    every frame, and the numbers are those of the whole file at once (`uncertainty.Carry`)."""
    check_out_file(out_path, {"--input": input_path, "--frames": frames}, overwrite,   # fail fast: before
                   "an .npz or .parquet file", runs=_local(run_uri))              # the members are loaded
    fmt = output_format(out_path)
    if fov_correction and focal is None:
        raise UserError("--fov-correction: zooms the 2D from --focal to the run's focal length; expected "
                        "--focal F with it (the focal length of the camera the 2D was seen by)")
    quantiles = parse_quantiles(quantiles)
    run = Run.open(run_uri)
    method = check(method)
    if focal is not None and not (np.isfinite(focal) and focal > 0):
        raise UserError(f"--focal {focal}: expected a positive focal length in normalised units")
    ensemble = Ensemble.load(run, iteration, device=device)
    layout = ensemble.layout
    zoom, focal, fov = _fov(run, focal, fov_correction)
    user = read_2d(input_path, image_size, read_frame_order(frames) if frames else None, fill_missing_frames)
    ready = prepare(user, layout, input_path, threshold, zoom)   # the run's layout says what joints are
    ready.info["fov_correction"] = fov
    focals = None
    if fit_2d:
        if not layout.same_joints:
            raise UserError(f"--fit-2d: the run's 2D has {layout.joints_2d} joints; expected the 3D "
                            f"skeleton's {layout.joints_3d} in its order")
        focals = _focals(run, focal)
    roots, root_info = _trajectory_focals(run, focal, ready, layout)
    cams = sorted({k[2] for k in ready.keys}, key=lambda c: (len(c), c))   # C1 .. C9, C10 ..
    step = Step(ensemble, int(np.prod(run.config.model.widths)), flip, method, quantiles, zoom, focals, roots,
                input_path)

    def write(f):
        with sink(fmt, f, os.fspath(out_path)) as out:
            for key, kp, filled, gaps, size in ready.each():
                out.add(key, step(key, kp, filled, gaps, size))
            meta_out = {"ensemble_size": len(ensemble), "iteration": ensemble.iteration,
                        "aggregation": method, "config_hash": ensemble.config_hash, "flip_tta": flip,
                        "fit_2d_focal": None if focals is None else window_focals(focals, cams).tolist(),
                        "layout": layout.to_dict(), "fps": layout.fps,   # the training data's frame rate (exports)
                        "units": "metres, camera coordinates, root-relative",
                        "quantiles": list(quantiles) if ensemble.calibration is not None else None,
                        "uncertainty_calibration": trusted(ensemble, method, flip, fit_2d, step, ready),
                        "input": {"file": os.fspath(input_path), "format": user.description, **ready.info},
                        "trajectory": root_info}
            out.finish(meta_out)
    try:
        return atomic_write(os.fspath(out_path), write, f".{fmt}.tmp")
    except OSError as e:   # what check_out could not foresee: a full disk, a folder gone meanwhile
        raise UserError(f"--out {os.fspath(out_path)}: cannot write ({e.strerror or e}); expected a "
                        "writable path with free space") from None


def _local(uri):
    """[the run's local path] to keep outputs out of, or [] for a URI."""
    return [] if "://" in os.fspath(uri) else [uri]


class Step:
    """One track's prediction (`__call__`): its arrays as the file holds them; what the file's
    metadata needs of every track is kept here as a few numbers per track."""

    def __init__(self, ensemble, receptive_field, flip, method, quantiles, zoom, focals, roots, where):
        self.ensemble, self.rf, self.flip, self.method = ensemble, receptive_field, flip, method
        self.quantiles, self.zoom, self.focals, self.roots, self.where = quantiles, zoom, focals, roots, where
        self.carry = Carry()          # the radii's running sums, from track to track
        self.outside, self.keys = [], []   # per track with frames: share beyond the calibration's range
        self.n_filled = 0
        layout = ensemble.layout
        self.empty = {"positions_3d": (layout.joints_3d, 3), "uncertainty": (layout.joints_3d,),
                      "filled": (layout.joints_2d,), "keypoints_2d": (layout.joints_2d, 2)}
        if roots is not None:
            self.empty["trajectory"] = (3,)
        if ensemble.calibration is not None:
            self.empty["radius"] = (layout.joints_3d, len(quantiles))

    def __call__(self, key, kp, filled, gaps, size):
        self.n_filled += int(filled.sum())
        if not len(kp):   # a 0-frame track keeps its place, with 0 rows
            return {name: np.zeros((0, *shape), bool if name == "filled" else np.float32)
                    for name, shape in self.empty.items()}
        windows = make_windows([(key, kp, None)], self.rf, [gaps])
        _, ens, unc, vspread = self.ensemble.estimate(windows, self.flip, self.method)
        root = None
        if self.roots is not None:
            root = trajectory(ens, windows.centre(), window_focals(self.roots, windows.key_per_target(2)))
        if self.focals is not None:   # the spread stays the members' own, around the unfitted aggregate
            ens = fit_windows(ens, windows, self.focals)
        if not (np.all(np.isfinite(ens)) and np.all(np.isfinite(unc))):
            raise UserError(f"{self.where}: the ensemble's 3D poses for this 2D are NaN or infinite (nothing "
                            "written); expected 2D keypoints in pixels of an image")
        centre = windows.centre() / np.float32(self.zoom)
        arrays = {"positions_3d": ens, "uncertainty": unc, "filled": filled,
                  "keypoints_2d": image_coordinates(centre, *size)}
        if root is not None:
            arrays["trajectory"] = root
        cal = self.ensemble.calibration
        if cal is not None:
            feats = features(windows, vspread, self.carry)
            arrays["radius"] = cal.radius_of(cal.scale_of(feats), self.quantiles)
            if not np.all(np.isfinite(arrays["radius"])):
                raise UserError(f"{self.where}: the error radii for this 2D are infinite (nothing written); "
                                "expected 2D keypoints in pixels of an image")
            self.outside.append(float(cal.outside_of(feats, windows.offsets)[0]))
            self.keys.append(key)
        self.carry = self.carry.after(windows)
        return {name: np.asarray(a, bool if a.dtype == bool else np.float32) for name, a in arrays.items()}


def trusted(ensemble, method, flip, fit_2d, step, ready):
    """What the radii were calibrated on, and whether this prediction is a case they hold for:
    `trusted` false with the reasons where it is not (the radius is then a guess, not a promise)."""
    cal = ensemble.calibration
    if cal is None:
        return {"trusted": False, "why": ["the run has no calibration at this iteration (uncertainty.holdout = 0, "
                                          "or trained before radii existed): no radius written"]}
    why = cal.mismatch(method, flip)
    if fit_2d:
        why.append("--fit-2d moves the poses after the radii were computed around the unfitted ones")
    if ready.info["mapped"]:
        why.append(f"2D mapped from another layout ({ready.info['mapped']}): the calibration saw the run's own")
    if step.n_filled and not cal.fitted_on_gaps:
        why.append(f"{step.n_filled} joint-frames of the 2D were missing and filled in from their neighbours in time "
                   "(`filled`): this run's calibration predates filled 2D, and saw none")
    outside, keys = np.asarray(step.outside, np.float64), step.keys
    worst = np.argsort(-outside, kind="stable")[:3]
    bad = [f"{keys[s][0]}/{keys[s][1]} camera {keys[s][2]} ({100 * outside[s]:.0f}%)"
           for s in worst if outside[s] > OUTSIDE_LIMIT]
    if bad:
        why.append("joint-frames with a 2D roughness or member spread beyond anything in the calibration, where "
                   "the radii extrapolate: " + ", ".join(bad))
    return {"trusted": not why, "why": why, "outside_calibrated_range": float(outside.max(initial=0.0)),
            "fitted_on": cal.info.get("fitted_on"), "variants": cal.info.get("variants"),
            "aggregate": cal.info.get("aggregate"), "joint_frames": cal.info.get("calibration_joint_frames")}


def _trajectory_focals(run, focal, ready, layout):
    """(a focal table for the root's positions in camera coordinates, or None; what they rest on):
    with --focal for every camera, else the run's fitted focal lengths for 2D in its own layout
    (its cameras)."""
    if not layout.same_joints:
        return None, {"written": False, "why": "the run's 2D joints are not its 3D skeleton's"}
    if focal is not None:
        table, source = {ALL_CAMERAS: float(focal)}, "--focal"
    elif (ready.info["mapped"] or run.focals() is None
          or any(t["image_size_from"] != "the training data's" for t in ready.info["tracks"].values())):
        # another camera (a size of its own, or mapped detections): the run's focal lengths are not its
        return None, {"written": False, "why": "no focal length for this camera: give --focal (f in pixels x 2 / "
                      "image width)"}
    else:
        table, source = run.focals(), "the run's cameras.json (its training cameras, by name)"
    return table, {"written": True, "focal_from": source, "units": "metres, camera coordinates of the root joint"}


def _fov(run, focal, correct=False):
    """(zoom, the focal length the members then see, what was done): with --focal and
    --fov-correction, the 2D is zoomed about the image centre by the run's focal length / the
    user's, which makes it exactly what the training cameras would see of the same 3D (a pinhole
    with its principal point at the centre); the trajectory and --fit-2d then use the run's focal
    length. Not the default: a person framed as large as in training gets larger than anything
    the members saw (scripts/bench_fov.py measured both ways)."""
    if focal is None:
        return 1.0, None, None
    table = run.focals()
    if not correct or table is None:
        why = "no --fov-correction" if not correct else f"{run.path(CAMERAS)}: none (the run fitted no focal length)"
        return 1.0, focal, {"applied": False, "why": why}
    f_run = float(table[ALL_CAMERAS])
    return f_run / focal, f_run, {"applied": True, "focal": focal, "run_focal": f_run, "zoom": f_run / focal}


def _focals(run, focal):
    """A focal table (geometry.focal_table): --focal for every camera, else the run's own, whose
    camera C{index + 1} serves camera index c (its fit over all cameras where it has none)."""
    if focal is not None:   # checked by predict_file
        return {ALL_CAMERAS: float(focal)}
    table = run.focals()
    if table is None:
        raise UserError(f"{run.path(CAMERAS)}: not found (the run's 2D is not in the 3D skeleton's order, "
                        "or the run predates the file); expected --focal with --fit-2d")
    return table

"""`raypose predict`: 3D poses and per-joint spread for new 2D tracks, from a run's members."""
import os

import numpy as np

from raypose.data.windows import make_windows
from raypose.datasets.cameras import image_coordinates
from raypose.ensemble.aggregate import check
from raypose.ensemble.ensemble import Ensemble
from raypose.ensemble.uncertainty import QUANTILES
from raypose.errors import UserError
from raypose.interop.inputs import read_2d, read_frame_order
from raypose.interop.tracks import CONFIDENCE_THRESHOLD, prepare
from raypose.model.geometry import ALL_CAMERAS, fit_windows, trajectory, window_focals
from raypose.npzfile import save_npz
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
    `out_path` (npz; an existing file only with `overwrite`), the members run on `device`; its path."""
    check_out_file(out_path, {"--input": input_path, "--frames": frames}, overwrite,   # fail fast: before
                   runs=_local(run_uri))                                          # the members are loaded
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
    rf = int(np.prod(run.config.model.widths))
    windows = make_windows(ready.sequences, rf, ready.gaps)   # 0-frame tracks left out
    _, ens, unc, vspread = ensemble.estimate(windows, flip, method)
    root, root_info = _trajectory(run, focal, ready, layout, windows, ens)
    if fit_2d:   # the spread stays the members' own, around the unfitted aggregate
        ens = fit_windows(ens, windows, focals)
    if not (np.all(np.isfinite(ens)) and np.all(np.isfinite(unc))):
        raise UserError(f"{input_path}: the ensemble's 3D poses for this 2D are NaN or infinite (nothing "
                        "written); expected 2D keypoints in pixels of an image")
    filled = np.concatenate([m for m in ready.filled if len(m)])
    arrays = {"positions_3d": ens, "uncertainty": unc, "filled": filled, "keypoints_2d": _pixels(windows, ready, zoom)}
    if root is not None:
        arrays["trajectory"] = root
    trust = trusted(ensemble, method, flip, fit_2d, windows, vspread, ready)
    if ensemble.calibration is not None:
        arrays["radius"] = ensemble.calibration.radius(windows, vspread, quantiles)
        if not np.all(np.isfinite(arrays["radius"])):
            raise UserError(f"{input_path}: the error radii for this 2D are infinite (nothing written); "
                            "expected 2D keypoints in pixels of an image")
    cams = sorted({k[2] for k in ready.keys}, key=lambda c: (len(c), c))   # C1 .. C9, C10 ..
    meta_out = {"ensemble_size": len(ensemble), "iteration": ensemble.iteration,
                "aggregation": method, "config_hash": ensemble.config_hash, "flip_tta": flip,
                "fit_2d_focal": None if focals is None else window_focals(focals, cams).tolist(),
                "layout": layout.to_dict(), "fps": layout.fps,   # the training data's frame rate (exports)
                "units": "metres, camera coordinates, root-relative",
                "quantiles": list(quantiles) if "radius" in arrays else None, "uncertainty_calibration": trust,
                "input": {"file": os.fspath(input_path), "format": user.description, **ready.info},
                "trajectory": root_info}
    try:
        return save_npz(os.fspath(out_path), metadata=meta_out, **_per_track(arrays, ready.keys, windows))
    except OSError as e:   # what check_out could not foresee: a full disk, a folder gone meanwhile
        raise UserError(f"--out {os.fspath(out_path)}: cannot write ({e.strerror or e}); expected a "
                        "writable path with free space") from None


def _local(uri):
    """[the run's local path] to keep outputs out of, or [] for a URI."""
    return [] if "://" in os.fspath(uri) else [uri]


def _pixels(windows, ready, zoom=1.0):
    """(N, J2, 2) the 2D the members saw at each output frame (mapped, gaps filled), back in the
    input's pixels: the field-of-view zoom and each track's own image size undone."""
    centre = windows.centre() / np.float32(zoom)
    return np.concatenate([image_coordinates(centre[lo:hi], *ready.info["tracks"]["/".join(key)]["image_size"])
                           for key, lo, hi in zip(windows.keys, windows.offsets[:-1], windows.offsets[1:])])


def _per_track(arrays, keys, windows):
    """{name: {subject: {action: [per camera]}}} of per-target arrays, in the input's order
    (a 0-frame track gets 0 rows)."""
    out = {name: {} for name in arrays}
    where = {key: s for s, key in enumerate(windows.keys)}
    for key in keys:
        subject, action, _ = key
        s = where.get(key)
        lo, hi = (0, 0) if s is None else (windows.offsets[s], windows.offsets[s + 1])
        for name, a in arrays.items():
            out[name].setdefault(subject, {}).setdefault(action, []).append(
                np.asarray(a[lo:hi], bool if a.dtype == bool else np.float32))
    return out


def trusted(ensemble, method, flip, fit_2d, windows, spread_nj, ready):
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
    n_filled = int(sum(m.sum() for m in ready.filled))
    if n_filled and not cal.fitted_on_gaps:
        why.append(f"{n_filled} joint-frames of the 2D were missing and filled in from their neighbours in time "
                   "(`filled`): this run's calibration predates filled 2D, and saw none")
    outside = cal.outside(windows, spread_nj)
    worst = np.argsort(-outside, kind="stable")[:3]
    bad = [f"{windows.keys[s][0]}/{windows.keys[s][1]} camera {windows.keys[s][2]} ({100 * outside[s]:.0f}%)"
           for s in worst if outside[s] > OUTSIDE_LIMIT]
    if bad:
        why.append("joint-frames with a 2D roughness or member spread beyond anything in the calibration, where "
                   "the radii extrapolate: " + ", ".join(bad))
    return {"trusted": not why, "why": why, "outside_calibrated_range": float(outside.max(initial=0.0)),
            "fitted_on": cal.info.get("fitted_on"), "variants": cal.info.get("variants"),
            "aggregate": cal.info.get("aggregate"), "joint_frames": cal.info.get("calibration_joint_frames")}


def _trajectory(run, focal, ready, layout, windows, pose):
    """(root positions (N, 3) in camera coordinates or None, what they rest on): with --focal for
    every camera, else the run's fitted focal lengths for 2D in its own layout (its cameras)."""
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
    f = window_focals(table, windows.key_per_target(2))
    return trajectory(pose, windows.centre(), f), {"written": True, "focal_from": source,
                                                   "units": "metres, camera coordinates of the root joint"}


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

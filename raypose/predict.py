"""`raypose predict`: 3D poses and per-joint spread for new 2D tracks, from a run's members."""
import os

import numpy as np

from .aggregate import check
from .cameras import CAMERA_NAMES, normalize_screen
from .data.npz import load_2d, save_npz
from .data.windows import make_windows
from .ensemble import Ensemble
from .errors import UserError
from .geometry import ALL_CAMERAS, fit_windows, window_focals
from .outputs import check_out_file
from .run import CAMERAS, Run


def _sequences(pos2d, layout, input_path):
    """(keys of every track, in input order; sequences for windows; cameras) of a user's 2D,
    checked against the run's layout."""
    keys, seqs, ncams = [], [], 0
    for subject, actions in pos2d.items():
        for action, cams in actions.items():
            ncams = max(ncams, len(cams))
            for c, kp in enumerate(cams):
                layout.check_2d(kp.shape[1], f"{input_path}: positions_2d[{subject!r}][{action!r}][{c}]")
                keys.append((subject, action, CAMERA_NAMES[c]))   # load_2d allows 3 cameras at most
                seqs.append((keys[-1], normalize_screen(kp), None))
    if not any(len(kp) for _, kp, _ in seqs):
        raise UserError(f"{input_path}: every positions_2d track has 0 frames; expected at least one frame")
    return keys, seqs, ncams


def predict_file(run_uri, input_path, out_path, iteration=None, method=None, flip=True,
                 fit_2d=False, focal=None, overwrite=False, device="cpu"):
    """Predictions for every track of `input_path`, written to `out_path` (npz; an existing file
    only with `overwrite`), the members run on `device`; its path."""
    check_out_file(out_path, input_path, overwrite)   # fail fast: before the members are loaded
    run = Run.open(run_uri)
    method = check(method)
    if focal is not None and not fit_2d:
        raise UserError(f"--focal {focal}: only used with --fit-2d; expected both or neither")
    ensemble = Ensemble.load(run, iteration, device=device)
    layout = ensemble.layout
    pos2d, _ = load_2d(input_path)   # the run's layout, not the input's metadata, says what joints are
    keys, seqs, ncams = _sequences(pos2d, layout, input_path)
    focals = None
    if fit_2d:
        if not layout.same_joints:
            raise UserError(f"--fit-2d: the run's 2D has {layout.joints_2d} joints; expected the 3D "
                            f"skeleton's {layout.joints_3d} in its order")
        focals = _focals(run, focal)
    windows = make_windows(seqs, int(np.prod(run.config.model.widths)))   # 0-frame tracks left out
    _, ens, unc = ensemble.pose(windows, flip, method)
    if fit_2d:   # the spread stays the members' own, around the unfitted aggregate
        ens = fit_windows(ens, windows, focals)
    if not (np.all(np.isfinite(ens)) and np.all(np.isfinite(unc))):
        raise UserError(f"{input_path}: the ensemble's 3D poses for this 2D are NaN or infinite (nothing "
                        "written); expected 2D keypoints in pixels of an image")
    out3d, outu = {}, {}
    where = {key: s for s, key in enumerate(windows.keys)}
    for key in keys:
        subject, action, _ = key
        s = where.get(key)
        lo, hi = (0, 0) if s is None else (windows.offsets[s], windows.offsets[s + 1])
        out3d.setdefault(subject, {}).setdefault(action, []).append(ens[lo:hi].astype(np.float32))
        outu.setdefault(subject, {}).setdefault(action, []).append(unc[lo:hi].astype(np.float32))
    meta_out = {"ensemble_size": len(ensemble), "iteration": ensemble.iteration,
                "aggregation": method, "config_hash": ensemble.config_hash, "flip_tta": flip,
                "fit_2d_focal": None if focals is None else window_focals(focals, CAMERA_NAMES[:ncams]).tolist(),
                "layout": layout.to_dict(), "units": "metres, camera coordinates, root-relative"}
    try:
        return save_npz(os.fspath(out_path), positions_3d=out3d, uncertainty=outu, metadata=meta_out)
    except OSError as e:   # what check_out could not foresee: a full disk, a folder gone meanwhile
        raise UserError(f"--out {os.fspath(out_path)}: cannot write ({e.strerror or e}); expected a "
                        "writable path with free space") from None


def _focals(run, focal):
    """A focal table (geometry.focal_table): --focal for every camera, else the run's own, whose
    camera C{index + 1} serves camera index c (its fit over all cameras where it has none)."""
    if focal is not None:
        if not (np.isfinite(focal) and focal > 0):
            raise UserError(f"--focal {focal}: expected a positive focal length in normalised units")
        return {ALL_CAMERAS: float(focal)}
    table = run.focals()
    if table is None:
        raise UserError(f"{run.path(CAMERAS)}: not found (the run's 2D is not in the 3D skeleton's order, "
                        "or the run predates the file); expected --focal with --fit-2d")
    return table

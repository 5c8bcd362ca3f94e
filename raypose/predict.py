"""`raypose predict`: 3D poses and per-joint spread for new 2D tracks, from a run's members."""
import os

import numpy as np

from . import config as C
from .cameras import CAMERA_NAMES, normalize_screen
from .data.npz import load_2d, save_npz
from .data.windows import make_windows
from .ensemble import aggregate, load_members, member_predictions, spread
from .errors import UserError
from .geometry import ALL_CAMERAS, fit_windows, window_focals
from .skeleton import LEFT, PARENTS, RIGHT
from .train.checkpoints import CAMERAS, RunDir


def open_run(run_uri, iteration=None):
    """(RunDir, Config, iteration): the latest complete iteration unless one is asked for."""
    run = RunDir(run_uri)
    if not run.exists("config.toml"):
        raise UserError(f"{run.path('config.toml')}: not found; expected a run directory written "
                        "by raypose train")
    cfg = C.loads(run.read_bytes("config.toml").decode(), source=run.path("config.toml"))
    its = run.iterations()
    if not its:
        raise UserError(f"{run.path('checkpoints')}: no complete iteration yet")
    if iteration is None:
        iteration = its[-1]
    elif iteration not in its:
        raise UserError(f"--iteration {iteration}: not in {run.uri}; expected one of {its}")
    return run, cfg, iteration


def predict_file(run_uri, input_path, out_path, iteration=None, method="mean", flip=True,
                 fit_2d=False, focal=None):
    run, cfg, iteration = open_run(run_uri, iteration)
    if focal is not None and not fit_2d:
        raise UserError(f"--focal {focal}: only used with --fit-2d; expected both or neither")
    pos2d, meta = load_2d(input_path)
    sym = meta.get("keypoints_symmetry") or [LEFT, RIGHT]
    state = run.load_member(cfg.train.members, 0, iteration)
    nj_model = state["model"]["expand_conv.weight"].shape[1] // 2
    keys, seqs, ncams = [], [], 0
    for subject, actions in pos2d.items():
        for action, cams in actions.items():
            ncams = max(ncams, len(cams))
            for c, kp in enumerate(cams):
                if kp.shape[1] != nj_model:
                    raise UserError(f"{input_path}: positions_2d[{subject!r}][{action!r}][{c}] has "
                                    f"{kp.shape[1]} joints; expected {nj_model} as the run was trained on")
                keys.append((subject, action, CAMERA_NAMES[c]))   # load_2d allows 3 cameras at most
                seqs.append((keys[-1], normalize_screen(kp), None))
    if not any(len(kp) for _, kp, _ in seqs):
        raise UserError(f"{input_path}: every positions_2d track has 0 frames; expected at least one frame")
    focals = None
    if fit_2d:
        if nj_model != len(PARENTS):
            raise UserError(f"--fit-2d: the run's 2D has {nj_model} joints; expected the 3D skeleton's "
                            f"{len(PARENTS)} in its order")
        focals = _focals(run, focal)
    rf = int(np.prod(cfg.model.widths))
    windows = make_windows(seqs, rf)   # leaves out 0-frame tracks: they get 0-frame outputs below
    models = load_members(run, cfg, iteration, nj_model)
    preds = member_predictions(models, windows, flip, (list(sym[0]), list(sym[1])))
    ens = aggregate(preds, method)
    unc = spread(preds, ens)
    if fit_2d:   # the spread stays the members' own, around the unfitted aggregate
        ens = fit_windows(ens, windows, focals)
    out3d, outu = {}, {}
    where = {key: s for s, key in enumerate(windows.keys)}
    for key in keys:
        subject, action, _ = key
        s = where.get(key)
        lo, hi = (0, 0) if s is None else (windows.offsets[s], windows.offsets[s + 1])
        out3d.setdefault(subject, {}).setdefault(action, []).append(ens[lo:hi].astype(np.float32))
        outu.setdefault(subject, {}).setdefault(action, []).append(unc[lo:hi].astype(np.float32))
    meta_out = {"ensemble_size": len(models), "iteration": iteration,
                "aggregation": method, "config_hash": cfg.hash(), "flip_tta": flip,
                "fit_2d_focal": None if focals is None else window_focals(focals, CAMERA_NAMES[:ncams]).tolist(),
                "units": "metres, camera coordinates, root-relative"}
    return save_npz(os.fspath(out_path), positions_3d=out3d, uncertainty=outu, metadata=meta_out)


def _focals(run, focal):
    """A focal table (geometry.focal_table): --focal for every camera, else the run's own, whose
    camera C{index + 1} serves camera index c (its fit over all cameras where it has none)."""
    if focal is not None:
        if not (np.isfinite(focal) and focal > 0):
            raise UserError(f"--focal {focal}: expected a positive focal length in normalised units")
        return {ALL_CAMERAS: float(focal)}
    table = run.focals()
    if table is None:
        raise UserError(f"{run.path(CAMERAS)}: not found (the run's 2D is not in the 15-joint order, "
                        "or the run predates the file); expected --focal with --fit-2d")
    return table

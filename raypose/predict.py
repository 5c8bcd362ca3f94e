"""`raypose predict`: 3D poses and per-joint spread for new 2D tracks, from a run's members."""
import os

import numpy as np

from . import config as C
from .cameras import normalize_screen
from .data.npz import load_2d, save_npz
from .data.windows import make_windows
from .ensemble import aggregate, load_members, member_predictions, spread
from .errors import UserError
from .skeleton import LEFT, RIGHT
from .train.checkpoints import RunDir


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


def predict_file(run_uri, input_path, out_path, iteration=None, method="mean", flip=True):
    run, cfg, iteration = open_run(run_uri, iteration)
    pos2d, meta = load_2d(input_path)
    sym = meta.get("keypoints_symmetry") or [LEFT, RIGHT]
    state = run.load_member(cfg.train.members, 0, iteration)
    nj_model = state["model"]["expand_conv.weight"].shape[1] // 2
    keys, seqs = [], []
    for subject, actions in pos2d.items():
        for action, cams in actions.items():
            for c, kp in enumerate(cams):
                if kp.shape[1] != nj_model:
                    raise UserError(f"{input_path}: positions_2d[{subject!r}][{action!r}][{c}] has "
                                    f"{kp.shape[1]} joints; expected {nj_model} as the run was trained on")
                keys.append((subject, action, c))
                seqs.append(((subject, action, c), normalize_screen(kp), None))
    rf = int(np.prod(cfg.model.widths))
    windows = make_windows(seqs, rf)
    models = load_members(run, cfg, iteration, nj_model)
    preds = member_predictions(models, windows, flip, (list(sym[0]), list(sym[1])))
    ens = aggregate(preds, method)
    unc = spread(preds, ens)
    out3d, outu = {}, {}
    for s, (subject, action, c) in enumerate(keys):
        lo, hi = windows.offsets[s], windows.offsets[s + 1]
        out3d.setdefault(subject, {}).setdefault(action, []).append(ens[lo:hi].astype(np.float32))
        outu.setdefault(subject, {}).setdefault(action, []).append(unc[lo:hi].astype(np.float32))
    meta_out = {"ensemble_size": len(models), "iteration": iteration,
                "aggregation": method, "config_hash": cfg.hash(), "flip_tta": flip,
                "units": "metres, camera coordinates, root-relative"}
    return save_npz(os.fspath(out_path), positions_3d=out3d, uncertainty=outu, metadata=meta_out)

"""From members' predictions to the ensemble's pose and its spread; loading a run's members.

Aggregation is per joint on root-relative poses, so members never disagree merely about where
the root is.
"""
import numpy as np
import torch

from .errors import UserError
from .inference import predict_windows
from .model import TemporalModel

AGGREGATES = ("mean", "median")


def aggregate(preds, method="mean"):
    """preds (K, N, J, 3) -> (N, J, 3)."""
    preds = np.asarray(preds, dtype=np.float32)
    if method == "mean":
        return preds.mean(axis=0)
    if method == "median":
        return np.median(preds, axis=0)
    raise UserError(f"aggregate {method!r}: unknown, expected one of {', '.join(AGGREGATES)}")


def spread(preds, center=None):
    """Per joint: root-mean-square distance of the members from the ensemble (metres), (N, J).

    The members' standard deviation in 3D; 0 for a single member.
    """
    preds = np.asarray(preds, dtype=np.float32)
    center = preds.mean(axis=0) if center is None else center
    return np.sqrt(np.mean(np.sum((preds - center) ** 2, axis=-1), axis=0))


def build_model(cfg, num_joints_in):
    m = cfg.model
    return TemporalModel(num_joints_in, 15, m.widths, m.channels, m.dropout)


def load_members(run, cfg, iteration, num_joints_in, device="cpu"):
    """The run's N members at `iteration`, in eval mode, checksums verified."""
    n = cfg.train.members
    models = []
    for k in range(n):
        state = run.load_member(n, k, iteration, map_location=device)
        model = build_model(cfg, num_joints_in).to(device)
        model.load_state_dict(state["model"])
        models.append(model.eval())
    return models


@torch.no_grad()
def member_predictions(models, windows, flip, symmetry_2d, device="cpu"):
    """(K, N, 15, 3) for every target of `windows`."""
    return np.stack([predict_windows(m, windows, flip, symmetry_2d, device) for m in models])


def frame_spread(spread_nj):
    """Per-frame summary (N,) of a per-joint spread (N, J): mean over joints but the root."""
    return np.asarray(spread_nj)[..., 1:].mean(-1)

"""Training losses on torch tensors: MPJPE, and MPJPE weighted per sample.

The evaluation's numpy measures (float64, every protocol) are in `raypose.evaluation.metrics`.
"""
import torch


def mpjpe_loss(pred, target):
    """Training loss: MPJPE on torch tensors (mean Euclidean norm over the last dim)."""
    return torch.mean(torch.norm(pred - target, dim=-1))


def weighted_mpjpe_loss(pred, target, weights):
    """MPJPE with a weight per sample (B,), e.g. a pseudo-label's confidence.

    mean(w * e) rather than sum(w * e) / sum(w): with all weights 1 it equals `mpjpe_loss`, and
    a batch of low-confidence samples stays a small step instead of being renormalised up.
    """
    e = torch.norm(pred - target, dim=-1).reshape(pred.shape[0], -1).mean(-1)
    return torch.mean(weights.to(e.dtype).reshape(-1) * e)

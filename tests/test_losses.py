"""The torch training losses: MPJPE and its per-sample weighted form."""
import pytest
import torch

from raypose.train.losses import mpjpe_loss, weighted_mpjpe_loss


def test_torch_losses():
    pred, target = torch.zeros(4, 1, 15, 3), torch.zeros(4, 1, 15, 3)
    pred[..., 0], pred[..., 1] = 0.006, 0.008
    pred[2] *= 3
    assert mpjpe_loss(pred, target).item() == pytest.approx((0.010 * 3 + 0.030) / 4)
    ones = torch.ones(4)
    unweighted = mpjpe_loss(pred, target).item()
    assert weighted_mpjpe_loss(pred, target, ones).item() == pytest.approx(unweighted)
    w = torch.tensor([1.0, 1.0, 0.0, 1.0])
    assert weighted_mpjpe_loss(pred, target, w).item() == pytest.approx(0.030 / 4)
    p = pred.clone().requires_grad_()
    weighted_mpjpe_loss(p, target, w).backward()
    assert p.grad[2].abs().sum() == 0 and p.grad[0].abs().sum() > 0

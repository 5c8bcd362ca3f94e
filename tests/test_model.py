import pytest
import torch

from raypose.model.temporal import TemporalModel


def small_model(j_in=15, j_out=15, widths=(3, 3, 3), channels=32, seed=0):
    """Eval-mode model with non-trivial BN stats, so a BN mix-up between forms would show."""
    torch.manual_seed(seed)
    model = TemporalModel(j_in, j_out, widths=widths, channels=channels)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def test_param_count_matches_videopose3d():
    model = TemporalModel(15, 15, widths=(3, 3, 3), channels=1024)
    assert sum(p.numel() for p in model.parameters()) == 8_537_133


@pytest.mark.parametrize("widths,expected", [((3, 3, 3), 27), ((3, 3, 3, 3, 3), 243),
                                             ((3, 3), 9), ((5,), 5), ((1, 3), 3)])
def test_receptive_field(widths, expected):
    assert TemporalModel(15, widths=widths, channels=8).receptive_field() == expected


@pytest.mark.parametrize("widths", [(3, 2, 3), (0, 3), (), (4,)])
def test_rejects_bad_widths(widths):
    with pytest.raises(ValueError):
        TemporalModel(15, widths=widths, channels=8)


@pytest.mark.parametrize("widths,j_in", [((3, 3, 3), 15), ((3, 3), 15), ((3, 3, 3, 3), 15),
                                         ((3, 3, 3), 17), ((5, 3), 15)])
def test_dilated_and_strided_forms_agree(widths, j_in):
    model = small_model(j_in=j_in, widths=widths)
    rf = model.receptive_field()
    t = rf + 13
    x = torch.randn(2, t, j_in, 2)
    with torch.no_grad():
        dense = model(x)
        assert dense.shape == (2, t - rf + 1, 15, 3)
        windows = x.unfold(1, rf, 1)  # (B, T-rf+1, J, 2, rf)
        windows = windows.permute(0, 1, 4, 2, 3).reshape(-1, rf, j_in, 2)
        sparse = model(windows, strided=True)
        assert sparse.shape == (windows.shape[0], 1, 15, 3)
        torch.testing.assert_close(sparse.reshape(dense.shape), dense, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.forward_strided(windows), sparse)


def test_forward_rejects_bad_shapes():
    model = small_model()
    with pytest.raises(ValueError):
        model(torch.randn(1, 26, 15, 2))
    with pytest.raises(ValueError):
        model(torch.randn(1, 28, 15, 2), strided=True)
    with pytest.raises(ValueError):
        model(torch.randn(1, 27, 17, 2))


def test_attributes_and_bn_momentum():
    model = TemporalModel(17, 15, widths=(3, 3), channels=16, momentum=0.1)
    assert (model.num_joints_in, model.num_joints_out, model.widths, model.channels) == \
        (17, 15, (3, 3), 16)
    model.set_bn_momentum(0.01)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == 3 and all(bn.momentum == 0.01 for bn in bns)


def test_strided_form_trains():
    torch.manual_seed(0)
    model = TemporalModel(15, 15, widths=(3, 3, 3), channels=32, dropout=0.0).train()
    x = torch.randn(8, 27, 15, 2)
    y = torch.randn(8, 1, 15, 3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(10):
        loss = (model(x, strided=True) - y).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(p.grad is not None for p in model.parameters())
    assert losses[-1] < 0.8 * losses[0]


def test_flops_per_frame():
    model = TemporalModel(15, 15, widths=(3, 3, 3), channels=1024)
    assert model.flops_per_frame(strided=True) == pytest.approx(35.3e6, rel=0.02)
    # Dilated: every layer once per frame.
    c = 1024
    dense = 2 * (30 * c * 3 + 2 * (c * c * 3 + c * c) + c * 45)
    assert model.flops_per_frame(strided=False) == dense


def test_gemm_strided_form_equals_conv_kernels_in_training():
    """The GEMM layout of the strided form is the same function, gradients and BN updates included."""
    torch.manual_seed(0)
    a = TemporalModel(17, 15, widths=(3, 3, 3), channels=32, dropout=0.0)
    b = TemporalModel(17, 15, widths=(3, 3, 3), channels=32, dropout=0.0)
    b.load_state_dict(a.state_dict())
    b.strided_gemm = False
    x = torch.randn(16, 27, 17, 2)
    ya, yb = a(x, strided=True), b(x, strided=True)
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=1e-5)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, atol=1e-4, rtol=1e-4, msg=name)
    for (name, ba), bb in zip(a.named_buffers(), b.buffers()):
        torch.testing.assert_close(ba, bb, atol=1e-5, rtol=1e-5, msg=name)


def test_fast_dropout_is_dropout():
    from raypose.model.temporal import Dropout
    torch.manual_seed(0)
    x = torch.ones(300, 1000, requires_grad=True)
    drop = Dropout(0.25).train()
    y = drop(x)
    kept = (y != 0).float()
    assert abs(kept.mean().item() - 0.75) < 0.005                     # keep probability 1 - p
    assert torch.allclose(y[y != 0], torch.tensor(4 / 3))              # survivors scaled by 1 / (1 - p)
    assert abs(y.mean().item() - 1.0) < 0.01                           # expectation preserved
    # independent across positions and calls, not a repeating pattern
    assert abs(kept[:, :-1].mul(kept[:, 1:]).mean().item() - 0.75 ** 2) < 0.005
    assert not torch.equal(drop(x) != 0, y != 0)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())                             # gradient = mask x scale
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    assert torch.equal(a, drop(x))                                     # seeded like any torch op
    assert torch.equal(drop.eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)

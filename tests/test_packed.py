"""Packed members (stacked weights + vmap) train exactly as separate members do."""
import copy

import pytest
import torch

from raypose.model.temporal import TemporalModel
from raypose.train.losses import weighted_mpjpe_loss
from raypose.train.packed import PackedMembers


def test_packed_step_equals_separate_members():
    torch.manual_seed(0)
    models = [TemporalModel(15, 15, (3, 3), 32, dropout=0.0) for _ in range(3)]
    alone = [copy.deepcopy(m) for m in models]
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2, amsgrad=True) for m in alone]
    packed = PackedMembers(models, lr=1e-2)
    for _ in range(4):
        x, y, w = torch.randn(3, 16, 9, 15, 2), torch.randn(3, 16, 15, 3), torch.rand(3, 16)
        losses = packed.step(x, y, w)
        for k, (m, opt) in enumerate(zip(alone, opts)):
            m.train()
            loss = weighted_mpjpe_loss(m(x[k], strided=True)[:, 0], y[k], w[k])
            opt.zero_grad()
            loss.backward()
            opt.step()
            torch.testing.assert_close(losses[k], loss.detach(), rtol=1e-4, atol=1e-6)
    for m, ref in zip(packed.unpack(), alone):
        for (name, a), b in zip(m.state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(a.float(), b.float(), rtol=1e-4, atol=1e-5, msg=name)
    # and they are three different models, each moved by its own data
    assert not torch.equal(models[0].expand_conv.weight, models[1].expand_conv.weight)


def test_train_packed_matches_members_and_resumes_like_them(synth_dir):
    """Two members trained packed for two iterations: same losses as trained one by one (no
    dropout), and their optimiser state is theirs again afterwards, so checkpoints stay plain."""
    import numpy as np

    from raypose import config as C
    from raypose.data.source import open_source, read_sequences
    from raypose.data.windows import make_windows
    from raypose.datasets.layout import Layout
    from raypose.train.member import Member, TrainSet, draw_sample, train_members

    cfg = C.with_values(C.Config(), {"data.path": str(synth_dir), "model.channels": 16, "model.dropout": 0.0,
                                     "model.widths": [3, 3], "train.batch_size": 64, "train.iterations": 4,
                                     "train.epochs": 1})
    src = open_source(cfg.data)
    layout = Layout.of(src.num_joints_2d, src.symmetry)
    w = make_windows(read_sequences(src, src.chunks[:2]), 9)
    data = TrainSet(w, True, layout)

    def make():
        return [Member(k, cfg, layout) for k in range(2)]
    alone, packed = make(), make()
    init = [copy.deepcopy(m.model.state_dict()) for m in alone]
    for it in (1, 2):
        samples = [draw_sample(data.n, k, 2, it, "bootstrap", 0, 0) for k in range(2)]
        ref = [m.train_iteration(data, s, it, 1) for m, s in zip(alone, samples)]
        got = train_members(packed, data, samples, it, 1, pack=True)
        np.testing.assert_allclose(got, ref, rtol=1e-2)   # the two members differ by ~25%
    for a, b, start in zip(alone, packed, init):
        assert a.epoch == b.epoch == 2
        (sa, ra), (sb, rb) = a.state_dict(), b.state_dict()
        for name, w0 in start.items():
            if not w0.is_floating_point():
                assert torch.equal(sb["model"][name], sa["model"][name])
                continue
            # Adam amplifies float rounding in near-zero gradients, so compare the distance
            # between the two against how far training moved the weights
            moved = (sa["model"][name] - w0).norm()
            assert (sb["model"][name] - sa["model"][name]).norm() < 0.05 * moved, name
        assert rb["optimizer"]["param_groups"][0]["lr"] == pytest.approx(ra["optimizer"]["param_groups"][0]["lr"])
        for k, state in ra["optimizer"]["state"].items():
            mine = rb["optimizer"]["state"][k]
            assert float(mine["step"]) == float(state["step"]) == 2 * -(-2 * len(samples[0]) // 64)
            for key in ("exp_avg_sq", "max_exp_avg_sq"):   # each member got its own state back
                assert (mine[key] - state[key]).norm() < 0.1 * state[key].norm(), (k, key)

"""Members on a CUDA device: training, resume, bf16 and packing. Skipped without CUDA.

No GPU has run these yet: scripts/gpu_check.sh runs them (`python -m pytest -q -m cuda`) on a
GPU machine. On GPU, cuDNN/cuBLAS kernels are not bitwise deterministic, so where the CPU tests
ask for identical numbers these ask for closeness, measured against how far training moved.
"""
import copy
import io
import math

import numpy as np
import pytest
import torch
from test_member import LAYOUT, small_cfg

from raypose.evaluation.metrics import mpjpe
from raypose.model import device as D
from raypose.train.member import Member, TrainSet, draw_sample, train_members

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (torch.cuda.is_available())")]

CUDA = "cuda"


@pytest.fixture(autouse=True)
def ieee_fp32():
    """fp32 means IEEE fp32 here (as a worker sets it for train.precision=fp32), then back."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    D.set_precision(CUDA, "fp32")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _on_device(t):
    return t.device.type == torch.device(CUDA).type


def _close_to(a, b, start, share=0.05):
    """Every float tensor of state dict `a` within `share` of how far training moved it from `start`."""
    for name, w0 in start.items():
        if not w0.is_floating_point():
            assert torch.equal(a[name].cpu(), b[name].cpu()), name
            continue
        moved = (b[name].cpu() - w0.cpu()).norm()
        assert (a[name].cpu() - b[name].cpu()).norm() <= share * moved + 1e-7, name


def test_member_trains_on_cuda(walk_jog_windows):
    train, test = walk_jog_windows
    cfg = small_cfg(**{"train.iterations": 2, "train.epochs": 2})
    m = Member(0, cfg, LAYOUT, CUDA)
    data = TrainSet(train, True, LAYOUT, CUDA)
    assert _on_device(data.starts) and all(_on_device(p) for p in m.model.parameters())
    before = mpjpe(m.predict(test), test.targets)
    losses = [m.train_iteration(data, draw_sample(data.n, 0, 1, i, "bootstrap", 0, 0), i, 2) for i in (1, 2)]
    assert all(math.isfinite(v) for v in losses), losses
    assert losses[1] < losses[0], losses
    after = mpjpe(m.predict(test), test.targets)
    assert np.isfinite(after) and after < 0.8 * before, (before, after)
    assert all(_on_device(s) for st in m.optimizer.state.values() for s in st.values() if s.dim())


@pytest.mark.parametrize("map_location", ["cpu", "cuda"])
def test_cuda_checkpoint_resumes_on_cuda_with_the_cpu_rng(walk_jog_windows, map_location):
    """Saved as Run saves it (torch.save of state dicts holding CUDA tensors), loaded on CPU (what
    the worker does) or straight onto CUDA: the member continues on CUDA, and the CPU RNG state
    comes back a CPU ByteTensor (torch.set_rng_state accepts nothing else)."""
    train, _ = walk_jog_windows
    cfg = small_cfg(**{"train.iterations": 2, "train.epochs": 2})
    data = TrainSet(train, True, LAYOUT, CUDA)
    samples = [draw_sample(data.n, 1, 2, i, "bootstrap", 500, 0) for i in (1, 2)]
    straight = Member(1, cfg, LAYOUT, CUDA)
    for i in (1, 2):
        straight.train_iteration(data, samples[i - 1], i, 2)

    first = Member(1, cfg, LAYOUT, CUDA)
    first.train_iteration(data, samples[0], 1, 2)
    after_one = copy.deepcopy(first.model.state_dict())
    files = []
    for part in first.state_dict():
        buf = io.BytesIO()
        torch.save(part, buf)
        files.append(buf.getvalue())
    saved_rng = torch.get_rng_state().clone()
    weights, resume = (torch.load(io.BytesIO(b), map_location=map_location, weights_only=True) for b in files)
    assert resume["torch_rng"].device.type == map_location

    torch.manual_seed(123)   # whatever happened in between
    resumed = Member(1, cfg, LAYOUT, CUDA)
    resumed.load_state_dict(weights, resume)
    rng = torch.get_rng_state()
    assert rng.device.type == "cpu" and rng.dtype == torch.uint8 and torch.equal(rng, saved_rng)
    assert resumed.epoch == first.epoch == 2
    assert all(_on_device(p) for p in resumed.model.parameters())
    assert all(_on_device(s) for st in resumed.optimizer.state.values() for s in st.values() if s.dim())
    loss = resumed.train_iteration(data, samples[1], 2, 2)
    assert math.isfinite(loss)
    _close_to(resumed.model.state_dict(), straight.model.state_dict(), after_one)


def test_bf16_trains_and_keeps_fp32_weights(walk_jog_windows):
    train, test = walk_jog_windows
    cfg = small_cfg(**{"train.iterations": 2, "train.epochs": 2, "train.precision": "bf16"})
    m = Member(0, cfg, LAYOUT, CUDA)
    data = TrainSet(train, True, LAYOUT, CUDA)
    before = mpjpe(m.predict(test), test.targets)
    losses = [m.train_iteration(data, draw_sample(data.n, 0, 1, i, "bootstrap", 0, 0), i, 2) for i in (1, 2)]
    assert all(math.isfinite(v) for v in losses), losses
    assert all(p.dtype == torch.float32 for p in m.model.parameters())   # autocast: master weights stay fp32
    pred = m.predict(test)
    assert pred.dtype == np.float32 and np.isfinite(pred).all()
    assert mpjpe(pred, test.targets) < 0.8 * before


def test_packed_members_on_cuda_match_unpacked(walk_jog_windows):
    """Two members trained packed (one vmapped step) or one by one on CUDA: same losses and
    weights up to float rounding (no dropout, so the random draws play no part)."""
    train, _ = walk_jog_windows
    cfg = small_cfg(**{"model.dropout": 0.0, "train.iterations": 2, "train.epochs": 1})
    data = TrainSet(train, True, LAYOUT, CUDA)

    def make():
        return [Member(k, cfg, LAYOUT, CUDA) for k in range(2)]
    alone, packed = make(), make()
    init = [copy.deepcopy(m.model.state_dict()) for m in alone]
    for it in (1, 2):
        samples = [draw_sample(data.n, k, 2, it, "bootstrap", 1000, 0) for k in range(2)]
        ref = train_members(alone, data, samples, it, 1, pack=False)
        got = train_members(packed, data, samples, it, 1, pack=True)
        assert all(math.isfinite(v) for v in got)
        np.testing.assert_allclose(got, ref, rtol=1e-2)
    for a, b, start in zip(alone, packed, init):
        assert a.epoch == b.epoch == 2
        assert all(_on_device(p) for p in b.model.parameters())
        _close_to(b.model.state_dict(), a.model.state_dict(), start)

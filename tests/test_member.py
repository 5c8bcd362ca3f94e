"""The per-member training step, plain PyTorch without Ray."""
import copy

import numpy as np
import pytest
import torch

from raypose import config as C
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import LEFT, RIGHT
from raypose.evaluation.metrics import mpjpe
from raypose.train.member import Member, TrainSet, draw_sample


@pytest.fixture(scope="module")
def windows(walk_jog_windows):
    return walk_jog_windows


LAYOUT = Layout.of(15, (LEFT, RIGHT))


def small_cfg(**kw):
    return C.with_values(C.Config(), {"model.channels": 32, "model.dropout": 0.1, "train.lr": 3e-3,
                                      "train.lr_decay": 0.9, "train.batch_size": 64, **kw})


def test_sampling_modes():
    a = draw_sample(1000, 0, 3, 1, "bootstrap", 200, seed=5)
    b = draw_sample(1000, 1, 3, 1, "bootstrap", 200, seed=5)
    assert len(a) == 200 and len(np.unique(a)) < 200          # with replacement
    assert not np.array_equal(a, b)                            # each member its own draw
    assert np.array_equal(a, draw_sample(1000, 0, 3, 1, "bootstrap", 200, seed=5))
    assert not np.array_equal(a, draw_sample(1000, 0, 3, 2, "bootstrap", 200, seed=5))
    parts = [draw_sample(1000, k, 3, 1, "disjoint", 200, seed=5) for k in range(3)]
    draw = np.concatenate(parts)                               # one draw cut into parts
    assert len(draw) == 600
    assert np.array_equal(draw, np.random.default_rng([5, 1, 7]).integers(0, 1000, 600))
    assert np.array_equal(draw_sample(50, 2, 3, 4, "full", 10, seed=5), np.arange(50))
    assert len(draw_sample(50, 0, 3, 1, "bootstrap", 0, seed=5)) == 50   # 0 = set size


def test_trainset_flip_twins(windows):
    train, _ = windows
    ts = TrainSet(train, True, LAYOUT)
    assert len(ts.weights) == 2 * ts.n
    x, y, w = ts.batch(np.array([3, 3 + ts.n]))
    np.testing.assert_allclose(x[1, :, 5, 0], -x[0, :, 2, 0])   # right <- mirrored left
    np.testing.assert_allclose(y[1, 8], y[0, 11] * torch.tensor([-1.0, 1, 1]))
    x0, y0, _ = TrainSet(train, False, LAYOUT).batch(np.array([3]))
    torch.testing.assert_close(x0[0], x[0])
    assert np.sort(ts.epoch_order(np.array([1, 2]), np.random.default_rng(0))).tolist() == [1, 2, 1 + ts.n, 2 + ts.n]


def test_twins_are_mirrored_as_drawn_bit_for_bit_and_nothing_is_copied(windows):
    """The twins equal a stored mirrored copy of the data (what the set held before it mirrored per
    batch) exactly, and the set's tensors are the windows' own arrays: members of a node share them."""
    from raypose.datasets.skeleton import mirror
    train = windows[0]
    ts = TrainSet(train, True, LAYOUT, store_twins_below=0)   # a big set's way: nothing copied
    assert not ts.stored and TrainSet(train, True, LAYOUT).stored   # a small one stores its mirrored copy
    assert ts.inputs.data_ptr() == train.inputs.ctypes.data and ts.targets.data_ptr() == train.targets.ctypes.data
    inputs = torch.from_numpy(train.inputs)
    stored_x = torch.cat([inputs, mirror(inputs, LAYOUT.flip_2d())])
    stored_y = torch.cat([torch.from_numpy(train.targets), mirror(torch.from_numpy(train.targets), ts.p3)])
    starts = torch.from_numpy(train.starts)
    starts = torch.cat([starts, starts + len(inputs)])
    idx = torch.as_tensor(np.random.default_rng(1).integers(0, 2 * ts.n, (2, 300)))
    x, y, _ = ts.batch(idx)
    assert torch.equal(x, stored_x[starts[idx][..., None] + ts.offsets]) and torch.equal(y, stored_y[idx])
    for got, want in zip(TrainSet(train, True, LAYOUT).batch(idx), (x, y)):   # the stored copy: the same
        assert torch.equal(got, want)
    read_only = copy.copy(train)
    read_only.inputs = train.inputs.copy()
    read_only.inputs.flags.writeable = False   # as Ray's object store gives it
    assert torch.equal(TrainSet(read_only, True, LAYOUT, store_twins_below=0).batch(idx)[0], x)


def test_a_batch_of_many_members_is_one_gather(windows):
    """An (M, B) index gathers what M separate (B,) indices would, stacked: the packed step's batch."""
    ts = TrainSet(windows[0], True, LAYOUT)
    idx = torch.as_tensor(np.random.default_rng(0).integers(0, 2 * ts.n, (3, 17)))
    for got, *alone in zip(ts.batch(idx), *(ts.batch(i) for i in idx)):
        assert got.shape[:2] == (3, 17) and torch.equal(got, torch.stack(alone))


def test_member_learns_and_schedules(windows):
    train, test = windows
    cfg = small_cfg(**{"train.iterations": 2, "train.epochs": 3})
    m = Member(0, cfg, LAYOUT)
    before = mpjpe(m.predict(test), test.targets)
    ts = TrainSet(train, True, LAYOUT)
    for i in (1, 2):
        m.train_iteration(ts, draw_sample(ts.n, 0, 1, i, "bootstrap", 0, 0), i, epochs=3)
    after = mpjpe(m.predict(test), test.targets)
    assert after < 0.7 * before, (before, after)
    assert m.epoch == 6
    # learning rate decays per epoch and continues across iterations (no reset)
    assert m.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3 * 0.9 ** 5)
    bn = m.model.expand_bn.momentum
    assert 0.001 < bn < 0.1
    pred = m.predict(test)
    assert pred.shape == test.targets.shape and np.all(pred[:, 0] == 0)


def test_resume_from_state_is_bit_identical(windows):
    """A member restored from its checkpoint continues exactly as the uninterrupted one."""
    train, test = windows
    cfg = small_cfg(**{"train.iterations": 2, "train.epochs": 2})
    ts = TrainSet(train, True, LAYOUT)
    straight = Member(1, cfg, LAYOUT)
    for i in (1, 2):
        straight.train_iteration(ts, draw_sample(ts.n, 1, 2, i, "bootstrap", 500, 0), i, 2)
    first = Member(1, cfg, LAYOUT)
    first.train_iteration(ts, draw_sample(ts.n, 1, 2, 1, "bootstrap", 500, 0), 1, 2)
    state = copy.deepcopy(first.state_dict())
    torch.manual_seed(123)  # whatever happened in between
    resumed = Member(1, cfg, LAYOUT)
    resumed.load_state_dict(*state)
    resumed.train_iteration(ts, draw_sample(ts.n, 1, 2, 2, "bootstrap", 500, 0), 2, 2)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(straight.predict(test), resumed.predict(test))


def test_members_differ(windows):
    train, test = windows
    cfg = small_cfg(**{"train.iterations": 1, "train.epochs": 2})
    ts = TrainSet(train, True, LAYOUT)
    preds = []
    for k in range(2):
        m = Member(k, cfg, LAYOUT)
        m.train_iteration(ts, draw_sample(ts.n, k, 2, 1, "bootstrap", 0, 0), 1, 2)
        preds.append(m.predict(test))
    assert np.abs(preds[0] - preds[1]).mean() > 1e-3

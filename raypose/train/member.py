"""One ensemble member: its model, optimiser, sample draws, epochs and predictions. Plain PyTorch.

Everything random is seeded by (run seed, member, iteration, epoch), so a member restarted
from a checkpoint retraces exactly the run it would have had without the interruption.
"""
import math
import warnings

import numpy as np
import torch

from raypose.datasets.skeleton import mirror
from raypose.ensemble.ensemble import model_args
from raypose.model import device as D
from raypose.model.inference import predict_windows
from raypose.model.temporal import TemporalModel
from raypose.train.losses import mpjpe_loss, weighted_mpjpe_loss


def draw_sample(n, member, members, iteration, sampling, subset_size, seed):
    """Indices of the training windows member `member` trains on in `iteration`.

    bootstrap: its own draw with replacement; disjoint: the 2022 method, one shared draw of
    members * subset_size cut into disjoint parts; full: every window once.
    """
    size = subset_size or n
    if sampling == "full":
        return np.arange(n)
    if sampling == "bootstrap":
        return np.random.default_rng([seed, member, iteration]).integers(0, n, size)
    if sampling == "disjoint":
        draw = np.random.default_rng([seed, iteration, 7]).integers(0, n, size * members)
        return draw[member * size:(member + 1) * size]
    raise ValueError(f"unknown sampling {sampling!r}")


STORE_TWINS_BELOW = 64 * 2 ** 20   # bytes of 2D and 3D under which a worker stores the mirrored copy


class TrainSet:
    """Training windows as tensors over the windows' own arrays, with their flipped twins.

    Index i < N is window i; index N + i is its flipped twin, so flip augmentation is just a
    larger index range and a batch is one gather. Below `store_twins_below` bytes the mirrored
    copy is stored beside the data (fastest); above it twins are mirrored as they are drawn (bit
    for bit the same values) and nothing of the data's size is copied on the CPU: the 2D and the
    targets stay the arrays the windows hold, which a Ray worker reads straight from the node's
    object store (one copy per node, shared by its members). Windows
    without 3D (unlabelled chunks) stay out of the pool until `set_pseudo` gives them a target;
    only then are the targets copied (the shared ones are read-only).
    """

    def __init__(self, windows, flip, layout, device="cpu", store_twins_below=STORE_TWINS_BELOW):
        self.n = len(windows.starts)
        self.p3 = layout.skeleton.flip_permutation()
        self.flip_2d = layout.flip_2d()
        self.flip = flip
        self.inputs, self.starts = _tensor(windows.inputs, device), _tensor(windows.starts, device)
        self.targets = _tensor(windows.targets, device)
        # small sets keep a mirrored copy, as before: a plain gather per batch (scripts/bench_flip.py: mirroring
        # each batch cost a 512-channel member 4-7% per step); large ones mirror as they draw
        self.stored = flip and windows.inputs.nbytes + windows.targets.nbytes < store_twins_below
        if self.stored:
            self.inputs = torch.cat([self.inputs, mirror(self.inputs, self.flip_2d)])
            self.targets = torch.cat([self.targets, mirror(self.targets, self.p3)])
            self.starts = torch.cat([self.starts, self.starts + len(windows.inputs)])
            self._own_targets = True
        self.weights = torch.ones(self.n * (2 if flip else 1), device=device)
        self.offsets = torch.arange(windows.receptive_field, device=device)
        self.labelled = np.asarray(windows.labelled, dtype=bool)
        self.pseudo = np.zeros(self.n, dtype=bool)
        self._own_targets = self.stored

    def pool(self):
        """Window indices with a target: labelled, or pseudo-labelled now."""
        return np.flatnonzero(self.labelled | self.pseudo)

    def set_pseudo(self, idx, poses, weights):
        """Replace the pseudo-labels: windows `idx` (unlabelled) get `poses` (k, J, 3)."""
        idx = np.asarray(idx, dtype=np.int64)
        assert not self.labelled[idx].any(), "pseudo-labels are for unlabelled windows only"
        if not self._own_targets:   # the windows' targets are shared and read-only: this set's own copy
            self.targets, self._own_targets = self.targets.clone(), True
        self.pseudo[:] = False
        self.pseudo[idx] = True
        dev = self.targets.device
        t_idx = torch.as_tensor(idx, device=dev)
        poses = torch.as_tensor(np.asarray(poses, np.float32), device=dev)
        w = torch.as_tensor(np.asarray(weights, np.float32), device=dev)
        self.targets[t_idx], self.weights[t_idx] = poses, w
        if self.flip:
            self.weights[t_idx + self.n] = w
            if self.stored:
                self.targets[t_idx + self.n] = mirror(poses, self.p3)

    def pseudo_labels(self):
        """(indices, poses, weights) of the current pseudo-labels."""
        idx = np.flatnonzero(self.pseudo)
        return idx, self.targets[idx].cpu().numpy(), self.weights[idx].cpu().numpy()

    @property
    def device(self):
        return self.starts.device

    def epoch_order(self, sample, rng):
        idx = np.concatenate([sample, sample + self.n]) if self.flip else sample
        return idx[rng.permutation(len(idx))]

    def batch(self, idx):
        """(inputs, targets, weights) of windows `idx`, any shape: (B,) for one member, (M, B)
        for packed ones, which is then one gather for all of them."""
        idx = torch.as_tensor(idx, device=self.device)
        if not self.flip or self.stored:
            return self.inputs[self.starts[idx][..., None] + self.offsets], self.targets[idx], self.weights[idx]
        twin = idx >= self.n
        own = idx - self.n * twin
        x = self.inputs[self.starts[own][..., None] + self.offsets]
        y = self.targets[own]
        x = torch.where(twin[..., None, None, None], mirror(x, self.flip_2d), x)
        y = torch.where(twin[..., None, None], mirror(y, self.p3), y)
        return x, y, self.weights[idx]


def _tensor(array, device):
    """A tensor over `array` without a copy on the CPU (a read-only array from Ray's object store:
    nothing here writes to it; torch would only warn that it could)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(array).to(device)


class Member:
    def __init__(self, index, cfg, layout, device="cpu"):
        self.index, self.cfg, self.device = index, cfg.train, torch.device(device)
        torch.manual_seed(_seed(cfg.train.seed, index))
        self.model_args = model_args(cfg.model, layout)
        self.model = TemporalModel(**self.model_args, momentum=cfg.train.bn_momentum).to(self.device)
        self.optimizer = D.adam(self.model.parameters(), cfg.train.lr, self.device)
        self.precision = cfg.train.precision
        self.layout = layout
        self.total_epochs = max(1, cfg.train.iterations * cfg.train.epochs)
        self.epoch = 0          # epochs done over the whole run; drives lr and BN momentum

    def schedule(self):
        """(learning rate, BN momentum) for the next epoch: both decay with epochs done."""
        c = self.cfg
        decay = math.log(c.bn_momentum / c.bn_momentum_final) if c.bn_momentum_final > 0 else 0.0
        return (c.lr * c.lr_decay ** self.epoch,
                c.bn_momentum * math.exp(-self.epoch / self.total_epochs * decay))

    def set_schedule(self, lr, momentum):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.set_bn_momentum(momentum)

    def epoch_rng(self, iteration):
        return np.random.default_rng([self.cfg.seed, self.index, iteration, self.epoch])

    def step(self, data, idx):
        """One optimiser step on windows `idx` (a tensor on the device) of `data`; the loss, left
        on the device so that the step does not wait for it."""
        x, y, w = data.batch(idx)
        with D.autocast(self.device, self.precision):
            pred = self.model(x, strided=True)[:, 0]
            loss = weighted_mpjpe_loss(pred, y, w) if data.pseudo.any() else mpjpe_loss(pred, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def train_iteration(self, data, sample, iteration, epochs):
        """`epochs` passes over `sample` (indices into `data`, a TrainSet); mean loss of the last."""
        return train_members([self], data, [sample], iteration, epochs)[0]

    @torch.no_grad()
    def predict(self, windows, flip=True, views=False):
        """Root-relative 3D (N, J, 3) for every target of `windows`, whole sequences at once
        (`views`: the input's and the mirrored input's apart, (2, N, J, 3))."""
        return predict_windows(self.model, windows, self.layout, flip, self.device, self.precision, views)

    def state_dict(self):
        """(weights, resume state): the weights describe themselves; resuming needs the rest."""
        return ({"model": self.model.state_dict(), "model_args": self.model_args, "epoch": self.epoch,
                 "index": self.index},
                {"optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state()})

    def load_state_dict(self, weights, resume):
        """From checkpoints loaded anywhere (best on CPU): model and optimiser copy their tensors
        to this member's device; the RNG state must be a CPU ByteTensor, whatever it was loaded as."""
        self.model.load_state_dict(weights["model"])
        self.epoch = weights["epoch"]
        self.optimizer.load_state_dict(resume["optimizer"])
        torch.set_rng_state(resume["torch_rng"].cpu())


def train_members(members, data, samples, iteration, epochs, pack=False):
    """Train members on their own samples for `epochs`; each one's mean loss of the last epoch.

    One at a time (each member's epochs, then the next's), or with `pack` as one stacked model
    (`packed.PackedMembers`), one vmapped step for all. Every member keeps its own draw, epoch
    order and schedule (the members of a worker have done the same epochs, so they share
    learning rate and BN momentum). Packed draws must be equally long (every sampling's are).
    The one point in training that waits for the device: `train_on_device` never does.
    """
    return train_on_device(members, data, samples, iteration, epochs, pack).tolist()


def train_on_device(members, data, samples, iteration, epochs, pack=False):
    """`train_members` up to its losses, (M,) float64 left on the device (so it runs on `meta`)."""
    if not pack or len(members) == 1:
        losses = []
        for m, s in zip(members, samples):
            m.model.train()
            losses.append(_epochs([m], data, [s], iteration, epochs, lambda idx, m=m: m.step(data, idx[0]),
                                  (m.cfg.seed, m.index)))
        return torch.cat(losses)
    from raypose.train.packed import PackedMembers
    if len({len(s) for s in samples}) != 1:
        raise ValueError("packed members need equally long draws")
    packed = PackedMembers([m.model for m in members], members[0].cfg.lr, [m.optimizer for m in members],
                           precision=members[0].precision)

    def step(idx):
        return packed.step(*data.batch(idx))
    losses = _epochs(members, data, samples, iteration, epochs, step,
                     (members[0].cfg.seed, members[0].index, len(members)), packed.set_schedule)
    packed.unpack()
    return losses


def batch_bounds(n, batch_size):
    """[(start, stop)] of the batches of an epoch of n windows: `np.array_split`'s parts (the
    first n % k one longer), so the batches are those of every earlier version of raypose."""
    k = max(1, math.ceil(n / batch_size))
    q, r = divmod(n, k)
    stops = np.cumsum([q + 1] * r + [q] * (k - r)).tolist()
    return list(zip([0] + stops[:-1], stops))


def _epochs(members, data, samples, iteration, epochs, step, seed, set_schedule=None):
    """The epoch loop shared by single and packed members: schedule, orders, batches, steps.

    Nothing here waits for the device: the epoch's orders (drawn on the host) go over in one
    copy, batches are slices of it, `step` returns losses on the device and they add up there.
    Returns the members' mean losses of the last epoch, (M,) on the device.
    """
    batch_size = members[0].cfg.batch_size
    mean = torch.zeros(len(members), dtype=torch.float64, device=data.device)
    for _ in range(epochs):
        (set_schedule or members[0].set_schedule)(*members[0].schedule())
        orders = np.stack([data.epoch_order(s, m.epoch_rng(iteration)) for m, s in zip(members, samples)])
        torch.manual_seed(_seed(*seed, members[0].epoch))
        order = D.to_device(orders, data.device)   # (M, L): the epoch's one host-to-device copy
        total, count = torch.zeros(len(members), dtype=torch.float64, device=data.device), 0
        for lo, hi in batch_bounds(orders.shape[1], batch_size):
            if hi - lo < 2:   # BatchNorm needs two samples; a lone last window waits an epoch
                continue
            total += step(order[:, lo:hi]).double() * (hi - lo)
            count += hi - lo
        mean = total / max(count, 1)
        for m in members:
            m.epoch += 1
    return mean


def _seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])

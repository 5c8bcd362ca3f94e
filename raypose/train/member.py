"""One ensemble member: its model, optimiser, sample draws, epochs and predictions. Plain PyTorch.

Everything random is seeded by (run seed, member, iteration, epoch), so a member restarted
from a checkpoint retraces exactly the run it would have had without the interruption.
"""
import math

import numpy as np
import torch

from ..inference import predict_windows
from ..metrics import mpjpe_loss, weighted_mpjpe_loss
from ..model import TemporalModel
from ..skeleton import LEFT, RIGHT, flip_permutation


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


_SIGN3 = torch.tensor([-1.0, 1.0, 1.0])


class TrainSet:
    """Training windows as contiguous tensors, with their mirrored copies appended.

    Index i < N is window i; index N + i is its flipped twin, so flip augmentation is just a
    larger index range and a batch is one gather. Windows without 3D (unlabelled chunks) stay
    out of the pool until `set_pseudo` gives them a target; their twins get the mirrored one.
    """

    def __init__(self, windows, flip, symmetry_2d=(LEFT, RIGHT), device="cpu"):
        inputs = torch.from_numpy(windows.inputs)
        starts = torch.from_numpy(windows.starts)
        targets = torch.from_numpy(windows.targets)
        self.n = len(starts)
        self.p3 = torch.from_numpy(flip_permutation(targets.shape[1]))
        if flip:
            p2 = torch.from_numpy(flip_permutation(inputs.shape[1], *symmetry_2d))
            sign = torch.tensor([-1.0, 1.0])
            starts = torch.cat([starts, starts + len(inputs)])
            inputs = torch.cat([inputs, inputs[:, p2] * sign])
            targets = torch.cat([targets, targets[:, self.p3] * _SIGN3])
        self.flip = flip
        self.inputs, self.starts, self.targets = inputs.to(device), starts.to(device), targets.to(device)
        self.weights = torch.ones(len(starts), device=device)
        self.offsets = torch.arange(windows.receptive_field, device=device)
        self.labelled = np.asarray(windows.labelled, dtype=bool)
        self.pseudo = np.zeros(self.n, dtype=bool)

    def pool(self):
        """Window indices with a target: labelled, or pseudo-labelled now."""
        return np.flatnonzero(self.labelled | self.pseudo)

    def set_pseudo(self, idx, poses, weights):
        """Replace the pseudo-labels: windows `idx` (unlabelled) get `poses` (k, 15, 3)."""
        idx = np.asarray(idx, dtype=np.int64)
        assert not self.labelled[idx].any(), "pseudo-labels are for unlabelled windows only"
        self.pseudo[:] = False
        self.pseudo[idx] = True
        dev = self.targets.device
        t_idx = torch.as_tensor(idx, device=dev)
        poses = torch.as_tensor(np.asarray(poses, np.float32), device=dev)
        w = torch.as_tensor(np.asarray(weights, np.float32), device=dev)
        self.targets[t_idx], self.weights[t_idx] = poses, w
        if self.flip:
            self.targets[t_idx + self.n] = poses[:, self.p3.to(dev)] * _SIGN3.to(dev)
            self.weights[t_idx + self.n] = w

    def epoch_order(self, sample, rng):
        idx = np.concatenate([sample, sample + self.n]) if self.flip else sample
        return idx[rng.permutation(len(idx))]

    def batch(self, idx):
        idx = torch.as_tensor(idx, device=self.starts.device)
        return self.inputs[self.starts[idx, None] + self.offsets], self.targets[idx], self.weights[idx]


class Member:
    def __init__(self, index, model_cfg, train_cfg, num_joints_in, total_epochs,
                 symmetry_2d=(LEFT, RIGHT), device="cpu"):
        self.index, self.cfg, self.device = index, train_cfg, torch.device(device)
        torch.manual_seed(_seed(train_cfg.seed, index))
        self.model = TemporalModel(num_joints_in, 15, model_cfg.widths, model_cfg.channels,
                                   model_cfg.dropout, train_cfg.bn_momentum).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=train_cfg.lr, amsgrad=True,
                                          fused=True)   # one pass over the weights (bench_train.py: "foreach Adam")
        self.symmetry_2d = symmetry_2d
        self.total_epochs = max(1, total_epochs)
        self.epoch = 0          # epochs done over the whole run; drives lr and BN momentum

    def schedule(self):
        """(learning rate, BN momentum) for the next epoch: both decay with epochs done."""
        c = self.cfg
        decay = math.log(c.bn_momentum / c.bn_momentum_final) if c.bn_momentum_final > 0 else 0.0
        return (c.lr * c.lr_decay ** self.epoch,
                c.bn_momentum * math.exp(-self.epoch / self.total_epochs * decay))

    def _schedule(self):
        lr, momentum = self.schedule()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.set_bn_momentum(momentum)

    def train_iteration(self, data, sample, iteration, epochs):
        """`epochs` passes over `sample` (indices into `data`, a TrainSet); mean loss of the last."""
        self.model.train()
        for _ in range(epochs):
            self._schedule()
            rng = np.random.default_rng([self.cfg.seed, self.index, iteration, self.epoch])
            torch.manual_seed(_seed(self.cfg.seed, self.index, self.epoch))
            order = data.epoch_order(sample, rng)
            total, count = 0.0, 0
            for idx in np.array_split(order, max(1, math.ceil(len(order) / self.cfg.batch_size))):
                if len(idx) < 2:  # BatchNorm needs two samples; a lone last window waits an epoch
                    continue
                x, y, w = data.batch(idx)
                pred = self.model(x, strided=True)[:, 0]
                loss = weighted_mpjpe_loss(pred, y, w) if data.pseudo.any() else mpjpe_loss(pred, y)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                total += loss.item() * len(idx)
                count += len(idx)
            self.epoch += 1
        return total / max(count, 1)

    @torch.no_grad()
    def predict(self, windows, flip=True):
        """Root-relative 3D (N, 15, 3) for every target of `windows`, whole sequences at once."""
        return predict_windows(self.model, windows, flip, self.symmetry_2d, self.device)

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "epoch": self.epoch, "index": self.index,
                "torch_rng": torch.get_rng_state()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch = state["epoch"]
        torch.set_rng_state(state["torch_rng"])


def _seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])

"""Several members in one process with stacked weights: one vmapped step trains all of them.

`torch.func.stack_module_state` stacks the members' parameters and BatchNorm buffers along a
new leading axis and `vmap` runs the model over it, so M small members become one set of
batched GEMMs. That is how many small members share one GPU, where a lone small member leaves
most of the device idle. The members stay independent: each has its own batch, its own
dropout draws and its own BatchNorm statistics, and Adam is elementwise, so one Adam over the
stacked tensors updates each member exactly as its own Adam would.
"""
import copy

import torch
from torch.func import functional_call, stack_module_state, vmap

from raypose.model import device as D
from raypose.train.losses import weighted_mpjpe_loss


class PackedMembers:
    def __init__(self, models, lr, optimizers=None, amsgrad=True, precision="fp32"):
        self.models, self.optimizers, self.precision = models, optimizers, precision
        params, self.buffers = stack_module_state(models)
        self.params = {k: torch.nn.Parameter(v.detach()) for k, v in params.items()}
        self.device = next(iter(self.params.values())).device
        self.base = copy.deepcopy(models[0]).to("meta")
        self.optimizer = D.adam(self.params.values(), lr, self.device, amsgrad)
        if optimizers:   # carry on from where each member's own Adam stopped
            named = [dict(m.named_parameters()) for m in models]
            for name, packed in self.params.items():
                states = [opt.state.get(p[name]) for p, opt in zip(named, optimizers)]
                if all(states):
                    self.optimizer.state[packed] = {key: (v.clone() if v.dim() == 0 else
                                                          torch.stack([s[key] for s in states]))
                                                    for key, v in states[0].items()}

        def one(p, b, x, y, w):
            pred = functional_call(self.base, (p, b), (x,), {"strided": True})[:, 0]
            return weighted_mpjpe_loss(pred, y, w)
        self._losses = vmap(one, randomness="different")

    def set_schedule(self, lr, bn_momentum):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.base.set_bn_momentum(bn_momentum)

    def step(self, x, y, w):
        """x (M, B, rf, J, 2), y (M, B, J3, 3), w (M, B): one optimiser step for every member."""
        self.base.train()
        with D.autocast(self.device, self.precision):
            losses = self._losses(self.params, self.buffers, x, y, w)
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()   # members share no parameter, so each gets its own gradient
        self.optimizer.step()
        return losses.detach()

    def unpack(self):
        """Weights, BatchNorm statistics and Adam state back into each member's own objects."""
        lr = self.optimizer.param_groups[0]["lr"]
        with torch.no_grad():
            for k, m in enumerate(self.models):
                for name, t in m.named_parameters():
                    t.copy_(self.params[name][k])
                    if self.optimizers and self.params[name] in self.optimizer.state:
                        state = self.optimizer.state[self.params[name]]
                        self.optimizers[k].state[t] = {key: (v.clone() if v.dim() == 0 else v[k].clone())
                                                       for key, v in state.items()}
                for name, t in m.named_buffers():
                    t.copy_(self.buffers[name][k])
                if self.optimizers:
                    for group in self.optimizers[k].param_groups:
                        group["lr"] = lr
        return self.models


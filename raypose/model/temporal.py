"""VideoPose3D's temporal convolutional model (Pavllo et al., CVPR 2019).

One module holds the weights; two forward passes use them:

* the dilated form runs over a whole sequence and yields one 3D pose per frame that has a full
  receptive field around it; it is what evaluation and inference use;
* the strided form (VideoPose3D's ``TemporalModelOptimized1f``) sees exactly one receptive field
  and yields one frame. It replaces dilation by stride, so it computes only what that one output
  needs, which makes training on random single-frame windows much cheaper.

Parameter names follow VideoPose3D's ``common/model.py`` (``expand_conv``, ``layers_conv``, ...),
so its published checkpoints load with ``load_state_dict``.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class Dropout(nn.Module):
    """Dropout whose CPU mask comes from 64-bit random integers cut into 16-bit lanes.

    PyTorch's CPU dropout draws one Bernoulli sample per element, a large share of a small
    member's training step; four 16-bit lanes per 64-bit draw are much cheaper
    (scripts/bench_train.py measures the whole step with either). The keep probability is
    rounded to 1/65536. Other devices use PyTorch's own dropout.
    """

    def __init__(self, p):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        dropped = round(self.p * 65536)
        if dropped >= 65536:
            return x * 0
        n = x.numel()
        bits = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64)
        keep = bits.view(torch.int16)[:n].view(x.shape) >= dropped - 32768
        return x * keep.to(x.dtype).mul_(65536 / (65536 - dropped))   # one multiply each way

    def extra_repr(self):
        return f"p={self.p}"


class TemporalModel(nn.Module):
    """Lifts 2D keypoint sequences (B, T, J_in, 2) to 3D poses (B, T', J_out, 3); J_out is the
    run's skeleton's (`ensemble.model_args`), the input's joint count where none is given."""

    def __init__(self, num_joints_in, num_joints_out=None, widths=(3, 3, 3), channels=1024,
                 dropout=0.25, momentum=0.1):
        super().__init__()
        num_joints_out = num_joints_in if num_joints_out is None else num_joints_out
        widths = tuple(int(w) for w in widths)
        if not widths or any(w < 1 or w % 2 == 0 for w in widths):
            # Even widths have no centre frame: the residual slice and the output frame would be
            # off by half a frame.
            raise ValueError(f"widths must be a non-empty sequence of odd integers >= 1, got {widths}")
        self.num_joints_in = num_joints_in
        self.num_joints_out = num_joints_out
        self.widths = widths
        self.channels = channels

        self.expand_conv = nn.Conv1d(num_joints_in * 2, channels, widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=momentum)
        # Alternating (width w_i, dilation d_i) conv and 1x1 conv per block; the dilation is the
        # dilated form's and is ignored by the strided form, which passes stride=w_i instead.
        conv, bn = [], []
        self.dilations = []
        dilation = widths[0]
        for w in widths[1:]:
            self.dilations.append(dilation)
            conv += [nn.Conv1d(channels, channels, w, dilation=dilation, bias=False),
                     nn.Conv1d(channels, channels, 1, bias=False)]
            bn += [nn.BatchNorm1d(channels, momentum=momentum),
                   nn.BatchNorm1d(channels, momentum=momentum)]
            dilation *= w
        self.layers_conv = nn.ModuleList(conv)
        self.layers_bn = nn.ModuleList(bn)
        self.drop = Dropout(dropout)
        self.strided_gemm = True   # strided form as GEMMs (False: Conv1d kernels; for benchmarks)
        self.relu = nn.ReLU(inplace=True)
        self.shrink = nn.Conv1d(channels, num_joints_out * 3, 1)

    def receptive_field(self):
        """Input frames that feed one output frame."""
        return math.prod(self.widths)

    def set_bn_momentum(self, momentum):
        """VideoPose3D decays BN momentum over training."""
        self.expand_bn.momentum = momentum
        for bn in self.layers_bn:
            bn.momentum = momentum

    def forward(self, x, strided=False):
        """x (B, T, J_in, 2) -> (B, T - receptive_field + 1, J_out, 3).

        ``strided=True`` requires T == receptive_field and returns (B, 1, J_out, 3).
        """
        if x.dim() != 4 or x.shape[-2:] != (self.num_joints_in, 2):
            raise ValueError(f"expected (B, T, {self.num_joints_in}, 2), got {tuple(x.shape)}")
        rf = self.receptive_field()
        if strided and x.shape[1] != rf:
            raise ValueError(f"strided form takes exactly {rf} frames, got {x.shape[1]}")
        if x.shape[1] < rf:
            raise ValueError(f"need at least {rf} frames, got {x.shape[1]}")
        b, t = x.shape[:2]
        if strided and self.strided_gemm:
            return self._strided_rows(x.reshape(b, t, -1)).reshape(b, 1, self.num_joints_out, 3)
        x = x.reshape(b, t, -1).permute(0, 2, 1)  # (B, J_in*2, T): Conv1d runs along time

        stride = self.widths[0] if strided else 1
        x = self._block(self.expand_conv, self.expand_bn, x, stride=stride)
        for i, w in enumerate(self.widths[1:]):
            if strided:
                res = x[:, :, w // 2::w]
                x = self._block(self.layers_conv[2 * i], self.layers_bn[2 * i], x, stride=w)
            else:
                pad = (w - 1) * self.dilations[i] // 2
                res = x[:, :, pad:x.shape[2] - pad]
                x = self._block(self.layers_conv[2 * i], self.layers_bn[2 * i], x,
                                dilation=self.dilations[i])
            x = res + self._block(self.layers_conv[2 * i + 1], self.layers_bn[2 * i + 1], x)

        x = self.shrink(x)
        return x.permute(0, 2, 1).reshape(b, -1, self.num_joints_out, 3)

    def _strided_rows(self, x):
        """The strided form as plain GEMMs on (B, positions, channels) rows.

        With stride == width the windows of a layer do not overlap, so each layer is a reshape
        (w neighbouring positions side by side) and one matrix product with the conv weight
        viewed as (C_out, C_in * w). Forward and backward are then large GEMMs, which run closer
        to the machine's peak than Conv1d's kernels at these shapes.
        """
        b = x.shape[0]

        def layer(conv, bn, x, w):
            pos, c_in = x.shape[1] // w, x.shape[2]
            # rows laid out (channel, tap) like the conv weight, so the weight is a view: the
            # activations are far smaller than a 1024 x 3072 weight and its gradient to copy
            rows = x.reshape(b * pos, w, c_in).transpose(1, 2).reshape(b * pos, c_in * w)
            y = F.linear(rows, conv.weight.reshape(conv.weight.shape[0], c_in * w))
            y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                             self.training or not bn.track_running_stats,
                             bn.momentum if bn.momentum is not None else 0.0, bn.eps)
            if self.training and bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
            return self.drop(self.relu(y)).reshape(b, pos, -1)

        x = layer(self.expand_conv, self.expand_bn, x, self.widths[0])
        for i, w in enumerate(self.widths[1:]):
            res = x[:, w // 2::w]
            x = layer(self.layers_conv[2 * i], self.layers_bn[2 * i], x, w)
            x = res + layer(self.layers_conv[2 * i + 1], self.layers_bn[2 * i + 1], x, 1)
        return F.linear(x, self.shrink.weight[:, :, 0], self.shrink.bias)

    def forward_strided(self, x):
        """Training form: one receptive field in, its centre frame out."""
        return self.forward(x, strided=True)

    def _block(self, conv, bn, x, stride=1, dilation=1):
        # Same weight tensor for both forms; only stride/dilation differ.
        x = F.conv1d(x, conv.weight, None, stride=stride, dilation=dilation)
        return self.drop(self.relu(bn(x)))

    def flops_per_frame(self, strided=True):
        """Forward FLOPs (2 x multiply-adds of the convolutions) per output frame.

        The dilated form evaluates every layer at every frame; the strided form evaluates layer i
        only at the positions its single output needs (receptive field / product of widths[:i+1]).
        BatchNorm, ReLU and the residual add are negligible and not counted.
        """
        c, w0 = self.channels, self.widths[0]
        rf = self.receptive_field()
        positions = rf // w0 if strided else 1
        macs = positions * self.num_joints_in * 2 * c * w0
        for w in self.widths[1:]:
            if strided:
                positions //= w
            macs += positions * (c * c * w + c * c)
        macs += c * self.num_joints_out * 3  # shrink (bias add not counted)
        return 2 * macs


"""Benchmark: training throughput of one member against the machine's fp32 matmul peak.

    python scripts/bench_train.py [--seconds 20] [--json benchmarks/train.json]

Measures, in one run on this machine: the fp32 GEMM peak (torch.mm on 2048x2048, all threads),
then samples/s of `Member.train_iteration` (strided form, flip on, batch 128) for the HumanEva
recipe (1024 channels, widths 3,3,3), 256 channels and the demo size. Model FLOPs per sample
come from the layer shapes (x3 for forward + backward); MFU = achieved / peak.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch
from benchlib import header, write

from raypose import config as C
from raypose.data.npz import PoseData
from raypose.data.synthetic import generate
from raypose.data.table import data_sequences
from raypose.data.windows import make_windows
from raypose.layout import Layout
from raypose.model import TemporalModel
from raypose.skeleton import LEFT, RIGHT
from raypose.train.losses import mpjpe_loss
from raypose.train.member import Member, TrainSet

LAYOUT = Layout.of(15, (LEFT, RIGHT))


def matmul_peak(seconds=3.0, n=2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def throughput(windows, channels, seconds, batch=128, gemm=True, torch_dropout=False, fused=True):
    """samples/s of Member.train_iteration; the flags undo one lever each, for the ablation."""
    cfg = C.with_values(C.Config(), {"model.channels": channels, "train.batch_size": batch,
                                     "train.iterations": 10, "train.epochs": 10})   # 100 epochs in all
    member = Member(0, cfg, LAYOUT)
    member.model.strided_gemm = gemm
    if torch_dropout:
        member.model.drop = torch.nn.Dropout(cfg.model.dropout)
    if not fused:
        member.optimizer = torch.optim.Adam(member.model.parameters(), lr=cfg.train.lr, amsgrad=True)
    data = TrainSet(windows, True, LAYOUT)
    chunk = np.arange(min(data.n, 40 * batch // 2))           # 40 batches per call (flip doubles)
    member.train_iteration(data, chunk[: 4 * batch], 1, 1)     # warm-up
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        member.train_iteration(data, chunk, 1, 1)
        done += 2 * len(chunk)
    rate = done / (time.perf_counter() - t0)
    flops = 3 * member.model.flops_per_frame(strided=True)
    return rate, flops


def compile_ratio(channels, seconds, batch=128):
    """torch.compile against eager on the same bare training step (model, loss, Adam).

    A bare step rather than Member.train_iteration: the per-epoch BN-momentum change would make
    a compiled model recompile every epoch, which is a cost of its own, not of the step.
    """
    torch.manual_seed(0)
    model = TemporalModel(15, 15, (3, 3, 3), channels, 0.1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    compiled = torch.compile(model)
    x, y = torch.randn(batch, 27, 15, 2), torch.randn(batch, 1, 15, 3)

    def step(m):
        loss = mpjpe_loss(m(x, strided=True), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    step(compiled)
    compile_s = time.perf_counter() - t0
    rates = {}
    for name, m in (("eager", model), ("compiled", compiled)):
        for _ in range(3):
            step(m)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step(m)
            n += 1
        rates[name] = n * batch / (time.perf_counter() - t0)
    return rates["compiled"] / rates["eager"], compile_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement time per model")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", default="benchmarks/train.json")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile comparison")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = PoseData(*generate(frames=3000, seed=0))
    windows = make_windows(data_sequences(d))
    peak = matmul_peak()
    res = {**header(args.threads), "peak_gflops": peak, "models": {}}
    for name, ch in (("humaneva_1024", 1024), ("c256", 256), ("demo_128", 128)):
        rate, flops = throughput(windows, ch, args.seconds)
        conv, _ = throughput(windows, ch, args.seconds / 2, gemm=False)   # the Conv1d kernels, same run
        mfu = rate * flops / (peak * 1e9)
        compiled, compile_s = compile_ratio(ch, args.seconds / 3) if args.compile else (None, None)
        torch_dropout, _ = throughput(windows, ch, args.seconds / 2, torch_dropout=True)
        unfused, _ = throughput(windows, ch, args.seconds / 2, fused=False)
        res["models"][name] = {"channels": ch, "samples_per_s": rate, "gflop_per_sample": flops / 1e9,
                               "mfu": mfu, "conv1d_samples_per_s": conv, "gemm_speedup": rate / conv,
                               "compiled_vs_eager": compiled, "compile_s": compile_s,
                               "torch_dropout_samples_per_s": torch_dropout, "unfused_adam_samples_per_s": unfused}
        print(f"{name}: {rate:,.0f} samples/s ({rate / conv:.2f}x Conv1d), {flops / 1e6:.1f} MFLOP/sample, "
              f"MFU {100 * mfu:.0f}% of {peak:.0f} GFLOP/s"
              + (f", torch.compile {compiled:.2f}x eager" if compiled else ""), flush=True)
    top = res["models"]["humaneva_1024"]
    res.update(samples_per_s=top["samples_per_s"], mfu=top["mfu"])
    print(f"member @1024: {top['samples_per_s']:,.0f} samples/s, MFU {100 * top['mfu']:.0f}% "
          f"(peak {peak:.0f} GFLOP/s)")
    write(args.json, res)


if __name__ == "__main__":
    main()

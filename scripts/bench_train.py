"""Benchmark: training throughput of one member against the machine's matmul peak.

    python scripts/bench_train.py [--seconds 20] [--json benchmarks/train.json]
    python scripts/bench_train.py --device cuda [--precision bf16] --channels 128 512 1024

Measures, in one run on this machine: the GEMM peak (torch.mm; on CPU 2048x2048 fp32 with all
threads), then samples/s of `Member.train_iteration` (strided form, flip on, batch 128) for the
HumanEva recipe (1024 channels, widths 3,3,3), 256 channels and the demo size (or --channels).
Model FLOPs per sample come from the layer shapes (x3 for forward + backward); MFU = achieved /
peak, where the peak is the measured fp32 GEMM rate on CPU and the device's published dense
peak for --precision on GPUs (KNOWN_PEAKS; an unknown GPU gets no MFU, null in the JSON).
"""
import argparse
import os
import re
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
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import LEFT, RIGHT
from raypose.model import device as D
from raypose.model.temporal import TemporalModel
from raypose.train.losses import mpjpe_loss
from raypose.train.member import Member, TrainSet

LAYOUT = Layout.of(15, (LEFT, RIGHT))
NAMES = {1024: "humaneva_1024", 256: "c256", 128: "demo_128"}   # the names docs/ tables read

# Published dense (no sparsity) peaks in TFLOP/s by precision; H200 computes as H100 SXM.
H100_SXM = {"bf16": 989.0, "tf32": 494.0, "fp32": 67.0}
KNOWN_PEAKS = ((r"H200(?!.*NVL)", H100_SXM), (r"H100 (80GB HBM3|SXM)", H100_SXM),
               (r"A100", {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5}),
               (r"A10G", {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2}))


def dense_peak_gflops(name, precision):
    """The published dense peak of GPU `name` at `precision`, GFLOP/s; None for one not listed."""
    for pattern, peaks in KNOWN_PEAKS:
        if re.search(pattern, name):
            return 1000 * peaks[precision]
    return None


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device, precision="fp32", seconds=3.0):
    """Measured GEMM GFLOP/s: fp32 2048x2048 on CPU; 8192x8192 in --precision's type on GPUs."""
    n = 2048 if device.type == "cpu" else 8192
    dtype = torch.bfloat16 if device.type == "cuda" and precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        reps += 1
        if reps % 16 == 0:
            _sync(device)
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def throughput(windows, channels, seconds, device, precision="fp32", batch=128, gemm=True,
               torch_dropout=False, fused=True):
    """samples/s of Member.train_iteration; the flags undo one lever each, for the ablation."""
    cfg = C.with_values(C.Config(), {"model.channels": channels, "train.batch_size": batch,
                                     "train.iterations": 10, "train.epochs": 10,   # 100 epochs in all
                                     "train.precision": precision})
    member = Member(0, cfg, LAYOUT, device)
    member.model.strided_gemm = gemm
    if torch_dropout:
        member.model.drop = torch.nn.Dropout(cfg.model.dropout)
    if not fused:
        member.optimizer = torch.optim.Adam(member.model.parameters(), lr=cfg.train.lr, amsgrad=True)
    data = TrainSet(windows, True, LAYOUT, device)
    chunk = np.arange(min(data.n, 40 * batch // 2))           # 40 batches per call (flip doubles)
    member.train_iteration(data, chunk[: 4 * batch], 1, 1)     # warm-up
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        member.train_iteration(data, chunk, 1, 1)
        done += 2 * len(chunk)
    rate = done / (time.perf_counter() - t0)
    flops = 3 * member.model.flops_per_frame(strided=True)
    return rate, flops


def compile_ratio(channels, seconds, device, precision="fp32", batch=128):
    """torch.compile against eager on the same bare training step (model, loss, Adam).

    A bare step rather than Member.train_iteration: the per-epoch BN-momentum change would make
    a compiled model recompile every epoch, which is a cost of its own, not of the step.
    """
    torch.manual_seed(0)
    model = TemporalModel(15, 15, (3, 3, 3), channels, 0.1).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)
    compiled = torch.compile(model)
    x, y = torch.randn(batch, 27, 15, 2, device=device), torch.randn(batch, 1, 15, 3, device=device)

    def step(m):
        with D.autocast(device, precision):
            loss = mpjpe_loss(m(x, strided=True), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    t0 = time.perf_counter()
    step(compiled)
    _sync(device)
    compile_s = time.perf_counter() - t0
    rates = {}
    for name, m in (("eager", model), ("compiled", compiled)):
        for _ in range(3):
            step(m)
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            step(m)
            n += 1
        _sync(device)
        rates[name] = n * batch / (time.perf_counter() - t0)
    return rates["compiled"] / rates["eager"], compile_s


def _args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement time per model")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--precision", default="fp32", choices=D.PRECISIONS, help="GPU arithmetic (CPU: fp32)")
    ap.add_argument("--channels", type=int, nargs="+", default=[1024, 256, 128], help="member widths")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--json", help="default: benchmarks/train.json on CPU, benchmarks/train_cuda.json on GPUs")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile comparison")
    args = ap.parse_args()
    args.device = D.check_device("--device", args.device)
    args.json = args.json or ("benchmarks/train.json" if args.device.type == "cpu" else "benchmarks/train_cuda.json")
    return args


def peak(args):
    """(peak GFLOP/s MFU is held against or None, the header fields that say where it comes from)."""
    measured = matmul_peak(args.device, args.precision)
    if args.device.type == "cpu":
        return measured, {"peak_gflops": measured}
    known = dense_peak_gflops(D.describe(args.device), args.precision)
    return known, {"peak_gflops": known, "peak_source": "published dense peak" if known else "unknown device",
                   "measured_matmul_gflops": measured}


def bench_model(windows, ch, args, peak_gflops):
    """One member width: its rate and MFU, and each lever undone in turn."""
    dev, prec, secs = args.device, args.precision, args.seconds
    rate, flops = throughput(windows, ch, secs, dev, prec, args.batch)
    conv, _ = throughput(windows, ch, secs / 2, dev, prec, args.batch, gemm=False)   # Conv1d kernels
    mfu = rate * flops / (peak_gflops * 1e9) if peak_gflops else None
    compiled, compile_s = compile_ratio(ch, secs / 3, dev, prec, args.batch) if args.compile else (None, None)
    torch_dropout = (throughput(windows, ch, secs / 2, dev, prec, args.batch, torch_dropout=True)[0]
                     if dev.type == "cpu" else None)   # GPUs use PyTorch's dropout already
    unfused, _ = throughput(windows, ch, secs / 2, dev, prec, args.batch, fused=False)
    return {"channels": ch, "samples_per_s": rate, "gflop_per_sample": flops / 1e9,
            "mfu": mfu, "conv1d_samples_per_s": conv, "gemm_speedup": rate / conv,
            "compiled_vs_eager": compiled, "compile_s": compile_s,
            "torch_dropout_samples_per_s": torch_dropout, "unfused_adam_samples_per_s": unfused}


def _pct(mfu):
    return f"{100 * mfu:.0f}%" if mfu is not None else "n/a"


def main():
    args = _args()
    torch.set_num_threads(args.threads)
    D.set_precision(args.device, args.precision)
    d = PoseData(*generate(frames=3000, seed=0))
    windows = make_windows(data_sequences(d))
    peak_gflops, peak_info = peak(args)
    precision = args.precision if args.device.type == "cuda" else "fp32"
    res = {**header(args.threads), "device": D.describe(args.device), "precision": precision,
           **peak_info, "models": {}}
    for ch in args.channels:
        name = NAMES.get(ch, f"c{ch}")
        m = res["models"][name] = bench_model(windows, ch, args, peak_gflops)
        print(f"{name}: {m['samples_per_s']:,.0f} samples/s ({m['gemm_speedup']:.2f}x Conv1d), "
              f"{m['gflop_per_sample'] * 1e3:.1f} MFLOP/sample, MFU {_pct(m['mfu'])} of "
              f"{peak_gflops or 0:,.0f} GFLOP/s" + (f", torch.compile {m['compiled_vs_eager']:.2f}x eager"
                                                    if m["compiled_vs_eager"] else ""), flush=True)
    top = res["models"].get("humaneva_1024") or res["models"][NAMES.get(max(args.channels), f"c{max(args.channels)}")]
    res.update(samples_per_s=top["samples_per_s"], mfu=top["mfu"])
    print(f"member @{top['channels']} on {res['device']} ({precision}): {top['samples_per_s']:,.0f} samples/s, "
          f"MFU {_pct(top['mfu'])} (peak {peak_gflops or 0:,.0f} GFLOP/s)")
    write(args.json, res)


if __name__ == "__main__":
    main()

"""Benchmark: M members packed into one process (stacked weights + vmap) against separate workers.

    python scripts/bench_pack.py [--seconds 10] [--json benchmarks/pack.json]

On the same CPUs, member-samples/s for M members trained
  separate:   M processes at once, CPUs / M threads each (what M Ray workers do),
  sequential: one process with every thread, the members one after another,
  packed:     one process with every thread, one vmapped step for all M (raypose/train/packed.py),
for the demo member (128 channels) and 256 channels, batch 128, strided form, flip on.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch
from benchlib import header, write

from raypose.data.npz import PoseData
from raypose.data.synthetic import generate
from raypose.data.table import data_sequences
from raypose.data.windows import make_windows
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import LEFT, RIGHT
from raypose.model.temporal import TemporalModel
from raypose.train.losses import weighted_mpjpe_loss
from raypose.train.member import TrainSet
from raypose.train.packed import PackedMembers

BATCH = 128


def batches(data, members, rng):
    """An endless stream of one batch per member, each its own draw."""
    while True:
        idx = [rng.integers(0, 2 * data.n, BATCH) for _ in range(members)]
        yield [data.batch(i) for i in idx]


def rate(mode, members, channels, seconds, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    windows = make_windows(data_sequences(PoseData(*generate(frames=3000, seed=0))))
    data = TrainSet(windows, True, Layout.of(15, (LEFT, RIGHT)))
    models = [TemporalModel(15, 15, (3, 3, 3), channels, 0.1) for _ in range(members)]
    stream = batches(data, members, np.random.default_rng(0))
    if mode == "packed":
        packed = PackedMembers(models, lr=1e-3)

        def step():
            b = next(stream)
            packed.step(*(torch.stack(t) for t in zip(*b)))
    else:
        opts = [torch.optim.Adam(m.parameters(), lr=1e-3, amsgrad=True, fused=True) for m in models]   # as Member

        def step():
            for m, opt, (x, y, w) in zip(models, opts, next(stream)):
                loss = weighted_mpjpe_loss(m(x, strided=True)[:, 0], y, w)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    for _ in range(3):
        step()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        steps += 1
    return steps * members * BATCH / (time.perf_counter() - t0)


def separate(members, channels, seconds, cpus):
    """M processes at once, one member each: what M Ray workers on these CPUs do."""
    threads = max(1, cpus // members)
    cmd = [sys.executable, __file__, "--child", f"sequential,1,{channels},{seconds},{threads}"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(members)]
    return sum(json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--json", default="benchmarks/pack.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, m, ch, s, th = args.child.split(",")
        print(json.dumps(rate(mode, int(m), int(ch), float(s), int(th))))
        return
    cpus = os.cpu_count()
    res = {**header(cpus), "cpus": cpus, "batch": BATCH, "cases": []}
    for channels in (128, 256):
        for members in (2, 4):
            case = {"channels": channels, "members": members,
                    "separate": separate(members, channels, args.seconds, cpus),
                    "sequential": rate("sequential", members, channels, args.seconds, cpus),
                    "packed": rate("packed", members, channels, args.seconds, cpus)}
            case["packed_vs_separate"] = case["packed"] / case["separate"]
            case["packed_vs_sequential"] = case["packed"] / case["sequential"]
            res["cases"].append(case)
            print(f"{members} x {channels} ch: member-samples/s separate {case['separate']:,.0f}, "
                  f"sequential {case['sequential']:,.0f}, packed {case['packed']:,.0f} "
                  f"({case['packed_vs_separate']:.2f}x separate)", flush=True)
    write(args.json, res)


if __name__ == "__main__":
    main()

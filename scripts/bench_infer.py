"""Benchmark: ensemble prediction throughput over whole sequences (dilated form) against the FLOP limit.

    python scripts/bench_infer.py [--members 5] [--channels 1024] [--json benchmarks/infer.json]

Frames/s of `Ensemble.predict` (every member over every sequence of the synthetic set,
test-time flip averaging on, as `raypose predict` runs it), next to the fp32 matmul peak measured
in the same run; FLOPs per frame from the layer shapes (x2 with flip).
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


from bench_train import matmul_peak
from benchlib import header, write

from raypose import config as C
from raypose.data.npz import PoseData
from raypose.data.synthetic import generate
from raypose.data.table import data_sequences
from raypose.data.windows import make_windows
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import LEFT, RIGHT
from raypose.ensemble.ensemble import Ensemble, model_args
from raypose.model.temporal import TemporalModel


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--json", default="benchmarks/infer.json")
    args = ap.parse_args()
    cfg = C.with_values(C.Config(), {"model.channels": args.channels})
    windows = make_windows(data_sequences(PoseData(*generate(frames=args.frames, seed=0))))
    layout = Layout.of(15, (LEFT, RIGHT))
    models = [TemporalModel(**model_args(cfg.model, layout)).eval() for _ in range(args.members)]
    peak = matmul_peak()
    Ensemble(models[:1], layout).predict(windows, True)                   # warm-up
    t0 = time.perf_counter()
    Ensemble(models, layout).predict(windows, True)
    seconds = time.perf_counter() - t0
    frames = len(windows) * args.members
    flops = 2 * models[0].flops_per_frame(strided=False)                  # x2: flip TTA
    rate = frames / seconds
    res = {**header(), "members": args.members, "channels": args.channels, "frames": len(windows),
           "sequences": len(windows.keys), "member_frames_per_s": rate,
           "ensemble_frames_per_s": rate / args.members, "peak_gflops": peak,
           "gflop_per_member_frame": flops / 1e9, "flop_utilisation": rate * flops / (peak * 1e9)}
    print(f"{args.members} x {args.channels} ch: {rate / args.members:,.0f} ensemble frames/s "
          f"({rate:,.0f} member-frames/s), {100 * res['flop_utilisation']:.0f}% of {peak:.0f} GFLOP/s")
    write(args.json, res)


if __name__ == "__main__":
    main()

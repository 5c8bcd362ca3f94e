"""Flip twins mirrored per batch (issue 26: no mirrored copy of a big set in any worker) against a
stored mirrored copy (what small sets keep, `member.STORE_TWINS_BELOW`): seconds per training step
of one member on HumanEva-like windows, the two alternated in one process (best of `--repeats`).
The numbers are the same bit for bit (tests/test_member.py).

    python scripts/bench_flip.py [--channels 512] [--steps 40] [--repeats 5]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import header, write  # noqa: E402

from raypose import config as C  # noqa: E402
from raypose.data import splits  # noqa: E402
from raypose.data.source import open_source, source_layout  # noqa: E402
from raypose.train.member import Member, TrainSet  # noqa: E402
from raypose.train.windowset import from_source  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=512)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default="benchmarks/flip.json")
    a = ap.parse_args()
    cfg = C.finalize(C.with_values(C.Config(), {"model.channels": a.channels, "data.synthetic_frames": 6000}))
    src = open_source(cfg.data)
    keys, _ = splits.select(src.chunks, cfg.data.split, None, source=src.description, dataset=src.dataset)
    layout = source_layout(src)
    ws = from_source(cfg, layout, src, (keys, [], keys[:1]))
    sets = {"mirrored per batch": TrainSet(ws.train, True, layout, store_twins_below=0),
            "stored copy": TrainSet(ws.train, True, layout, store_twins_below=2 ** 62)}
    idx = np.random.default_rng(0).integers(0, 2 * sets["stored copy"].n, (a.steps, cfg.train.batch_size))
    best = {}
    for _ in range(a.repeats):
        for name, ts in sets.items():
            m = Member(0, cfg, layout)
            t0 = time.time()
            for b in idx:
                m.step(ts, torch.as_tensor(b))
            best[name] = min(best.get(name, 1e9), (time.time() - t0) / a.steps)
    ratio = best["mirrored per batch"] / best["stored copy"]
    print(f"s/step: {best}; mirrored per batch / stored copy = {ratio:.3f}")
    write(a.json, {**header(torch.get_num_threads()), "channels": a.channels, "batch_size": cfg.train.batch_size,
                   "s_per_step": best, "ratio": round(ratio, 3)})


if __name__ == "__main__":
    main()

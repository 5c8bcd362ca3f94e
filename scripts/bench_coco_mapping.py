"""Benchmark: what a detector's COCO-17 keypoints cost a run trained on HumanEva's 15 joints,
through the documented mapping (raypose.datasets.keypoints.coco_to_humaneva).

    python scripts/bench_coco_mapping.py [--out bench_out/coco_mapping] [--reuse] [--json benchmarks/coco_mapping.json]

Trains one small local ensemble (2 members x 128 channels, in this process) on the synthetic
people's native 15-joint 2D, then scores its P-MPJPE (protocol: actions, then subjects;
Validate/*, Walk/Jog/Box) twice: from the native 15-joint 2D, and from the same people's COCO-17
2D (`synthetic.generate(layout="coco")`: exact projections, face points placed on the head)
mapped onto 15 joints. Both go through the same normalisation, windows, members, flip averaging
and aggregate; only the pelvis, thorax and head inputs differ. To say where the cost comes from,
it also scores the mapped 2D with each derived joint put back from the native 2D, and gives each
derived joint's mean 2D offset from the native one in pixels.
"""
import argparse
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import header, write  # noqa: E402

from raypose import config as C  # noqa: E402
from raypose.data import splits, synthetic  # noqa: E402
from raypose.data.table import camera_pose  # noqa: E402
from raypose.data.windows import make_windows  # noqa: E402
from raypose.datasets.cameras import CAMERA_NAMES, normalize_screen  # noqa: E402
from raypose.datasets.keypoints import HEAD, PELVIS, THORAX, mapping  # noqa: E402
from raypose.ensemble.ensemble import Ensemble  # noqa: E402
from raypose.evaluation.evaluate import protocol  # noqa: E402
from raypose.run import Run  # noqa: E402
from raypose.train.driver import train  # noqa: E402

DERIVED = {"pelvis": PELVIS, "thorax": THORAX, "head": HEAD}


def config(args):
    return C.finalize(C.with_values(C.Config(), {
        "data.path": "synthetic", "data.synthetic_frames": args.frames, "data.synthetic_seed": args.seed,
        "data.actions": "Walk,Jog,Box", "model.channels": args.channels, "model.dropout": 0.1,
        "train.members": args.members, "train.iterations": args.iterations, "train.epochs": args.epochs,
        "train.lr": 2e-3, "train.lr_decay": 0.95, "run.local": True, "run.out": args.out}))


def windows(tracks, pos3d, keys, receptive_field):
    """Windows over {(subject, action): [per-camera 15-joint pixels]}: the training path's
    normalisation (pixels -> [-1, 1]) and root-relative camera-frame targets."""
    seqs = [((s, a, CAMERA_NAMES[c]), normalize_screen(kp), camera_pose(pos3d[s][a], s, c))
            for s, a in keys for c, kp in enumerate(tracks[(s, a)])]
    return make_windows(seqs, receptive_field)


def p_mpjpe(ensemble, w):
    return protocol(w, ensemble.aggregate(ensemble.predict(w)))[1]["p_mpjpe"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out/coco_mapping", help="the run's directory (replaced)")
    ap.add_argument("--reuse", action="store_true", help="score the run in --out if it is there")
    ap.add_argument("--json", default="benchmarks/coco_mapping.json")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--channels", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=8)
    args = ap.parse_args()
    cfg = config(args)
    t0 = time.time()
    if not (args.reuse and os.path.isdir(args.out) and Run.open(args.out).iterations()):
        shutil.rmtree(args.out, ignore_errors=True)
        train(cfg, echo=lambda s: None)
    wall = time.time() - t0
    run = Run.open(args.out)
    ensemble = Ensemble.load(run)
    pos2d, pos3d, _ = synthetic.generate(args.frames, args.seed)
    coco2d, _, coco_meta = synthetic.generate(args.frames, args.seed, layout="coco")
    keys = [(s, a) for s in pos2d for a in pos2d[s]]
    _, test = splits.select(keys, cfg.data.split, cfg.data.actions)
    to_run = mapping(coco_meta["layout_name"], coco_meta["num_joints"], run.layout.joints_2d)
    native = {k: pos2d[k[0]][k[1]] for k in test}
    mapped = {k: [to_run(kp)[0] for kp in coco2d[k[0]][k[1]]] for k in test}
    rf = int(np.prod(cfg.model.widths))
    native_mm = p_mpjpe(ensemble, windows(native, pos3d, test, rf))
    mapped_mm = p_mpjpe(ensemble, windows(mapped, pos3d, test, rf))
    offsets, put_back = {}, {}
    for name, j in DERIVED.items():
        d = np.concatenate([np.linalg.norm(m[:, j] - n[:, j], axis=-1)
                            for k in test for m, n in zip(mapped[k], native[k])])
        offsets[name] = float(d.mean())
        fixed = {k: [np.concatenate([m[:, :j], n[:, j:j + 1], m[:, j + 1:]], 1) for m, n in zip(mapped[k], native[k])]
                 for k in test}
        put_back[name] = p_mpjpe(ensemble, windows(fixed, pos3d, test, rf))
    res = {**header(), "data": f"synthetic ({args.frames} frames, seed {args.seed}), Validate/*, Walk/Jog/Box",
           "config_hash": run.config.hash(), "members": cfg.train.members, "channels": cfg.model.channels,
           "iteration": ensemble.iteration, "train_wall_s": wall,
           "eval_frames": sum(len(kp) for cams in native.values() for kp in cams),   # x cameras
           "native_15_p_mpjpe": native_mm, "coco_17_mapped_p_mpjpe": mapped_mm, "ratio": mapped_mm / native_mm,
           "mapped_with_native": put_back, "derived_offset_px": offsets}
    write(args.json, res)
    print(f"P-MPJPE native 15-joint 2D {native_mm:.1f} mm, COCO-17 mapped {mapped_mm:.1f} mm "
          f"(x{mapped_mm / native_mm:.3f}); trained in {wall:.0f} s")
    for name in DERIVED:
        print(f"  {name}: mapped 2D {offsets[name]:.1f} px off the native; with the native {name}: "
              f"{put_back[name]:.1f} mm")


if __name__ == "__main__":
    main()

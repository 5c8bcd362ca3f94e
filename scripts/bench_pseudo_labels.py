"""Benchmark: how good are pseudo-labels, raw and after the 2D and bone fits?

    python scripts/bench_pseudo_labels.py [--run bench_out/semi/humaneva/labelled_only]
        [--json benchmarks/pseudo_labels.json]

Takes a run trained on the labelled chunks only (bench_semi.py's labelled_only run), predicts the
unlabelled training chunks with its members and scores the pseudo-labels against the 3D that the
run never saw: the ensemble mean as the 2022 schedule uses it, after `fit_to_2d`, and after
`fit_to_2d` + `fit_bones` (focal lengths and bones from the labelled chunks, as in training). Also how far the
poses sit from the mean pose, the ensemble's known failure, and how well the spread ranks the
error of each (Spearman per frame).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
from benchlib import header, write

from raypose.data import splits
from raypose.data.source import open_source, read_sequences
from raypose.data.windows import make_windows
from raypose.ensemble.aggregate import aggregate, frame_spread, spread
from raypose.ensemble.ensemble import Ensemble
from raypose.evaluation.calibration import spearman
from raypose.evaluation.metrics import mpjpe, p_mpjpe
from raypose.model.geometry import fit_bones, fit_to_2d, focal_table, subject_bones, window_focals
from raypose.run import Run


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="bench_out/semi/humaneva/labelled_only")
    ap.add_argument("--fraction", type=float, default=0.4, help="labelled fraction the run was made with")
    ap.add_argument("--json", default="benchmarks/pseudo_labels.json")
    args = ap.parse_args()
    run = Run.open(args.run)
    it, cfg = run.iteration(), run.config
    source = open_source(cfg.data)
    train, _ = splits.select(source.chunks, cfg.data.split, cfg.data.actions, dataset=source.dataset)
    _, unlabelled = splits.labelled_split(train, args.fraction, cfg.train.seed)
    rf = int(np.prod(cfg.model.widths))
    w = make_windows(read_sequences(source, train), rf)          # every training chunk, 3D for scoring
    hidden = np.isin([f"{k[0]}/{k[1]}" for k in w.keys], [f"{s}/{a}" for s, a in unlabelled])
    hidden = np.repeat(hidden, np.diff(w.offsets))
    preds = Ensemble.load(run, it).predict(w, tta=True)
    subjects = w.key_per_target(0)
    bones = subject_bones(w.targets, ~hidden, subjects)[hidden]   # labelled chunks only, as in training
    gt, p = w.targets[hidden], preds[:, hidden]
    mean = aggregate(p, "mean")
    centre = w.inputs[w.starts + rf // 2]
    cameras = w.key_per_target(2)
    focal = window_focals(focal_table(w.targets, centre, ~hidden, cameras, seed=cfg.train.seed),   # labelled only
                          cameras)
    fitted = fit_to_2d(mean, centre[hidden], focal[hidden])
    labels = {"ensemble mean": mean, "+ fit to 2D": fitted, "+ fit to 2D + bones": fit_bones(fitted, bones)}
    s = frame_spread(spread(p, mean))
    truth_spread = float(np.linalg.norm(gt - gt.mean(0), axis=-1).mean())
    res = {**header(), "run": args.run, "unlabelled_windows": int(hidden.sum()), "pseudo_labels": {},
           "focal_per_camera": {c: float(focal[cameras == c][0]) for c in np.unique(cameras)},
           "truth_distance_from_mean_pose_m": truth_spread}
    for name, pose in labels.items():
        err = np.linalg.norm(pose - gt, axis=-1)[:, 1:].mean(-1)
        res["pseudo_labels"][name] = {
            "mpjpe": 1000 * float(mpjpe(pose, gt)), "p_mpjpe": 1000 * float(p_mpjpe(pose, gt)),
            "distance_from_mean_pose_m": float(np.linalg.norm(pose - pose.mean(0), axis=-1).mean()),
            "spearman_spread_error": float(spearman(s, err))}
        r = res["pseudo_labels"][name]
        print(f"{name}: MPJPE {r['mpjpe']:.1f} mm, P-MPJPE {r['p_mpjpe']:.1f} mm, distance from the mean "
              f"pose {r['distance_from_mean_pose_m']:.3f} m (truth {truth_spread:.3f}), "
              f"Spearman(spread, error) {r['spearman_spread_error']:.2f}")
    write(args.json, res)


if __name__ == "__main__":
    main()

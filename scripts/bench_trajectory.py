"""The root trajectory `raypose predict` writes, scored against real HumanEva-I's ground-truth root.

    python scripts/bench_trajectory.py --run bench_out/uncertainty_final [--real ../shared/data/humaneva]

For every evaluation sequence (Validate/S1-S3, the run's actions, 3 cameras): the ensemble's
pose, the root translation solved from it and the sequence's 2D with the run's fitted focal
length for that camera (`geometry.trajectory`, what predict writes as `trajectory`), against the
root of the 3D ground truth in that camera's coordinates. Writes benchmarks/trajectory.json.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import REAL_DEFAULT, header, write  # noqa: E402

from raypose.data.npz import load_3d  # noqa: E402
from raypose.datasets.cameras import CAMERA_NAMES, world_to_camera  # noqa: E402
from raypose.ensemble.ensemble import Ensemble  # noqa: E402
from raypose.evaluation.evaluate import eval_windows  # noqa: E402
from raypose.model.geometry import trajectory, window_focals  # noqa: E402
from raypose.run import Run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="bench_out/uncertainty_final")
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--json", default="benchmarks/trajectory.json")
    args = ap.parse_args()
    path_3d = os.path.join(args.real, "data_3d_humaneva15.npz")
    if not os.path.isfile(path_3d) or not os.path.isdir(args.run):
        print(f"real HumanEva ({args.real}) or the run ({args.run}) not found: skipped")
        return
    run = Run.open(args.run)
    ensemble = Ensemble.load(run)
    windows, _ = eval_windows(run.config, data=os.path.abspath(args.real))
    _, pose, _, _ = ensemble.estimate(windows)
    root = trajectory(pose, windows.centre(), window_focals(run.focals(), windows.key_per_target(2)))
    world = load_3d(path_3d)
    gt = np.concatenate([world_to_camera(world[s][a][:, 0], s, CAMERA_NAMES.index(c)) for s, a, c in windows.keys])
    err = np.linalg.norm(root - gt, axis=-1)
    dist = np.linalg.norm(gt, axis=-1)
    res = {**header(), "run": args.run, "iteration": ensemble.iteration, "frames": len(gt),
           "focal": run.focals(), "camera_distance_m": float(dist.mean()),
           "root_error_mm": 1000 * float(err.mean()), "root_error_median_mm": 1000 * float(np.median(err)),
           "relative_error": float((err / dist).mean()),
           "depth_error_mm": 1000 * float(np.abs(root[:, 2] - gt[:, 2]).mean()),
           "xy_error_mm": 1000 * float(np.linalg.norm(root[:, :2] - gt[:, :2], axis=-1).mean())}
    write(args.json, res)
    print(f"root position error {res['root_error_mm']:.0f} mm (median {res['root_error_median_mm']:.0f}), "
          f"{100 * res['relative_error']:.1f}% of the camera distance {res['camera_distance_m']:.2f} m; "
          f"depth {res['depth_error_mm']:.0f} mm, x-y {res['xy_error_mm']:.0f} mm")


if __name__ == "__main__":
    main()

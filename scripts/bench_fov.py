"""Another camera's field of view on real HumanEva-I: what a wide lens costs, and what predict's
field-of-view correction (`--focal F --fov-correction`: the 2D zoomed about the image centre to
the run's focal length) gives back, and where it does not.

    python scripts/bench_fov.py --run bench_out/uncertainty_final [--real ../shared/data/humaneva]

The evaluation sequences' ground-truth 3D (Validate/S1-S3, the run's actions, 3 cameras) is
projected by pinhole cameras with the principal point at the centre of a 640x480 image: the run's
own fitted focal length, a wide lens (f = 1.4 in normalised units, about 71 degrees across) with
the person where they were, and the wide lens with the person moved along the viewing axis until
they fill the image as before (closer: stronger perspective). Each file goes through
`raypose predict` with `--focal`, with and without the correction. Writes benchmarks/fov.json.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import REAL_DEFAULT, header, write  # noqa: E402

from raypose.commands.predict import predict_file  # noqa: E402
from raypose.data.npz import load_3d, read_npz, save_2d  # noqa: E402
from raypose.datasets.cameras import CAMERA_NAMES, IMAGE_HEIGHT, IMAGE_WIDTH, image_coordinates, world_to_camera  # noqa: E402
from raypose.evaluation import metrics as M  # noqa: E402
from raypose.evaluation.calibration import coverage  # noqa: E402
from raypose.evaluation.evaluate import eval_windows  # noqa: E402
from raypose.run import Run  # noqa: E402

WIDE = 1.4   # normalised focal length (f in pixels x 2 / width) of a phone-like wide lens


def camera_3d(real, keys):
    """{key: (T, J, 3) ground truth in that camera's coordinates} for the evaluation sequences."""
    world = load_3d(os.path.join(real, "data_3d_humaneva15.npz"))
    return {k: world_to_camera(world[k[0]][k[1]], k[0], CAMERA_NAMES.index(k[2])) for k in keys}


def closer(cam, factor):
    """The body moved along the viewing axis so its root is `factor` times as far."""
    out = cam.copy()
    out[..., 2] += (factor - 1) * cam[:, :1, 2]
    return out


def project(cam, focal):
    """Pixels of a 640x480 image, principal point at its centre."""
    return image_coordinates(focal * cam[..., :2] / cam[..., 2:], IMAGE_WIDTH, IMAGE_HEIGHT)


def score(pred_path, cams):
    """Errors, radius coverage and root error of one prediction file against `cams`."""
    d = read_npz(pred_path)
    keys = list(cams)
    pose = np.concatenate([d["positions_3d"][s][a][CAMERA_NAMES.index(c)] for s, a, c in keys])
    gt = np.concatenate([cams[k] - cams[k][:, :1] for k in keys])
    out = {"mpjpe_mm": 1000 * M.mpjpe(pose, gt), "p_mpjpe_mm": 1000 * M.p_mpjpe(pose, gt)}
    if "radius" in d:
        q = d["metadata"]["quantiles"]
        radius = np.concatenate([d["radius"][s][a][CAMERA_NAMES.index(c)] for s, a, c in keys])
        cover = coverage(radius, np.linalg.norm(pose - gt, axis=-1))
        out["coverage"] = {f"{x:g}": float(v) for x, v in zip(q, cover)}
    if "trajectory" in d:
        root = np.concatenate([d["trajectory"][s][a][CAMERA_NAMES.index(c)] for s, a, c in keys])
        true = np.concatenate([cams[k][:, 0] for k in keys])
        out["root_error_mm"] = 1000 * float(np.linalg.norm(root - true, axis=-1).mean())
    return out


def conditions(cams, f_run):
    """[(name, 3D in camera coordinates, the camera's focal)]."""
    return [("the run's focal length", cams, f_run),
            (f"wide lens (f {WIDE}), the person where they were", cams, WIDE),
            (f"wide lens (f {WIDE}), the person closer, as large in the image",
             {k: closer(c, WIDE / f_run) for k, c in cams.items()}, WIDE)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="bench_out/uncertainty_final")
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--json", default="benchmarks/fov.json")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.real, "data_3d_humaneva15.npz")) or not os.path.isdir(args.run):
        print(f"real HumanEva ({args.real}) or the run ({args.run}) not found: skipped")
        return
    run = Run.open(args.run)
    windows, _ = eval_windows(run.config, data=os.path.abspath(args.real))
    cams = camera_3d(args.real, windows.keys)
    f_run = float(run.focals()["*"])
    res = {**header(), "run": args.run, "run_focal": f_run, "wide_focal": WIDE,
           "frames": int(sum(len(c) for c in cams.values())), "conditions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "real.npz")   # the same frames from HumanEva's own 2D and cameras
        predict_file(args.run, os.path.join(args.real, "data_2d_humaneva15_gt.npz"), out, overwrite=True)
        res["real_2d"] = score(out, cams)
        for name, cam3d, focal in conditions(cams, f_run):
            tracks = {}
            for (s, a, c), x in cam3d.items():
                tracks.setdefault(s, {}).setdefault(a, [None] * len(CAMERA_NAMES))[CAMERA_NAMES.index(c)] = \
                    project(x, focal)
            inp = os.path.join(tmp, "in.npz")
            save_2d(inp, tracks, {"layout_name": "humaneva15"})
            row = {"focal": focal, "mean_root_depth_m": float(np.mean([x[:, 0, 2].mean() for x in cam3d.values()]))}
            for label, correct in (("corrected", True), ("as is", False)):
                out = os.path.join(tmp, f"{label}.npz")
                predict_file(args.run, inp, out, focal=focal, fov_correction=correct, overwrite=True)
                row[label] = score(out, cam3d)
            res["conditions"][name] = row
            print(f"{name}: P-MPJPE {row['as is']['p_mpjpe_mm']:.1f} mm as is, "
                  f"{row['corrected']['p_mpjpe_mm']:.1f} mm corrected")
    write(args.json, res)


if __name__ == "__main__":
    main()

"""What a BVH from `raypose export` gives back: its forward kinematics against the exported poses.

    python scripts/bench_export.py [--run bench_out/uncertainty_final] [--real ../shared/data/humaneva]
    python scripts/bench_export.py --synthetic

Real: the run's prediction (`raypose predict`, trajectory from its fitted focal lengths) for a few
Validate sequences of real HumanEva-I, camera C1. Synthetic: the synthetic people's own 3D in
camera C1's coordinates written as a prediction (no model). Each is exported as BVH
(`export.export_file`), read back with pybvh's reader and posed by pybvh's forward kinematics:
the error against the bone-normalised poses (the fit at joints with several children: pelvis,
thorax) and against the raw predicted ones (that plus the cost of constant bone lengths).
Writes benchmarks/export.json.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import REAL_DEFAULT, header, write  # noqa: E402
from pybvh import read_bvh_file  # noqa: E402

from raypose.commands.predict import predict_file  # noqa: E402
from raypose.data.npz import load_2d, load_3d, read_npz, save_2d, save_npz  # noqa: E402
from raypose.datasets.cameras import world_to_camera  # noqa: E402
from raypose.datasets.layout import Layout  # noqa: E402
from raypose.datasets.skeleton import HUMANEVA  # noqa: E402
from raypose.interop import bvh as B  # noqa: E402
from raypose.interop.export import export_file  # noqa: E402

SEQUENCES = "Validate/S2/Walking 1 chunk0,Validate/S3/Box 1 chunk0,Validate/S1/Gestures 1 chunk0"


def _keys(text):
    return [tuple(k.strip().rsplit("/", 1)) for k in text.split(",") if k.strip()]


def real_prediction(run, real, keys, tmp):
    """The run's prediction npz for camera C1 of each (subject, action)."""
    pos2d, meta = load_2d(os.path.join(real, "data_2d_humaneva15_gt.npz"))
    picked = {}
    for s, a in keys:
        picked.setdefault(s, {})[a] = pos2d[s][a][:1]
    save_2d(os.path.join(tmp, "in.npz"), picked, meta)
    return predict_file(run, os.path.join(tmp, "in.npz"), os.path.join(tmp, "pred.npz"))


def synthetic_prediction(keys, tmp):
    """The synthetic people's 3D in camera C1's coordinates, laid out as a prediction."""
    from raypose.data.synthetic import write_synthetic
    write_synthetic(os.path.join(tmp, "synth"), frames=3000, seed=0)
    world = load_3d(os.path.join(tmp, "synth", "data_3d_humaneva15.npz"))
    keys = keys or [(s, a) for s in world for a in world[s] if s.startswith("Validate")][:3]
    pos, root = {}, {}
    for s, a in keys:
        cam = world_to_camera(world[s][a], s, 0)
        pos.setdefault(s, {})[a] = [cam - cam[:, :1]]
        root.setdefault(s, {})[a] = [cam[:, 0]]
    meta = {"layout": Layout.of(15, (HUMANEVA.left, HUMANEVA.right)).to_dict(), "quantiles": None}
    return save_npz(os.path.join(tmp, "pred.npz"), positions_3d=pos, trajectory=root, metadata=meta), keys


def measure(pred_path, out):
    """Per track: frames, and pybvh's forward kinematics of the written file against the
    bone-normalised and the raw poses (mm), with the bones' own variation (mm)."""
    t0 = time.perf_counter()
    summary = export_file(pred_path, "bvh", out)
    seconds = time.perf_counter() - t0
    d = read_npz(pred_path)
    parents = tuple(d["metadata"]["layout"]["skeleton"]["parents"])
    rows = []
    for t in summary["tracks"]:
        c = int(t["camera"][1:]) - 1
        raw = d["positions_3d"][t["subject"]][t["action"]][c] + d["trajectory"][t["subject"]][t["action"]][c][:, None]
        fk = B.joint_positions(read_bvh_file(os.path.join(out, t["file"])), parents)
        norm = B.normalised(raw[:, 0], B.directions(raw, parents), B.bone_lengths(raw, parents), parents)
        lengths = np.linalg.norm(raw[:, 1:] - raw[:, list(parents[1:])], axis=-1)
        e_norm = 1000 * np.linalg.norm(fk - norm, axis=-1)
        e_raw = 1000 * np.linalg.norm(fk - raw, axis=-1)
        rows.append({"sequence": f"{t['subject']}/{t['action']}/{t['camera']}", "frames": t["frames"],
                     "fk_vs_normalised_mm": {"mean": float(e_norm.mean()), "max": float(e_norm.max())},
                     "fk_vs_raw_mm": {"mean": float(e_raw.mean()), "max": float(e_raw.max())},
                     "bone_length_deviation_mm": 1000 * float(np.abs(lengths - np.median(lengths, 0)).mean()),
                     "_e": (e_norm, e_raw)})
    both = [np.concatenate([r["_e"][i] for r in rows]) for i in (0, 1)]
    for r in rows:
        del r["_e"]
    total = {"frames": sum(r["frames"] for r in rows), "seconds": seconds,
             "fk_vs_normalised_mm": {"mean": float(both[0].mean()), "max": float(both[0].max())},
             "fk_vs_raw_mm": {"mean": float(both[1].mean()), "max": float(both[1].max())}}
    return total, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="bench_out/uncertainty_final")
    ap.add_argument("--real", default=REAL_DEFAULT)
    ap.add_argument("--synthetic", action="store_true", help="the synthetic people's own 3D, no model")
    ap.add_argument("--sequences", default=None, help=f"subject/action list, camera C1 (default: {SEQUENCES} for "
                    "real, the first three Validate sequences for --synthetic)")
    ap.add_argument("--json", default="benchmarks/export.json")
    args = ap.parse_args()
    keys = _keys(args.sequences) if args.sequences else None
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            pred, keys = synthetic_prediction(keys, tmp)
            source = "synthetic 3D ground truth in camera C1's coordinates (no model)"
        else:
            if not os.path.isfile(os.path.join(args.real, "data_2d_humaneva15_gt.npz")) or not os.path.isdir(args.run):
                print(f"real HumanEva ({args.real}) or the run ({args.run}) not found: skipped (try --synthetic)")
                return
            pred = real_prediction(args.run, args.real, keys or _keys(SEQUENCES), tmp)
            source = f"raypose predict --run {args.run}, real HumanEva-I 2D (ground truth), camera C1"
        total, rows = measure(pred, os.path.join(tmp, "bvh"))
    res = {**header(), "source": source, "units": "mm, camera coordinates", **total, "sequences": rows}
    write(args.json, res)
    print(f"{res['frames']} frames in {res['seconds']:.2f} s; BVH forward kinematics vs bone-normalised poses "
          f"{res['fk_vs_normalised_mm']['mean']:.2f} mm mean / {res['fk_vs_normalised_mm']['max']:.1f} max, "
          f"vs raw predicted {res['fk_vs_raw_mm']['mean']:.2f} / {res['fk_vs_raw_mm']['max']:.1f} mm")


if __name__ == "__main__":
    main()

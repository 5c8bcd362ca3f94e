"""Whether two runs of the same config trained the same members: every iteration record's ensemble
figures side by side, and whether they are identical (a refactor's check that figures did not move).

    raypose train --config raypose/configs/humaneva_10min.toml --data ../shared/data/humaneva \
        --out bench_out/after --calibration-holdout 0
    python scripts/compare_runs.py bench_out/before bench_out/after --json benchmarks/humaneva_unchanged.json
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import header, write  # noqa: E402

from raypose import config as C  # noqa: E402
from raypose.run import Run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--json", help="write the comparison here")
    args = ap.parse_args()
    runs = [Run.open(p) for p in (args.before, args.after)]
    if runs[0].config.hash() != runs[1].config.hash():
        diff = C.differences(runs[0].config, runs[1].config)
        print("the runs' configs differ: " + (", ".join(diff) or "(no hashed key)"))
    common = sorted(set(runs[0].iterations()) & set(runs[1].iterations()))
    rows = [{"iteration": i, **{name: run.record(i)["ensemble"] for name, run in zip(("before", "after"), runs)}}
            for i in common]
    for r in rows:
        print(f"iter {r['iteration']:3d}  P-MPJPE {r['before']['p_mpjpe_mm']:.4f} -> {r['after']['p_mpjpe_mm']:.4f} mm")
    same = all(r["before"] == r["after"] for r in rows)
    # the rest of what a refactor must not move: the members' files (SHA-256) and the radii's calibration
    for r in rows:
        a, b = (run.record(r["iteration"]) for run in runs)
        r["member_files_identical"] = a["files"] == b["files"]
        r["calibration_identical"] = a.get("calibration") == b.get("calibration")
    files = all(r["member_files_identical"] and r["calibration_identical"] for r in rows)
    print(f"{len(rows)} common iterations; identical: {same}; member files and calibration identical: {files}")
    if args.json:
        write(args.json, {**header(), "before": args.before, "after": args.after, "config_hash": runs[1].config.hash(),
                          "iterations": len(rows), "identical": same, "files_and_calibration_identical": files,
                          "records": rows})


if __name__ == "__main__":
    main()

"""Peak memory and wall time of `raypose predict` on Human3.6M-sized 2D (issue 26), npz and Parquet.

    python scripts/bench_predict_scale.py [--sizes 50000 200000 800000] [--baseline /work/main]

Synthetic Human3.6M-layout 2D (`raypose synth --layout h36m --frames N`: N 3D frames, seen by 4
cameras, so 4 N camera-frames to predict), a 2-member 64-channel run trained for one epoch on the
smallest set (what it predicts does not matter here, only how much). Each predict runs as its own
process under scripts/memwatch.py, which sums the proportional set size (PSS) of the process tree
every 0.2 s. With --baseline (another checkout, e.g. main before this work) its predict runs too at
--baseline-sizes, and its npz is compared with this checkout's, array by array. The machine is
shared: the load average before and after each run is recorded beside its time, and
OMP_NUM_THREADS=1 keeps torch from spinning two threads against the other jobs there (measured
on 200,000 camera-frames at a load of 4-5 on 2 cores: 11 s with one thread, 45-100 s with two).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memwatch  # noqa: E402
from benchlib import header, write  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from raypose.npzfile import read_npz  # noqa: E402

TRAIN = ["--channels", "64", "--members", "2", "--iterations", "1", "--epochs", "1", "--subset-size", "20000",
         "--set", "run.local=true"]


def _raypose(code_root, *args):
    """`raypose ARGS` with `code_root`'s package first on the path."""
    return ([sys.executable, "-P", "-c", "import sys; from raypose.cli import main; sys.exit(main())", *args],
            {**os.environ, "PYTHONPATH": code_root})


def _run(code_root, *args):
    cmd, env = _raypose(code_root, *args)
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def _watched(code_root, *args):
    """(peak PSS MiB of the tree, wall s, CPU s (user + system, the tree's), load averages before and
    after: on a shared machine the CPU time says more than the wall time)."""
    cmd, env = _raypose(code_root, *args)
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]   # memwatch.run starts the command with this environment
    try:
        load0, cpu0 = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
        rc, peaks, wall = memwatch.run(cmd, every=0.2, echo=False)
        load1, cpu1 = os.getloadavg()[0], resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
    if rc:
        raise SystemExit(f"{' '.join(args)}: exit {rc}")
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return {"peak_mib": peaks["total"], "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "load_before": round(load0, 2), "load_after": round(load1, 2)}


def _camera_frames(path):
    pos = read_npz(path, keys=("positions_2d",))["positions_2d"]
    return int(sum(len(a) for actions in pos.values() for cams in actions.values() for a in cams))


def _same(a, b):
    """Whether two prediction npz files hold the same arrays, bit for bit, and the same metadata
    but for the input file's path."""
    x, y = read_npz(a), read_npz(b)
    for m in (x["metadata"], y["metadata"]):
        m["input"] = {k: v for k, v in m["input"].items() if k != "file"}

    def same(u, v):
        if isinstance(u, dict):
            return isinstance(v, dict) and list(u) == list(v) and all(same(u[k], v[k]) for k in u)
        if isinstance(u, list):
            return isinstance(v, list) and len(u) == len(v) and all(same(p, q) for p, q in zip(u, v))
        if isinstance(u, np.ndarray):
            return (isinstance(v, np.ndarray) and u.dtype == v.dtype and u.shape == v.shape
                    and u.tobytes() == v.tobytes())
        return u == v
    return list(x) == list(y) and all(same(x[k], y[k]) for k in x)


def _evaluate(run, data, n, args):
    """`raypose evaluate --data DATA --no-curve` of the run, this checkout's and the baseline's, each
    on its own copy of the run (evaluate writes metrics.json there); whether they report the same."""
    row, reports = {"frames_3d": n}, {}
    for name, code in [("this", ROOT)] + ([("baseline", args.baseline)] if args.baseline else []):
        copy = os.path.join(args.work, f"run_evaluate_{name}")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(run, copy)
        row[name] = _watched(code, "evaluate", "--run", copy, "--data", data, "--no-curve")
        with open(os.path.join(copy, "metrics.json")) as f:
            reports[name] = json.load(f)["evaluation"]
        shutil.rmtree(copy)
        print(n, "evaluate", name, row[name], flush=True)
    row["eval_frames"] = reports["this"]["frames"]
    if "baseline" in reports:
        row["identical_to_baseline"] = json.dumps(reports["this"]) == json.dumps(reports["baseline"])
    return row


def _commit(root):
    out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def _cpu():
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50000, 200000, 800000])
    ap.add_argument("--work", default="/tmp/raypose_bench_predict_scale")
    ap.add_argument("--baseline", help="another checkout's root (its raypose/), run at --baseline-sizes")
    ap.add_argument("--baseline-sizes", type=int, nargs="*", default=[200000])
    ap.add_argument("--baseline-commit", help="what --baseline is, where it is no git checkout (git archive COMMIT)")
    ap.add_argument("--evaluate-sizes", type=int, nargs="*", default=[],
                    help="also `raypose evaluate --data` that set (its test split), this checkout and --baseline")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "predict_scale.json"))
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = {n: os.path.join(args.work, f"h36m_{n}") for n in args.sizes}
    for n, d in data.items():
        if not os.path.isfile(os.path.join(d, "data_2d_h36m_gt.npz")):
            _run(ROOT, "synth", "--layout", "h36m", "--frames", str(n), "--out", d, "--overwrite")
    run = os.path.join(args.work, "run")
    if not os.path.isdir(os.path.join(run, "checkpoints")):
        # by the baseline where there is one: a run this code reads, and one the baseline reads too
        _run(args.baseline or ROOT, "train", "--data", data[min(args.sizes)], *TRAIN, "--out", run)
    threads = os.environ.get("OMP_NUM_THREADS")   # 1 on a shared machine: 2 threads spin against others' jobs
    results = {**header(threads), "cpu": _cpu(), "commit": _commit(ROOT),
               **({"baseline_commit": args.baseline_commit or _commit(args.baseline)} if args.baseline else {}),
               "run": f"2 members x 64 channels, trained by `raypose train {' '.join(TRAIN)}`",
               "note": "peak: summed PSS of the predict process tree (scripts/memwatch.py, every 0.2 s); wall and "
                       "CPU (user + system) time: the whole command (imports, reading, writing); the machine is "
                       "shared, its load average is recorded before and after each run", "sizes": []}
    for n in args.sizes:
        inp = os.path.join(data[n], "data_2d_h36m_gt.npz")
        row = {"frames_3d": n, "camera_frames": _camera_frames(inp)}
        for fmt in ("npz", "parquet"):
            out = os.path.join(args.work, f"pred_{n}.{fmt}")
            row[fmt] = _watched(ROOT, "predict", "--run", run, "--input", inp, "--out", out, "--overwrite")
            row[fmt]["file_mib"] = round(os.path.getsize(out) / 2 ** 20, 1)
            print(n, fmt, row[fmt], flush=True)
        if args.baseline and n in args.baseline_sizes:
            out = os.path.join(args.work, f"baseline_{n}.npz")
            row["baseline_npz"] = _watched(args.baseline, "predict", "--run", run, "--input", inp, "--out", out,
                                           "--overwrite")
            row["baseline_npz"]["code"] = os.path.abspath(args.baseline)
            row["identical_to_baseline"] = _same(out, os.path.join(args.work, f"pred_{n}.npz"))
            print(n, "baseline", row["baseline_npz"], "identical:", row["identical_to_baseline"], flush=True)
            os.remove(out)
        for fmt in ("npz", "parquet"):
            os.remove(os.path.join(args.work, f"pred_{n}.{fmt}"))
        results["sizes"].append(row)
    for n in args.evaluate_sizes:
        results.setdefault("evaluate", []).append(_evaluate(run, data[n], n, args))
    results["finished"] = time.strftime("%Y-%m-%d %H:%M")
    write(args.out, results)


if __name__ == "__main__":
    main()

"""Benchmark: N members trained at once by `raypose train` against one member alone, same CPUs.

    python scripts/bench_ensemble_scaling.py [--long 600] [--json benchmarks/ensemble_scaling.json]

Every run is a real `raypose train` (Ray Train workers, checkpoints, all-gather, aggregation)
on the synthetic demo data with the demo's member (128 channels). The member-samples/s ratio
is (samples trained by all members / wall) over the same for one member that has every CPU to
itself: 1.0 means an ensemble costs exactly N members. Ray's share is the wall time that is not
the slowest worker's training or evaluation (start-up, checkpoint writes, barrier, aggregation),
from the timing each iteration record carries (raypose/train/timing.py). `--long S` adds one
run of S seconds (`--time-budget`) to show that share once start-up is paid off.
"""
import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchlib import header, write

from raypose import config as C
from raypose.run import Run
from raypose.train.driver import train
from raypose.train.timing import breakdown

DEMO = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "raypose", "configs", "demo.toml")


def run_one(name, out, members, per_worker=1, iterations=None, budget=0.0):
    shutil.rmtree(out, ignore_errors=True)
    with open(DEMO) as f:
        cfg = C.loads(f.read(), source=DEMO)
    values = {"train.members": members, "run.members_per_worker": per_worker, "run.out": out,
              "run.time_budget": budget}
    if iterations:
        values["train.iterations"] = iterations
    cfg = C.with_values(cfg, values)
    t0 = time.time()
    train(C.finalize(cfg), echo=lambda s: None)
    t1 = time.time()
    run = Run(out)
    res = breakdown([run.record(i) for i in run.iterations()], t0, t1)
    res.update(name=name, members=members, members_per_worker=per_worker,
               iterations=run.latest(), epochs_per_iteration=cfg.train.epochs,
               ensemble_p_mpjpe_mm=run.record(run.latest())["ensemble"]["p_mpjpe_mm"])
    print(f"{name}: {members} members, {res['workers']} workers: {res['wall_s']:.0f} s wall, "
          f"{res['member_samples_per_s']:.0f} member-samples/s, Ray share {100 * res['ray_share']:.0f}% "
          f"(start-up {res['startup_s']:.0f} s, checkpoints {res['checkpoint_s']:.1f} s, "
          f"barrier {res['barrier_s']:.1f} s, aggregation {res['aggregate_s']:.1f} s)", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out/scaling")
    ap.add_argument("--json", default="benchmarks/ensemble_scaling.json")
    ap.add_argument("--long", type=float, default=600.0, help="seconds of the long run (0: skip it)")
    args = ap.parse_args()
    import ray
    cpus = os.cpu_count()
    ray.init(num_cpus=cpus, log_to_driver=False, configure_logging=True, logging_level="WARNING")
    runs = {}
    for name, members, per in [("alone", 1, 1), ("demo", 2, 1), ("four_packed_2", 4, 2), ("five_workers", 5, 1)]:
        runs[name] = run_one(name, os.path.join(args.out, name), members, per)
    if args.long:
        runs["long"] = run_one("long", os.path.join(args.out, "long"), 2, 1, iterations=1000, budget=args.long)
    base = runs["alone"]
    for r in runs.values():
        r["ratio_vs_alone"] = r["member_samples_per_s"] / base["member_samples_per_s"]
        r["train_ratio_vs_alone"] = r["member_samples_per_train_s"] / base["member_samples_per_train_s"]
    res = {**header(), "cpus": cpus, "runs": runs,
           "demo_ratio": runs["demo"]["ratio_vs_alone"], "demo_train_ratio": runs["demo"]["train_ratio_vs_alone"],
           "demo_ray_share": runs["demo"]["ray_share"],
           "long_ray_share": runs["long"]["ray_share"] if args.long else None,
           "targets": {"ratio": 0.9, "long_ray_share": 0.10}}
    print(f"demo: member-samples/s ratio {res['demo_ratio']:.2f} (training phase {res['demo_train_ratio']:.2f}), "
          f"Ray share {100 * res['demo_ray_share']:.0f}%"
          + (f"; {args.long:.0f} s run: Ray share {100 * res['long_ray_share']:.1f}%" if args.long else ""))
    write(args.json, res)


if __name__ == "__main__":
    main()

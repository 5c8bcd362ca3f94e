"""Where a run's wall time went: member compute against what running them on Ray adds.

Reads the `timing` block every iteration record carries. The slowest worker sets the pace, so
its training and evaluation are the useful work; the rest of the wall time is start-up (Ray,
ingest, worker processes, windows), checkpoint writes, waiting at the iteration barrier,
aggregation and the driver's finish.
"""


def breakdown(records, t_call, t_end):
    """Seconds per phase and Ray's share of the wall time for a run made by one `train()` call.

    records: the run's iteration records in order, all from this call; t_call / t_end: when
    `train()` was called and returned (time.time()).
    """
    per_worker = {}
    samples = 0
    for r in records:
        for m in r["timing"]["members"]:
            w = per_worker.setdefault(m["worker"], {"train_s": 0.0, "eval_s": 0.0, "save_s": 0.0})
            for key in w:
                w[key] += m[key]
            samples += m["samples"]
    slowest = max(per_worker.values(), key=lambda w: w["train_s"] + w["eval_s"] + w["save_s"])
    wall = t_end - t_call
    startup = min(w["started"] for w in records[0]["timing"]["workers"]) - t_call
    aggregate = sum(r["timing"]["aggregate_s"] for r in records)
    finish = t_end - records[-1]["time"]
    barrier = wall - startup - finish - aggregate - sum(slowest.values())
    ray = wall - slowest["train_s"] - slowest["eval_s"]
    return {
        "wall_s": wall, "startup_s": startup, "train_s": slowest["train_s"],
        "eval_s": slowest["eval_s"], "checkpoint_s": slowest["save_s"], "aggregate_s": aggregate,
        "barrier_s": barrier, "finish_s": finish, "ray_s": ray, "ray_share": ray / wall,
        "member_samples": samples, "member_samples_per_s": samples / wall,
        "member_samples_per_train_s": samples / max(w["train_s"] for w in per_worker.values()),
        "workers": len(per_worker),
    }

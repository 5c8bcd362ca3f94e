"""How much memory a run needs on each node, estimated before any worker starts, and the one line
that says so when no node can hold it. Pure functions: no Ray, no torch.

A node holds the run's windows once (Ray's object store gives them to all its workers without a
copy), one Ray Train worker per member (or per group of packed members), Ray's own processes,
and, on the driver's node, the driver. The constants were measured on this project's 2-core VM
(scripts/bench_scale.py: summed PSS by role, benchmarks/scale.json); the estimate errs high.
"""
import math

from raypose.errors import UserError
from raypose.train.plan import _slots as slots_of

GIB = 2 ** 30
MIB = 2 ** 20
RAY_PROCESSES = 1.7 * GIB     # raylet, GCS, dashboard, Train's controller and its helper actors (measured 1.6)
DRIVER = 0.6 * GIB            # the driver once the windows are built and handed over (measured 0.4-0.5)
WORKER = 0.55 * GIB           # a Ray Train worker with torch loaded, before its members' own (measured ~0.5)
RANK0_PER_CALIB_FRAME = 32 * 1024   # rank 0 fitting the radii: ~30 kB per calibration frame (0.6 GB at 20,000)
SAVED_ACTIVATIONS = 4         # tensors kept per layer for the backward pass (conv, BN, ReLU, dropout)


def model_params(joints_2d, joints_3d, channels, widths):
    """Weights of a TemporalModel: expand conv, (dilated conv + 1x1 conv) per further width, BN, shrink."""
    p = joints_2d * 2 * channels * widths[0] + 2 * channels
    for w in widths[1:]:
        p += channels * channels * w + channels * channels + 4 * channels
    return p + channels * joints_3d * 3 + joints_3d * 3


def member_bytes(cfg, joints_2d, joints_3d, on_gpu):
    """Host memory of one member in its worker: weights, gradients and Adam's two moments, the
    training batch's activations where it trains on the CPU, and its predictions of the scored
    and calibration frames (both views)."""
    m = cfg.model
    params = model_params(joints_2d, joints_3d, m.channels, list(m.widths))
    out = params * 4 * 4
    if not on_gpu:
        frames, t = 0, math.prod(m.widths)
        for w in m.widths:   # the strided training form: each block shrinks the time axis by its width
            t = max(1, t // w)
            frames += 2 * t
        out += cfg.train.batch_size * m.channels * frames * 4 * SAVED_ACTIVATIONS
    scored = (cfg.train.eval_frames or 10 ** 6) + 5 * (cfg.uncertainty.max_frames or 10 ** 6)
    return out + scored * joints_3d * 3 * 4 * 2


def node_bytes(workers, members_per_worker, data_bytes, cfg, joints_2d, joints_3d, on_gpu, driver):
    """(bytes, what they are) a node with `workers` of the run's workers needs at its peak."""
    parts = {"the windows (once per node)": data_bytes,
             f"{workers} worker(s)": workers * (WORKER + members_per_worker *
                                                member_bytes(cfg, joints_2d, joints_3d, on_gpu)),
             "rank 0 fitting the radii": RANK0_PER_CALIB_FRAME * (cfg.uncertainty.max_frames or 10 ** 6)
             if cfg.uncertainty.holdout else 0,
             "Ray's processes": RAY_PROCESSES}
    if driver:
        parts["the driver"] = DRIVER
    return sum(parts.values()), parts


def check(plan, types, data_bytes, cfg, joints_2d, joints_3d):
    """Refuse, in one line, a plan whose workers no node can hold in memory (the levers named);
    node types whose memory is unknown (0) are not checked. Returns the estimate per node type."""
    out = {}
    for t in types:
        if not t.memory or t.name not in plan.holders:
            continue
        slots = min(plan.workers, slots_of(t, plan.cpus, plan.gpus))
        need, parts = node_bytes(slots, plan.members_per_worker, data_bytes, cfg, joints_2d, joints_3d,
                                 plan.use_gpu, t.driver)
        out[t.name] = need
        if need > 0.95 * t.memory:
            what = ", ".join(f"{k} {v / GIB:.1f}" for k, v in parts.items() if v)
            raise UserError(
                f"{cfg.train.members} members: {t.name} would need about {need / GIB:.1f} GiB ({what}) and has "
                f"{t.memory / GIB:.1f} GiB; expected fewer members per node (--members, or --cpus-per-member to "
                f"spread them over more nodes), fewer frames held per node (--actions, or data.validation), "
                f"--eval-frames / --calibration-frames lower, or a node with more memory")
    return out


def oom_message(error_text, node_hint=""):
    """The one line for workers Ray's memory monitor killed (its message in `error_text`)."""
    import re
    used = re.search(r"(\d+(?:\.\d+)?GB) used / (\d+(?:\.\d+)?GB) limit", error_text or "")
    mem = f" ({used.group(1)} used of {used.group(2)})" if used else ""
    return (f"workers were killed by Ray's memory monitor: a node{node_hint} ran out of memory{mem}; expected "
            f"fewer members per node (--members, --cpus-per-member), fewer frames (--actions), lower "
            f"--eval-frames / --calibration-frames, or more memory; completed iterations are kept and the same "
            f"command resumes")

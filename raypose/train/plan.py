"""Where the members go: a pure function from the options and the cluster's node types to one
Ray Train request, or one line saying why no node type can ever hold it.

Ray Train V2 retries a placement that can never succeed for ever, without a word, so the plan
is checked here against every node type the cluster has or can start (an autoscaling
cluster's GPU types count even with no node up). All workers share one request, so the CPUs
per worker come from the node types that hold them, never from the head's CPUs.
"""
import math
from dataclasses import dataclass, field

from raypose.errors import UserError

EPS = 1e-9


@dataclass(frozen=True)
class NodeType:
    """Nodes alike: `up` running now, `more` the autoscaler may still start."""
    name: str
    cpus: float
    gpus: float = 0.0
    up: int = 1
    more: int = 0
    driver: bool = False   # the driver's own node (a local --out is only there)
    memory: float = 0.0    # bytes of a node (Ray's memory + object store resources); 0: unknown

    @property
    def nodes(self):
        return self.up + self.more


@dataclass(frozen=True)
class Plan:
    workers: int
    members_per_worker: int
    cpus: float                     # per worker
    gpus: float                     # per worker (0: CPU)
    threads: int
    holders: tuple = field(default=())   # names of the node types that can hold a worker
    nodes: int = 1                  # nodes that could hold a worker
    on_driver_only: bool = True     # every such node is the driver's
    can_grow: bool = False          # an autoscaler may start nodes that hold workers

    @property
    def use_gpu(self):
        return self.gpus > 0

    @property
    def resources(self):
        return {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus else {})}

    def describe(self):
        per = f"{self.members_per_worker} members each, " if self.members_per_worker > 1 else ""
        res = ", ".join(f"{k} {_num(v)}" for k, v in self.resources.items())
        return f"{self.workers} worker(s) ({per}{res}) on {' or '.join(self.holders)}"


def _num(v):
    return f"{v:g}" if v == int(v) else f"{v:.3g}"


def _gpu_slots(t, gpus):
    """Workers asking `gpus` each that one node of type t holds by GPUs: Ray places a fraction
    within one GPU, and a request above 1 only as whole GPUs."""
    if gpus <= 1:
        return int(math.floor(t.gpus + EPS)) * int(math.floor(1 / gpus + EPS))
    return int(math.floor(t.gpus / gpus + EPS))


def _slots(t, cpus, gpus):
    by_cpu = int(math.floor(t.cpus / cpus + EPS)) if cpus > 0 else 10 ** 6
    return min(by_cpu, _gpu_slots(t, gpus)) if gpus else by_cpu


def _capacity(types, cpus, gpus):
    return sum(t.nodes * _slots(t, cpus, gpus) for t in types)


def _cpu_share(types, workers, gpus):
    """The largest CPUs per worker with which `workers` fit: whole CPUs where possible."""
    if gpus:   # a worker's CPUs: its share of the GPU node that holds it, on the leanest such type
        # (a node holds at most min(its GPU slots, all the workers): no CPU is kept for absent ones)
        shares = [t.cpus / min(_gpu_slots(t, gpus), workers) for t in types if _gpu_slots(t, gpus)]
        share = min(shares)
        return max(1, math.floor(share + EPS)) if share >= 1 else share
    candidates = sorted({t.cpus / k for t in types for k in range(1, workers + 1) if t.cpus > 0}, reverse=True)
    whole = sorted({math.floor(c + EPS) for c in candidates if c >= 1}, reverse=True)
    for c in whole + candidates:
        if _capacity(types, c, 0) >= workers:
            return c
    return None


def _gpu_request(members, gpus_per_member, per_worker, total_gpus):
    """(members per worker, GPUs per worker). auto: a whole GPU per member while there are
    enough; else members packed per worker, one GPU each (one stacked model per GPU: one CUDA
    context and one kernel stream instead of processes time-sharing a GPU)."""
    if gpus_per_member == "auto":
        if per_worker:
            return per_worker, 1.0
        if members <= total_gpus:
            return 1, 1.0
        return math.ceil(members / max(1, math.floor(total_gpus + EPS))), 1.0
    per_worker = min(per_worker or 1, members)
    return per_worker, float(gpus_per_member) * per_worker


def plan(members, types, gpus_per_member="auto", members_per_worker=0, cpus_per_member=0.0):
    """The Plan for `members` on node `types`, or UserError naming what cannot fit and why."""
    types = [t for t in types if t.nodes > 0]
    total_gpus = sum(t.gpus * t.nodes for t in types)
    want_gpu = float(gpus_per_member) > 0 if gpus_per_member != "auto" else total_gpus > 0
    if want_gpu and gpus_per_member != "auto" and total_gpus == 0:
        raise UserError(f"--gpus-per-member {gpus_per_member}: this cluster has no GPU node and no node type "
                        f"that can start one ({_listing(types)}); expected 0 or auto here")
    per_worker, gpus = _gpu_request(members, gpus_per_member, members_per_worker, total_gpus) if want_gpu \
        else (members_per_worker or 1, 0.0)
    workers = math.ceil(members / per_worker)
    if gpus > 1 + EPS:   # a worker's members all train on its one device: more GPUs would sit idle
        raise UserError(f"{_num(gpus)} GPUs per worker: a worker trains its members on one GPU; expected "
                        "--gpus-per-member x --members-per-worker <= 1 (auto packs members per GPU)")
    holders = [t for t in types if (not gpus or _gpu_slots(t, gpus)) and t.cpus > 0]
    if not gpus:   # CPU work starts no node while the nodes up hold it (run.cpus_per_member to scale out)
        up = [NodeType(t.name, t.cpus, t.gpus, t.up, 0, t.driver, t.memory) for t in holders if t.up]
        need = cpus_per_member * per_worker
        if (_capacity(up, need, 0) >= workers) if need else _cpu_share(up, workers, 0):
            holders = up
    cpus = cpus_per_member * per_worker if cpus_per_member else (
        _cpu_share(holders, workers, gpus) if holders else None)
    if cpus is None or _capacity(holders, cpus, gpus) < workers:
        _refuse(members, workers, per_worker, cpus, gpus, types, holders, bool(cpus_per_member))
    holders = [t for t in holders if _slots(t, cpus, gpus)]
    return Plan(workers, per_worker, cpus, gpus, max(1, int(cpus)), tuple(t.name for t in holders),
                sum(t.nodes for t in holders), all(t.driver and t.nodes == 1 for t in holders),
                any(t.more for t in holders))


def _listing(types):
    return "; ".join(f"{t.name}: {t.up} up" + (f" + {t.more} more" if t.more else "")
                     + f" x {_num(t.cpus)} CPU" + (f", {_num(t.gpus)} GPU" if t.gpus else "") for t in types) \
        or "no nodes"


def _refuse(members, workers, per_worker, cpus, gpus, types, holders, cpus_asked=False):
    ask = f"{workers} worker(s) of " + " + ".join(
        ([f"{_num(cpus)} CPU"] if cpus else []) + ([f"{_num(gpus)} GPU"] if gpus else []))
    hold = _capacity(holders, cpus, gpus) if cpus else 0
    hint = ("fewer GPUs per member (--gpus-per-member auto packs members per GPU), or add GPU nodes"
            if gpus else "add nodes")
    if cpus_asked:
        hint = f"lower run.cpus_per_member ({_num(cpus / per_worker)} per member, {per_worker} per worker), or {hint}"
    raise UserError(f"{members} members need {ask}; no node type of this cluster can hold that many "
                    f"(at most {hold}; {_listing(types)}): {hint}")


def node_types_from_config(config, up=()):
    """NodeTypes of an autoscaler config (`ray up`'s YAML, as a dict) whose `resources` declare
    CPU/GPU, with the nodes already `up` (NodeTypes) counted in the type of their CPU and GPU."""
    rest, out = list(up), []
    for name, spec in (config.get("available_node_types") or {}).items():
        res = spec.get("resources") or {}
        if name == config.get("head_node_type") or "CPU" not in res:
            continue
        cpus, gpus = float(res["CPU"]), float(res.get("GPU", 0))
        mine = [u for u in rest if not u.driver and (u.cpus, u.gpus) == (cpus, gpus)]
        rest = [u for u in rest if u not in mine]
        running = sum(u.up for u in mine)
        most = spec.get("max_workers", config.get("max_workers", 0))   # Ray's default: the global cap
        memory = float(res.get("memory", 0)) + float(res.get("object_store_memory", 0))
        out.append(NodeType(name, cpus, gpus, running, max(0, int(most) - running), memory=memory))
    room = config.get("max_workers")   # the cluster-wide cap on worker nodes, over all types
    if room is not None:
        room -= sum(t.up for t in out) + sum(u.up for u in rest if not u.driver)
        capped = []
        for t in sorted(out, key=lambda t: -t.gpus):   # what is scarce first: GPU types are never crowded out
            more = max(0, min(t.more, room))
            room -= more
            capped.append(NodeType(t.name, t.cpus, t.gpus, t.up, more, memory=t.memory))
        out = capped
    return rest + out


def at_once(p, types):
    """How many runs of plan `p` the cluster's node types hold side by side (raypose tune's
    concurrent trials), at least one."""
    return max(1, _capacity([t for t in types if t.nodes > 0], p.cpus, p.gpus) // p.workers)

"""The resource planner over cluster descriptions: every plan fits a node type, or is one line."""
import os

import pytest
import yaml

from raypose.errors import UserError
from raypose.train.plan import NodeType, _slots, at_once, node_types_from_config, plan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fits(p, types):
    """Every worker of the plan has a place on some node: the plan's own claim, re-counted."""
    per_node = [(t, _slots(t, p.cpus, p.gpus)) for t in types]
    assert sum(t.nodes * s for t, s in per_node) >= p.workers
    assert all(t.gpus >= min(p.gpus, 1) and t.cpus >= p.cpus for t, s in per_node if s)
    return True


def test_one_gpu_two_members_packs_them_on_it():
    types = [NodeType("box", cpus=8, gpus=1, driver=True)]
    p = plan(2, types)
    assert (p.workers, p.members_per_worker, p.gpus, p.cpus) == (1, 2, 1.0, 8)
    assert _fits(p, types) and p.on_driver_only


def test_one_gpu_five_members_one_packed_worker():
    types = [NodeType("box", cpus=16, gpus=1, driver=True)]
    p = plan(5, types)
    assert (p.workers, p.members_per_worker, p.gpus) == (1, 5, 1.0) and _fits(p, types)


def test_one_gpu_shared_by_fractions():
    types = [NodeType("box", cpus=8, gpus=1, driver=True)]
    p = plan(2, types, gpus_per_member="0.5")
    assert (p.workers, p.members_per_worker, p.gpus, p.cpus) == (2, 1, 0.5, 4) and _fits(p, types)


def test_four_gpus_five_members():
    types = [NodeType("box", cpus=32, gpus=4, driver=True)]
    p = plan(5, types)
    assert p.workers <= 4 and p.workers * p.members_per_worker >= 5 and p.gpus == 1
    assert p.workers == 3 and p.cpus == 10 and _fits(p, types)   # 32 CPUs shared by the 3 workers there are
    assert plan(4, types).members_per_worker == 1   # enough GPUs: one each, no packing


def test_autoscaling_cluster_with_no_gpu_up_asks_for_gpus():
    head = NodeType("head", cpus=8, gpus=0, driver=True)
    cfg = {"head_node_type": "head", "available_node_types": {
        "head": {"resources": {"CPU": 8}},
        "gpu_worker": {"resources": {"CPU": 4, "GPU": 1}, "min_workers": 0, "max_workers": 5}}}
    types = node_types_from_config(cfg, [head])
    p = plan(5, types)
    assert (p.workers, p.gpus, p.cpus) == (5, 1.0, 4)   # CPUs of the GPU node, not the head's 8
    assert p.holders == ("gpu_worker",) and p.nodes == 5 and not p.on_driver_only
    assert _fits(p, types)


def test_mixed_node_sizes_share_the_leanest():
    types = [NodeType("big", cpus=16, gpus=2), NodeType("small", cpus=4, gpus=1, up=0, more=2)]
    p = plan(4, types)
    assert (p.workers, p.gpus, p.cpus) == (4, 1.0, 4) and _fits(p, types)


def test_cpu_only_single_node_keeps_the_old_shares():
    two = [NodeType("laptop", cpus=2, driver=True)]
    assert plan(2, two).cpus == 1 and plan(1, two).cpus == 2
    p = plan(5, two)
    assert p.cpus == pytest.approx(0.4) and p.threads == 1 and not p.use_gpu and _fits(p, two)
    assert plan(2, [NodeType("gpu", cpus=8, gpus=1)], gpus_per_member="0").use_gpu is False


def test_cpu_plans_stay_on_nodes_that_are_up():
    """CPU work never makes the autoscaler start (GPU) nodes while the nodes up can hold it."""
    types = [NodeType("head", cpus=8, driver=True), NodeType("gpu_worker", cpus=4, gpus=1, up=0, more=5)]
    p = plan(5, types, gpus_per_member="0")
    assert p.holders == ("head",) and p.cpus == 1 and p.on_driver_only and not p.can_grow
    wide = plan(5, types, gpus_per_member="0", cpus_per_member=4)   # asked for more than the head holds
    assert wide.can_grow and "gpu_worker" in wide.holders and _fits(wide, types)
    assert plan(2, types, members_per_worker=4, gpus_per_member="0.5").gpus == 1   # sized on the 2 members


def test_cpu_nodes_spread():
    types = [NodeType("a", cpus=1, driver=True), NodeType("b", cpus=1)]
    p = plan(2, types)
    assert p.cpus == 1 and p.nodes == 2 and not p.on_driver_only and _fits(p, types)


@pytest.mark.parametrize("kwargs, types, match", [
    ({"gpus_per_member": "2"}, [NodeType("box", cpus=8, gpus=2)], "trains its members on one GPU"),
    ({"gpus_per_member": "1"}, [NodeType("laptop", cpus=2)], "no GPU node"),
    ({"gpus_per_member": "0.6", "members_per_worker": 2}, [NodeType("box", cpus=8, gpus=4)], "<= 1"),
    ({"gpus_per_member": "0.5", "cpus_per_member": 4}, [NodeType("box", cpus=4, gpus=1)], "run.cpus_per_member"),
    ({"cpus_per_member": 3}, [NodeType("laptop", cpus=2)], "at most 0"),
    ({"gpus_per_member": "1"}, [NodeType("box", cpus=8, gpus=1)], "at most 1"),
])
def test_requests_no_node_type_can_hold_are_one_line(kwargs, types, match):
    with pytest.raises(UserError, match=match) as e:
        plan(2, types, **kwargs)
    assert "\n" not in str(e.value)


def test_shipped_cluster_yaml_holds_the_five_member_recipe():
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        cfg = yaml.safe_load(f)
    head = cfg["available_node_types"][cfg["head_node_type"]]["resources"]
    types = node_types_from_config(cfg, [NodeType("head", head["CPU"], head.get("GPU", 0), driver=True)])
    p = plan(5, types)
    assert p.use_gpu and p.workers == 5 and "head" not in p.holders and _fits(p, types)


def test_cluster_wide_max_workers_caps_every_type():
    cfg = {"head_node_type": "head", "max_workers": 2, "available_node_types": {
        "head": {"resources": {"CPU": 8}},
        "on_demand": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 2},
        "spot": {"resources": {"CPU": 4, "GPU": 1}, "max_workers": 2}}}
    types = node_types_from_config(cfg, [NodeType("head", 8, driver=True)])
    assert sum(t.more for t in types) == 2
    crowded = {**cfg, "max_workers": 4, "available_node_types": {   # CPU types listed first never crowd out GPUs
        "cpu": {"resources": {"CPU": 8}, "max_workers": 4}, **cfg["available_node_types"]}}
    assert plan(2, node_types_from_config(crowded, []), gpus_per_member="1").holders
    assert plan(4, types).members_per_worker == 2   # two GPUs at most: members packed in pairs
    with pytest.raises(UserError, match="at most 2"):
        plan(4, types, gpus_per_member="1")


def test_unplaced_workers_are_given_up_with_one_line(monkeypatch):
    """A plan that fits the node types but is never placed (other jobs hold the GPUs): Ray
    Train would wait for ever; the driver's watch says what it waits for, then gives up."""
    from runs import tiny_config

    from raypose.train import run as ray_run
    clock = [1000.0]
    monkeypatch.setattr(ray_run.time, "time", lambda: clock[0])
    placed = [False]
    monkeypatch.setattr(ray_run, "_groups", lambda: {"other-job": {}})
    monkeypatch.setattr(ray_run, "_placed", lambda p, before: placed[0] and before == {"other-job"})
    p = plan(2, [NodeType("box", cpus=8, gpus=1, driver=True)])
    lines = []
    check = ray_run.placement_watch(tiny_config("unused", **{"run.placement_timeout": 60}), p, lines.append)
    for t in (10, 30):
        clock[0] = 1000 + t
        check()
    assert len(lines) == 1 and "waiting for 1 worker(s)" in lines[0] and "60s" in lines[0]
    placed[0] = True   # placed at last: the wait starts again from here
    clock[0] = 1055
    check()
    placed[0] = False
    clock[0] = 1100
    check()
    clock[0] = 1121
    with pytest.raises(UserError, match=r"not placed after 66s \(--placement-timeout 60\)") as e:
        check()
    assert "\n" not in str(e.value)
    default = ray_run.placement_watch(tiny_config("unused"), p, lines.append)
    clock[0] += 59
    default()   # 60 s by default where no node can be started...
    clock[0] += 6
    with pytest.raises(UserError, match="--placement-timeout 60"):
        default()
    grow = plan(2, [NodeType("head", 8, driver=True), NodeType("gpu", 4, 1, up=0, more=2)])
    watch = ray_run.placement_watch(tiny_config("unused"), grow, lines.append)
    clock[0] += 600
    watch()   # the autoscaler may still be starting nodes: 900 s by default
    assert "the autoscaler starts nodes" in lines[-1] and "900s" in lines[-1]
    clock[0] += 301
    with pytest.raises(UserError, match="--placement-timeout 900"):
        watch()


def test_only_this_fits_placement_group_counts(monkeypatch):
    """Ray's table lists every job's groups: one of the same shape made before this fit is not ours."""
    from raypose.train import run as ray_run
    p = plan(2, [NodeType("box", cpus=8, gpus=1, driver=True)], gpus_per_member="0.5")
    ours = {"state": "CREATED", "bundles": {0: {"CPU": 4.0, "GPU": 0.5}, 1: {"CPU": 4.0, "GPU": 0.5}}}
    monkeypatch.setattr(ray_run, "_groups", lambda: {"a": ours, "b": {**ours, "state": "PENDING"}})
    assert ray_run._placed(p, set()) and not ray_run._placed(p, {"a"})
    monkeypatch.setattr(ray_run, "_groups", lambda: {"c": {**ours, "bundles": {0: ours["bundles"][0]}}})
    assert not ray_run._placed(p, set())   # one bundle: not this plan's two workers


def test_tune_runs_as_many_trials_at_once_as_the_node_types_hold():
    """raypose tune's concurrency: whole runs of the largest ensemble side by side, at least one."""
    laptop = [NodeType("box", cpus=2, driver=True)]
    assert at_once(plan(6, laptop), laptop) == 1   # a run shares the node's CPUs
    gpus = [NodeType("head", cpus=8, driver=True), NodeType("gpu", cpus=32, gpus=8, up=1)]
    assert at_once(plan(4, gpus), gpus) == 1   # a run's 4 workers take the node's 32 CPUs between them
    assert at_once(plan(4, gpus, cpus_per_member=4), gpus) == 2   # 4 CPUs each: two runs share the node
    two = [NodeType("head", cpus=8, driver=True), NodeType("gpu", cpus=32, gpus=8, up=2)]
    assert at_once(plan(3, two), two) == 2   # 10 CPUs a worker: 3 workers a node

"""cluster.yaml: what `ray up` validates, and versions pinned to what CI tests (the running
clusters are in test_gpu_scheduling.py)."""
import copy
import os
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def test_cluster_yaml_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        raw = yaml.safe_load(f)
    cfg = prepare_config(copy.deepcopy(raw))
    validate_config(cfg)                      # what `ray up` runs before touching the cloud
    assert cfg["head_node_type"] == "head"
    workers = cfg["available_node_types"]["gpu_worker"]
    assert workers["max_workers"] >= 1 and "g5" in workers["node_config"]["InstanceType"]
    assert any("pip install" in c and "raypose" in c for c in cfg["setup_commands"])
    bad = copy.deepcopy(raw)                  # the validation is real: a typo is caught
    bad["available_node_types"]["gpu_worker"]["max_workerz"] = 3
    with pytest.raises(Exception, match="max_workerz"):
        validate_config(prepare_config(bad))


def _project_pins():
    """(Ray version, lowest Python, torch version) as pyproject.toml and constraints-cpu.txt pin them."""
    import re
    import tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    ray = [m.group(1) for d in project["dependencies"] if (m := re.fullmatch(r"ray(?:\[[^\]]*\])?==(\S+)", d))]
    python = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["requires-python"].strip())
    with open(os.path.join(ROOT, "constraints-cpu.txt")) as f:
        torch = [m.group(1) for line in f if (m := re.match(r"\s*torch==([^\s+#;]+)", line))]
    assert len(ray) == 1 and python and len(torch) == 1, (ray, project["requires-python"], torch)
    return ray[0], f"py{python.group(1)}{python.group(2)}", torch[0]


def _installs_raypose(command):
    import re
    return "pip install" in command and re.search(r"(?:^|\s)-e\s+\S*raypose\S*", command) is not None


def test_cluster_yaml_pins_what_ci_tests():
    """The images and pip lines of cluster.yaml name the versions the project pins: the Ray of
    pyproject.toml, its lowest Python, constraints-cpu.txt's torch (a CUDA build on GPU nodes,
    the CPU wheel on the head)."""
    import re
    ray_pin, py_tag, torch_pin = _project_pins()
    with open(os.path.join(ROOT, "cluster.yaml")) as f:
        cfg = yaml.safe_load(f)
    image = re.compile(r"rayproject/ray:(\d[\w.]*)-(py\d+)-(cpu|cu\d+)")
    docker = cfg["docker"]
    head_image, worker_image = image.fullmatch(docker["head_image"]), image.fullmatch(docker["worker_image"])
    assert head_image and worker_image, docker
    for m in (head_image, worker_image):
        assert (m.group(1), m.group(2)) == (ray_pin, py_tag), m.group(0)
    assert head_image.group(3) == "cpu" and worker_image.group(3).startswith("cu")

    types = cfg["available_node_types"]
    head_cmds = cfg.get("setup_commands", []) + cfg.get("head_setup_commands", [])
    gpu_types = {n: t for n, t in types.items() if t.get("resources", {}).get("GPU", 0) > 0}
    assert gpu_types and cfg["head_node_type"] not in gpu_types
    every = head_cmds + cfg.get("worker_setup_commands", []) + [c for t in types.values()
                                                                  for c in t.get("worker_setup_commands", [])]
    pip = [c for c in every if "pip install" in c]
    for c in pip:   # any Ray a pip line names is the pinned one
        assert all(v == ray_pin for v in re.findall(r"\bray(?:\[[^\]]*\])?==(\S+)", c)), c
    for name, t in gpu_types.items():
        # a GPU type must bring its own commands: the global ones install the head's CPU torch
        cmds = t.get("worker_setup_commands")
        assert cmds, f"{name}: no worker_setup_commands, so it would run the head's CPU install"
        torch_lines = [c for c in cmds if re.search(r"pip install.*\btorch\b", c)]
        assert len(torch_lines) == 1, (name, cmds)
        assert re.search(r"\btorch==([^\s+]+)", torch_lines[0]).group(1) == torch_pin, torch_lines[0]
        index = re.search(r"--(?:extra-)?index-url\s+\S*/whl/(cu\d+)\b", torch_lines[0])
        assert index and index.group(1) == worker_image.group(3), (torch_lines[0], docker["worker_image"])
        assert cmds.index(torch_lines[0]) < min(i for i, c in enumerate(cmds) if _installs_raypose(c))
        assert not any("constraints-cpu" in c for c in cmds), name
    head_torch = [c for c in head_cmds if re.search(r"pip install.*\btorch\b", c)]
    assert head_torch, "the head installs torch nowhere before raypose, so pip would take PyPI's CUDA build"
    for c in head_cmds:   # the head: the CPU index and the CPU constraints, never a CUDA wheel
        assert not re.search(r"/whl/cu\d+|\+cu\d+|nvidia-", c), c
    for c in head_torch:
        assert "/whl/cpu" in c and "constraints-cpu.txt" in c, c
    first_raypose = min(i for i, c in enumerate(head_cmds) if _installs_raypose(c))
    assert head_cmds.index(head_torch[0]) < first_raypose
    assert "constraints-cpu.txt" in head_cmds[first_raypose]

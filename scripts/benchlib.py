"""What the benchmark scripts share: where and when they ran, which data sets, the JSON they write."""
import json
import os
import platform
import sys
import time

import torch

REAL_DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "humaneva")


def header(threads=None):
    """Machine, date and the exact command, stored beside every result."""
    threads = f", {threads} threads" if threads else ""
    return {"machine": f"{platform.node()} {os.cpu_count()} CPUs{threads}, torch {torch.__version__}",
            "date": time.strftime("%Y-%m-%d"), "command": " ".join(["python"] + sys.argv)}


def data_sets(real, synthetic_only=False):
    """[(name, --data value)]: synthetic always, real HumanEva-I where its files are."""
    sets = [("synthetic", "synthetic")]
    if synthetic_only:
        return sets
    if os.path.isfile(os.path.join(real, "data_3d_humaneva15.npz")):
        sets.append(("humaneva", os.path.abspath(real)))
    else:
        print(f"real HumanEva not found at {real}: synthetic only")
    return sets


def write(path, results):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {path}")

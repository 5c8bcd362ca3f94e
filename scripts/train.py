"""Entry point for `ray job submit --working-dir . -- python scripts/train.py --config ...`.

Same flags as `raypose train`. Inside a Ray job, RAY_ADDRESS points at the cluster, so the
run's members are scheduled on the cluster's workers.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from raypose.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))

"""VideoPose3D's own `run.py` on a data directory, up to its first training batch: the anchor of
scripts/bench_scale.py (how much memory and time the field's reference loop spends before it trains).

    python scripts/vp3d_first_batch.py --vp3d /path/to/VideoPose3D --data DIR -- -d h36m -k gt -arc 3,3,3 -ch 64

VideoPose3D reads data/data_3d_<d>.npz and data/data_2d_<d>_<k>.npz relative to its working
directory: this links DIR's files into a temporary one, runs run.py there unchanged, and stops
the process at the first batch its ChunkedGenerator yields, printing `first_batch_s` (seconds
since start) as JSON. Nothing of VideoPose3D is copied into this repository.
"""
import argparse
import json
import os
import runpy
import sys
import tempfile
import time


def main():
    t0 = time.time()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vp3d", required=True, help="a checkout of facebookresearch/VideoPose3D")
    ap.add_argument("--data", required=True, help="a directory holding data_3d_*.npz and data_2d_*.npz")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="vp3d-")
    os.makedirs(os.path.join(work, "data"))
    os.makedirs(os.path.join(work, "checkpoint"))
    for name in os.listdir(a.data):
        if name.endswith(".npz"):
            os.symlink(os.path.abspath(os.path.join(a.data, name)), os.path.join(work, "data", name))
    sys.path.insert(0, os.path.abspath(a.vp3d))
    os.chdir(work)
    from common import generators  # VideoPose3D's own module

    first = generators.ChunkedGenerator.next_epoch

    def next_epoch(self):
        for batch in first(self):
            print(json.dumps({"first_batch_s": round(time.time() - t0, 2)}), flush=True)
            os._exit(0)
            yield batch
    generators.ChunkedGenerator.next_epoch = next_epoch
    sys.argv = ["run.py"] + (a.args[1:] if a.args[:1] == ["--"] else a.args)
    runpy.run_path(os.path.join(os.path.abspath(a.vp3d), "run.py"), run_name="__main__")


if __name__ == "__main__":
    main()

"""Peak memory of a command and every process it starts (Ray's included), as the field should count it.

    python scripts/memwatch.py [--json OUT] [--every 0.5] -- raypose train ...

RSS counts Ray's shared object store once per process that maps it; the proportional set size
(PSS, /proc/PID/smaps_rollup) splits shared pages between the processes that map them, so the
sum over the process tree is what the node really spends. Every `--every` seconds this sums the
PSS of the command and all its descendants, by role: the driver (the command itself), Ray Train's
workers (`ray::RayTrainWorker`), Ray Data and other Ray workers/actors (`ray::...`), and Ray's own
daemons (raylet, GCS, dashboard...). The object store's resident bytes are read from the growth of
/proc/meminfo's Shmem (Ray's plasma store lives in /dev/shm). Linux only.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def _children():
    """{pid: [child pids]} of every process."""
    kids = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(pid))
    return kids


def tree(root):
    """`root` and all its descendants."""
    kids, out, todo = _children(), [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def role(pid, root):
    if pid == root:
        return "driver"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().decode(errors="replace").replace("\0", " ")
    except OSError:
        return "gone"
    if "RayTrainWorker" in cmd:
        return "train_worker"
    if cmd.startswith("ray::"):
        return "ray_worker"
    return "ray_daemons"


def shmem_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Shmem:"):
                return int(line.split()[1])
    return 0


class Watch:
    """Samples a process tree's PSS by role; `peaks` in MiB after `stop()`."""

    def __init__(self, root, every=0.5):
        self.root, self.every, self.shm0 = root, every, shmem_kib()
        self.peak = {"total": 0.0, "driver": 0.0, "train_worker_each": 0.0, "train_workers": 0.0,
                     "ray_worker": 0.0, "ray_daemons": 0.0, "object_store": 0.0}
        self.samples = 0

    def sample(self):
        by = {}
        worst_worker = 0
        for pid in tree(self.root):
            kib = pss_kib(pid)
            r = role(pid, self.root)
            by[r] = by.get(r, 0) + kib
            if r == "train_worker":
                worst_worker = max(worst_worker, kib)
        mib = {k: v / 1024 for k, v in by.items()}
        now = {"total": sum(mib.values()), "driver": mib.get("driver", 0.0),
               "train_worker_each": worst_worker / 1024, "train_workers": mib.get("train_worker", 0.0),
               "ray_worker": mib.get("ray_worker", 0.0), "ray_daemons": mib.get("ray_daemons", 0.0),
               "object_store": max(0, shmem_kib() - self.shm0) / 1024}
        for k, v in now.items():
            self.peak[k] = max(self.peak[k], v)
        self.samples += 1
        return now


def run(cmd, every=0.5, echo=True, lines=None, cwd=None, phase=None):
    """Run `cmd` (a list), sampling its tree; returns (exit status, peaks in MiB, wall seconds).
    `lines`, a list, receives (seconds since start, line) of everything the command prints;
    `phase`, a text: the peaks from the first line holding it on are also kept apart
    (peaks["after"]: a run's training, once its windows are built)."""
    import threading
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE if lines is not None else None,
                            stderr=subprocess.STDOUT if lines is not None else None, text=True)

    def read():
        for line in proc.stdout:
            lines.append((time.time() - t0, line.rstrip("\n")))
            if echo:
                print(line, end="", flush=True)
    reader = threading.Thread(target=read, daemon=True) if lines is not None else None
    if reader:
        reader.start()
    watch, after = Watch(proc.pid, every), None
    while proc.poll() is None:
        watch.sample()
        if phase and after is None and any(phase in text for _, text in lines or ()):
            after = Watch(proc.pid, every)
            after.shm0 = watch.shm0
        if after is not None:
            after.sample()
        time.sleep(every)
    if reader:
        reader.join(10)
    wall = time.time() - t0
    if after is not None:
        watch.peak["after"] = {k: round(v, 1) for k, v in after.peak.items()}
    if echo:
        print("memwatch: peak PSS MiB " + ", ".join(f"{k} {v:.0f}" for k, v in watch.peak.items()
                                                    if not isinstance(v, dict))
              + f"; {wall:.0f} s, exit {proc.returncode}", file=sys.stderr)
    return proc.returncode, {k: v if isinstance(v, dict) else round(v, 1) for k, v in watch.peak.items()}, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write {exit, peaks_mib, wall_s, command} here")
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    rc, peaks, wall = run(cmd, args.every)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"exit": rc, "peaks_mib": peaks, "wall_s": round(wall, 1), "command": " ".join(cmd)}, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())

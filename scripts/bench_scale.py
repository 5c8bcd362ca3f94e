"""The cost curve of Human3.6M-sized data: memory and time against frames, with VideoPose3D's own
loop on the same files as the anchor.

    python scripts/bench_scale.py --vp3d /path/to/VideoPose3D [--sizes 50000,200000,800000,3200000]

For each size, synthetic data in Human3.6M's layout (`raypose synth --layout h36m --frames N`;
800,000 is Human3.6M's size: 2.3 million training frame-views over 4 cameras), then one training
iteration of 64-channel members (`--subset-size 20000 --epochs 1`: the cost of the data, not of
training), 5 members from the npz files up to --table-from, 2 members from a table prepared by
`raypose prepare` beyond it; a 2-member run at --delta-at gives what a further member costs.
Measured: seconds to the windows being built (Ray started, frames read, windows in the object
store), to the first training step, for the iteration, the members' samples per second; `raypose
predict` on the same 2D; VideoPose3D's run.py up to its first batch (scripts/vp3d_first_batch.py).
Memory is the peak of the summed proportional set size (PSS) of each command's process tree, by
role (scripts/memwatch.py), and the object store's resident bytes. Writes benchmarks/scale.json
and docs/scale.png; the docs table comes from the JSON (scripts/bench_table.py).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import memwatch  # noqa: E402
from benchlib import header, write  # noqa: E402

TRAIN = ["--iterations", "1", "--epochs", "1", "--channels", "64", "--subset-size", "20000"]


def cpu():
    """The CPU's model name and its bf16-related flags (benchmarks record where they ran)."""
    model, flags = "", []
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and not model:
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = [x for x in line.split(":", 1)[1].split() if "bf16" in x or x.startswith("amx")]
    return {"model": model, "bf16_flags": flags, "cpus": os.cpu_count()}


def timed(cmd, cwd=None, phase=None):
    lines, t0 = [], time.time()
    rc, peaks, wall = memwatch.run(cmd, lines=lines, echo=False, cwd=cwd, phase=phase)
    if rc != 0:
        print("\n".join(text for _, text in lines[-20:]))
        raise SystemExit(f"{' '.join(cmd)}: exit {rc}")
    return {"peak_mib": peaks, "wall_s": round(wall, 1)}, lines, t0


def data(out, frames):
    d = os.path.join(out, f"h36m_{frames}")
    if not os.path.isfile(os.path.join(d, "data_2d_h36m_gt.npz")):
        timed(["raypose", "synth", "--layout", "h36m", "--frames", str(frames), "--out", d])
    return d


def train(source, run, members):
    """One iteration; its timings from the driver's lines and the iteration record."""
    result, lines, t0 = timed(["raypose", "train", "--data", source, "--members", str(members), "--out", run,
                               *TRAIN], phase=" members on ")   # the driver's line once the windows are built
    result["training_peak_mib"] = result["peak_mib"].pop("after", None)
    with open(os.path.join(run, "checkpoints", "iter1.json")) as f:
        record = json.load(f)
    started = min(w["started"] for w in record["timing"]["workers"])
    built = next(t for t, text in lines if text.startswith("raypose:") and " members on " in text)
    members_t = record["timing"]["members"]
    result.update(members=members, windows_built_s=round(built, 1), first_step_s=round(started - t0, 1),
                  iteration_s=round(record["time"] - started, 1),
                  samples_per_s=round(sum(m["samples"] / m["train_s"] for m in members_t) / len(members_t), 1),
                  train_windows=record["train_windows"]["labelled"], eval_frames_scored=record["eval_frames"],
                  p_mpjpe_mm=round(record["ensemble"]["p_mpjpe_mm"], 2))
    return result


def throughput(out, sizes, repeats=3):
    """Samples per second of one 64-channel member on windows of each size, in this process, the sizes
    alternated `repeats` times (the same draw of 20,000 windows, one epoch, flip on): whether windowing
    slows down with the data's size. The runs' own figures mix in Ray and 5 members on 2 cores."""
    import torch

    from raypose import config as C
    from raypose.data import splits
    from raypose.data.source import open_source, source_layout
    from raypose.train.member import Member, TrainSet, draw_sample, train_members
    from raypose.train.windowset import from_source
    torch.set_num_threads(1)
    cfg = C.finalize(C.with_values(C.Config(), {"model.channels": 64, "train.subset_size": 20000}))
    sets = {}
    for n in sizes:
        src = open_source(C.with_values(cfg, {"data.path": data(out, n)}).data)
        keys, _ = splits.select(src.chunks, cfg.data.split, None, source=src.description, dataset=src.dataset)
        layout = source_layout(src)
        ws = from_source(cfg, layout, src, (keys, [], keys[:1]))
        sets[n] = (TrainSet(ws.train, True, layout), layout)
    rates = {n: [] for n in sizes}
    for r in range(repeats):
        for n, (ts, layout) in sets.items():
            m = Member(0, cfg, layout)
            sample = draw_sample(ts.n, 0, 1, r + 1, "bootstrap", 20000, 0)
            t0 = time.time()
            train_members([m], ts, [sample], r + 1, 1)
            rates[n].append(2 * len(sample) / (time.time() - t0))
    best = {n: max(v) for n, v in rates.items()}
    return {"threads": 1, "samples_per_s": {str(n): round(v, 1) for n, v in best.items()},
            "ratio_to_smallest": {str(n): round(v / best[sizes[0]], 3) for n, v in best.items()},
            "windows": {str(n): sets[n][0].n for n in sizes}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50000,200000,800000,3200000")
    ap.add_argument("--table-from", type=int, default=3_200_000, help="sizes from here train from a prepared table")
    ap.add_argument("--delta-at", type=int, default=800_000, help="also a 2-member run at this size")
    ap.add_argument("--vp3d", help="a VideoPose3D checkout: its run.py as the anchor (skipped without)")
    ap.add_argument("--out", default="bench_out/scale")
    ap.add_argument("--json", default="benchmarks/scale.json")
    ap.add_argument("--figure", default="docs/scale.png")
    ap.add_argument("--no-predict", action="store_true")
    ap.add_argument("--throughput-only", action="store_true",
                    help="only the in-process samples/s of the smallest and the 800,000-frame windows, "
                         "added to an existing --json")
    a = ap.parse_args()
    if a.throughput_only:
        with open(a.json) as f:
            results = json.load(f)
        results["throughput"] = throughput(a.out, [50_000, 800_000])
        write(a.json, results)
        return
    os.makedirs(a.out, exist_ok=True)
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        d = data(a.out, n)
        row = {"frames": n, "npz_bytes": sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))}
        source, members = d, 5
        if n >= a.table_from:
            table = os.path.join(a.out, f"table_{n}")
            if not os.path.isfile(os.path.join(table, "_raypose.json")):
                row["prepare"], _, _ = timed(["raypose", "prepare", "--npz-dir", d, "--out", table, "--overwrite"])
            source, members = table, 2
            row["input"] = "prepared table"
        else:
            row["input"] = "npz"
        run = os.path.join(a.out, f"run_{n}_{members}")
        row["train"] = train(source, run, members) if not os.path.isdir(run) or _rm(run) else None
        if n == a.delta_at and members != 2:
            run2 = os.path.join(a.out, f"run_{n}_2")
            _rm(run2)
            row["train_2_members"] = train(source, run2, 2)
        if not a.no_predict:
            suffix = ".parquet" if n >= a.table_from else ".npz"
            row["predict"], _, _ = timed(["raypose", "predict", "--run", run, "--input",
                                          os.path.join(d, "data_2d_h36m_gt.npz"),
                                          "--out", os.path.join(a.out, f"pred_{n}{suffix}"), "--overwrite"])
            row["predict"]["output"] = suffix[1:]
        if a.vp3d:
            row["videopose3d"], lines, _ = timed(
                [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "vp3d_first_batch.py"),
                 "--vp3d", a.vp3d, "--data", d, "--", "-d", "h36m", "-k", "gt", "-arc", "3,3,3", "-ch", "64",
                 "-e", "1"])
            row["videopose3d"]["first_batch_s"] = next(json.loads(t)["first_batch_s"] for _, t in lines
                                                       if t.startswith('{"first_batch_s"'))
        rows.append(row)
        print(json.dumps(row), flush=True)
        _save(a, rows)
    figure(rows, a.figure)


def _rm(path):
    import shutil
    shutil.rmtree(path, ignore_errors=True)
    return True


def _save(a, rows):
    kept, old = {}, []
    if os.path.isfile(a.json):   # a throughput measured before stays, and the rows of sizes not rerun
        with open(a.json) as f:
            before = json.load(f)
        kept = {k: v for k, v in before.items() if k == "throughput"}
        done = {r["frames"] for r in rows}
        old = [r for r in before.get("rows", []) if r["frames"] not in done]
    rows = sorted(old + rows, key=lambda r: r["frames"])
    write(a.json, {**header(), "cpu": cpu(), "train_options": " ".join(TRAIN), "rows": rows, **kept})


def figure(rows, path):
    """Log-log: peak memory (left) and seconds (right) against frames."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4.2))
    FigureCanvasAgg(fig)
    mem, sec = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    x = [r["frames"] for r in rows]

    def line(ax, get, label, **kw):
        pts = [(f, v) for f, r in zip(x, rows) if (v := get(r)) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label, **kw)
    g = lambda *keys: lambda r: _dig(r, keys)   # noqa: E731
    line(mem, lambda r: _gib(_dig(r, ("train", "peak_mib", "total"))), "raypose train, all processes (PSS)", lw=2)
    line(mem, lambda r: _gib(_dig(r, ("train", "peak_mib", "driver"))), "its driver")
    line(mem, lambda r: _gib(_dig(r, ("train", "peak_mib", "train_worker_each"))), "its largest worker")
    line(mem, lambda r: _gib(_dig(r, ("train", "peak_mib", "object_store"))), "its object store")
    line(mem, lambda r: _gib(_dig(r, ("predict", "peak_mib", "total"))), "raypose predict", ls="--")
    line(mem, lambda r: _gib(_dig(r, ("videopose3d", "peak_mib", "total"))), "VideoPose3D run.py to its first batch",
         color="k", ls=":")
    mem.set(xscale="log", yscale="log", xlabel="frames per camera (synthetic Human3.6M layout, 4 cameras)",
            ylabel="peak memory (GiB)", title="memory (5 members; 2 from a prepared table at 3.2M)")
    line(sec, g("train", "windows_built_s"), "to windows built (Ray up, frames read)")
    line(sec, g("train", "first_step_s"), "to the first training step")
    line(sec, g("train", "iteration_s"), "one iteration (subset 20,000, 1 epoch)")
    line(sec, g("predict", "wall_s"), "raypose predict", ls="--")
    line(sec, g("videopose3d", "first_batch_s"), "VideoPose3D to its first batch", color="k", ls=":")
    sec.set(xscale="log", yscale="log", xlabel="frames per camera", ylabel="seconds", title="time")
    for ax in (mem, sec):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def _dig(r, keys):
    for k in keys:
        if not isinstance(r, dict) or k not in r:
            return None
        r = r[k]
    return r


def _gib(mib):
    return None if mib is None else mib / 1024


if __name__ == "__main__":
    main()

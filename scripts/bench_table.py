"""Render the README's benchmark tables from the JSON the benchmarks wrote (never typed by hand).

    python scripts/bench_table.py            # rewrites the marked blocks of README.md

A block sits between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`; NAME is a JSON file in
benchmarks/ (ensemble, train, ...). A missing JSON leaves its block untouched.
"""
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ensemble(r):
    aggs = [m for m in r["runs"][0]["corrupted"] if m != "corrupt_member_alone_p_mpjpe"]
    rows = ["| data | ensemble (mean) | mean member | best member | "
            + " | ".join(f"{m}: clean / 1 of 5 corrupted" for m in aggs)
            + " | Spearman (joint-frame / frame) | AUSE | spread at 5 px noise |",
            "|---" * (7 + len(aggs)) + "|"]
    for run in r["runs"]:
        c = run["corrupted"]
        ref = c["mean"]["clean_p_mpjpe"]   # the clean ensemble every aggregate is held against
        rows.append(
            f"| {run['data']} ({run['members']} x {run['channels']} ch, {run['iterations']} x {run['epochs_per_iteration']} epochs) "
            f"| {run['protocol_summary']['p_mpjpe']:.1f} mm | {run['mean_member']['p_mpjpe']:.1f} mm "
            f"| {run['best_member_p_mpjpe']:.1f} mm | "
            + " | ".join(f"{c[m]['clean_p_mpjpe']:.1f} / {c[m]['corrupted_p_mpjpe']:.1f} ({100 * (c[m]['corrupted_p_mpjpe'] / ref - 1):+.0f}%)" for m in aggs)
            + f" | {run['calibration']['spearman']:.2f} / {run['calibration']['spearman_frame']:.2f} | {run['calibration']['ause']:.3f} "
            f"| x{run['noise']['spread_ratio']:.2f} (error {run['noise']['error_mm']['p_mpjpe']:.1f} mm) |")
    rows.append("")
    rows.append("Ensemble and member columns: P-MPJPE, protocol 2 averaged over actions then subjects. "
                "Aggregate columns: P-MPJPE over all evaluation frames, clean and with member 0 "
                "replaced by random weights; the percentage is against the clean mean ensemble.")
    return rows


def _train(r):
    rows = ["| member (batch 128, flip on) | samples/s | with Conv1d kernels | MFLOP/sample (fwd+bwd) | MFU "
            "| torch.compile / eager (compile time) |", "|---|---|---|---|---|---|"]
    for name, m in r["models"].items():
        comp = (f"{m['compiled_vs_eager']:.2f}x ({m['compile_s']:.0f} s)" if m.get("compiled_vs_eager") else "-")
        rows.append(f"| {name} | {m['samples_per_s']:,.0f} | {m['conv1d_samples_per_s']:,.0f} "
                    f"| {1000 * m['gflop_per_sample']:.1f} | {100 * m['mfu']:.0f}% | {comp} |")
    rows.append(f"| fp32 matmul peak | {r['peak_gflops']:.0f} GFLOP/s | | | | |")
    return rows


def _semi(r):
    ablation = all("gated_no_fit" in run["modes"] for run in r["runs"])
    keys = ("full", "labelled_only", "schedule", "gated") + (("gated_no_fit",) if ablation else ())
    closing = ("schedule", "gated") + (("gated_no_fit",) if ablation else ())
    rows = ["| data | fully labelled | labelled only | schedule (2022) | gated | "
            + ("gated without the 2D and bone fits | " if ablation else "")
            + "gap closed: " + " / ".join(closing) + " |",
            "|---" * (len(keys) + 2) + "|"]
    for run in r["runs"]:
        m = run["modes"]
        closed = " / ".join(f"{100 * m[k]['gap_closed']:.0f}%" if m[k]["gap_closed"] is not None else "-"
                            for k in closing)
        rows.append(f"| {run['data']} | " + " | ".join(f"{m[k]['p_mpjpe']:.1f} mm" for k in keys) + f" | {closed} |")
    return rows


def _pseudo_labels(r):
    rows = [f"| pseudo-label ({r['unlabelled_windows']:,} unlabelled windows) | MPJPE | P-MPJPE "
            f"| mean distance from the mean pose (truth {r['truth_distance_from_mean_pose_m']:.3f} m) "
            "| Spearman(spread, error) per frame |", "|---|---|---|---|---|"]
    for name, x in r["pseudo_labels"].items():
        rows.append(f"| {name} | {x['mpjpe']:.1f} mm | {x['p_mpjpe']:.1f} mm | {x['distance_from_mean_pose_m']:.3f} m "
                    f"| {x['spearman_spread_error']:.2f} |")
    return rows


def _scaling(r):
    rows = ["| run | members / workers | wall | member-samples/s | vs one member alone (end to end / training) "
            "| Ray share | start-up | checkpoints | barrier | aggregation | ensemble P-MPJPE |",
            "|---" * 11 + "|"]
    for name, x in r["runs"].items():
        rows.append(f"| {name} | {x['members']} / {x['workers']}"
                    + (f" (packed {x['members_per_worker']})" if x["members_per_worker"] > 1 else "")
                    + f" | {x['wall_s']:.0f} s | {x['member_samples_per_s']:,.0f} "
                    f"| {x['ratio_vs_alone']:.2f} / {x['train_ratio_vs_alone']:.2f} | {100 * x['ray_share']:.1f}% "
                    f"| {x['startup_s']:.1f} s | {x['checkpoint_s']:.1f} s | {x['barrier_s']:.1f} s "
                    f"| {x['aggregate_s']:.1f} s | {x['ensemble_p_mpjpe_mm']:.1f} mm |")
    rows.append("")
    rows.append("Synthetic data, demo members (128 channels, 12 epochs per iteration, 2 iterations; the long "
                "run iterates until its time budget). Ray share: wall time that is not the slowest "
                "worker's training or evaluation.")
    return rows


def _pack(r):
    rows = [f"| members x channels | separate processes ({r['cpus']} CPUs shared) | one process, one after another "
            "| one process, packed (vmap) | packed / separate |", "|---|---|---|---|---|"]
    for c in r["cases"]:
        rows.append(f"| {c['members']} x {c['channels']} | {c['separate']:,.0f} | {c['sequential']:,.0f} "
                    f"| {c['packed']:,.0f} | {c['packed_vs_separate']:.2f} |")
    rows.append("")
    rows.append("Member-samples/s, batch 128, strided form.")
    return rows


def _infer(r):
    return ["| ensemble | frames | ensemble frames/s | member-frames/s | GFLOP per member-frame (flip TTA) | of fp32 peak |",
            "|---|---|---|---|---|---|",
            f"| {r['members']} x {r['channels']} ch | {r['frames']:,} in {r['sequences']} sequences "
            f"| {r['ensemble_frames_per_s']:,.0f} | {r['member_frames_per_s']:,.0f} "
            f"| {r['gflop_per_member_frame']:.3f} | {100 * r['flop_utilisation']:.0f}% of {r['peak_gflops']:.0f} GFLOP/s |"]


def _budget(r):
    subj = " / ".join(f"{v:.1f}" for v in r["p_mpjpe_per_subject"].values())
    return ["| budget | raypose train wall time | ensemble | epochs | P-MPJPE (S1 / S2 / S3) | tuned VideoPose3D | target |",
            "|---|---|---|---|---|---|---|",
            f"| {r['budget_s']:.0f} s | {r['train_wall_s']:.0f} s | {r['members']} x {r['channels']} ch, {r['aggregate']} "
            f"| {r['epochs']} | {r['p_mpjpe']:.1f} mm ({subj}) | {r['reference_tuned_videopose3d_mm']} mm | {r['target_mm']} mm |"]


def _performance(found):
    """Every headline figure of issue 6 beside its target, each with where, when and how."""
    rows = ["| figure | measured | target | machine | date | command |", "|---|---|---|---|---|---|"]

    def row(name, figure, value, target):
        if name in found:
            r = found[name]
            rows.append(f"| {figure} | {value(r)} | {target} | {r['machine']} | {r['date']} | `{r['command']}` |")
    row("train", "member training, 1024 ch", lambda r: f"{r['samples_per_s']:,.0f} samples/s, {100 * r['mfu']:.0f}% MFU",
        ">= 980 samples/s (2x VideoPose3D), >= 60% MFU")
    row("train", "member training, 256 ch", lambda r: f"{r['models']['c256']['samples_per_s']:,.0f} samples/s",
        ">= 7,760 samples/s (2x VideoPose3D)")
    row("ensemble_scaling", "2 members at once vs 1 alone (demo)",
        lambda r: f"{r['demo_ratio']:.2f} end to end, {r['demo_train_ratio']:.2f} training", ">= 0.9")
    row("ensemble_scaling", "Ray's share of the demo's wall time", lambda r: f"{100 * r['demo_ray_share']:.0f}%", "")
    row("ensemble_scaling", "Ray's share of a 10-minute run",
        lambda r: f"{100 * r['long_ray_share']:.1f}%" if r.get("long_ray_share") is not None else "not run", "<= 10%")
    row("pack", "packed members vs separate workers",
        lambda r: ", ".join(f"{c['members']} x {c['channels']} ch {c['packed_vs_separate']:.2f}x" for c in r["cases"]), "")
    row("infer", "ensemble inference, 5 x 1024 ch", lambda r: f"{100 * r['flop_utilisation']:.0f}% of peak", ">= 50% of peak")
    row("budget", "P-MPJPE after 10 minutes on HumanEva", lambda r: f"{r['p_mpjpe']:.1f} mm", "<= 17.4 mm")
    return rows


RENDER = {"budget": _budget, "infer": _infer, "ensemble": _ensemble, "train": _train, "semi_synthetic": _semi,
          "semi_humaneva": _semi, "ensemble_scaling": _scaling, "pack": _pack,
          "pseudo_labels": _pseudo_labels}


def render(name, data):
    rows = RENDER[name](data)
    rows.append("")
    rows.append(f"Measured {data['date']} on {data['machine']} with `{data['command']}`.")
    return "\n".join(rows)


def _load(name):
    src = os.path.join(ROOT, "benchmarks", f"{name}.json")
    if not os.path.isfile(src):
        return None
    with open(src) as f:
        return json.load(f)


def main():
    path = os.path.join(ROOT, "README.md")
    text = open(path).read()
    found = {name: data for name in RENDER if (data := _load(name)) is not None}
    blocks = {name: render(name, data) for name, data in found.items()}
    blocks["performance"] = "\n".join(_performance(found))
    for name, body in blocks.items():
        block = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.DOTALL)
        text, n = block.subn(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
        if n:
            print(f"README: {name} table")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())

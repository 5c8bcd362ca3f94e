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
    rows = ["| member (batch 128, flip on) | samples/s | with Conv1d kernels | MFLOP/sample (fwd+bwd) | MFU |",
            "|---|---|---|---|---|"]
    for name, m in r["models"].items():
        rows.append(f"| {name} | {m['samples_per_s']:,.0f} | {m['conv1d_samples_per_s']:,.0f} "
                    f"| {1000 * m['gflop_per_sample']:.1f} | {100 * m['mfu']:.0f}% |")
    rows.append(f"| fp32 matmul peak | {r['peak_gflops']:.0f} GFLOP/s | | | |")
    return rows


def _semi(r):
    rows = ["| data | fully labelled | labelled only | schedule (2022) | gated | gap closed: schedule / gated |",
            "|---|---|---|---|---|---|"]
    for run in r["runs"]:
        m = run["modes"]
        closed = " / ".join(f"{100 * m[k]['gap_closed']:.0f}%" if m[k]["gap_closed"] is not None else "-"
                            for k in ("schedule", "gated"))
        rows.append(f"| {run['data']} | " + " | ".join(f"{m[k]['p_mpjpe']:.1f} mm" for k in
                    ("full", "labelled_only", "schedule", "gated")) + f" | {closed} |")
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


RENDER = {"budget": _budget, "infer": _infer, "ensemble": _ensemble, "train": _train, "semi_synthetic": _semi,
          "semi_humaneva": _semi}


def render(name, data):
    rows = RENDER[name](data)
    rows.append("")
    rows.append(f"Measured {data['date']} on {data['machine']} with `{data['command']}`.")
    return "\n".join(rows)


def main():
    path = os.path.join(ROOT, "README.md")
    text = open(path).read()
    for name in RENDER:
        src = os.path.join(ROOT, "benchmarks", f"{name}.json")
        if not os.path.isfile(src):
            continue
        with open(src) as f:
            data = json.load(f)
        block = re.compile(rf"(<!-- bench:{name} -->\n).*?(<!-- /bench:{name} -->)", re.DOTALL)
        text, n = block.subn(lambda m: m.group(1) + render(name, data) + "\n" + m.group(2), text)
        if n:
            print(f"README: {name} table from {src}")
    with open(path, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())

"""The README's headline rows, each figure beside what it is measured against (`summary(found)`);
bench_table.py puts them in place."""
import re


def _radii_row(r):
    """The README's row for the calibrated radii (benchmarks/uncertainty.json)."""
    c, g = r["uncertainty"]["conditions"], r["uncertainty"]["spread_as_gaussian"]
    return (f"| HumanEva-I error radii at q = 0.9, same 10-minute config "
            f"| coverage **{c['clean']['coverage_at']['0.9']:.2f}** clean, "
            f"{c['gaussian 6px']['coverage_at']['0.9']:.2f} with 6 px 2D noise, "
            f"{c['detector-like']['coverage_at']['0.9']:.2f} detector-like; QCE {c['clean']['qce']:.3f} "
            f"| the members' spread read as a Gaussian: coverage {g['coverage_at']['0.9']:.2f}, QCE {g['qce']:.3f}")


def _filled_row(r):
    """The README's row for radii on 2D filled in from neighbouring frames."""
    g = r["uncertainty"]["conditions"].get("gaps 10%", {})
    if "filled" not in g:
        return "| error radii on filled-in 2D | not measured | |"
    f, o = g["filled"], g["observed"]
    before = r["alternatives"].get("+ 2D roughness (shipped before gap features)", {}).get("conditions", {})
    old = before.get("gaps 10%", {}).get("filled", {}).get("coverage_at", {}).get("0.9")
    return (f"| HumanEva-I error radii at q = 0.9 where 10% of the 2D was dropped and filled in "
            f"| coverage {f['coverage_at']['0.9']:.2f} on filled-in joints, radius "
            f"x{f['mean_radius_mm']['0.9'] / o['mean_radius_mm']['0.9']:.2f} of observed ones "
            f"| their error x{f['error_mm'] / o['error_mm']:.2f}" + (f"; without gap features coverage {old:.2f}"
                                                                   if old is not None else ""))


def _fov_row(r):
    c = list(r["conditions"].values())
    return (f"| HumanEva-I through a wide lens (f {r['wide_focal']:g}), `--fov-correction`, P-MPJPE "
            f"| {c[1]['corrected']['p_mpjpe_mm']:.1f} mm | as is {c[1]['as is']['p_mpjpe_mm']:.1f} mm (the person "
            f"closer: as is {c[2]['as is']['p_mpjpe_mm']:.1f}, corrected {c[2]['corrected']['p_mpjpe_mm']:.1f} mm)")


def _trajectory_row(r):
    return (f"| HumanEva-I root trajectory from 2D + pose, the run's fitted focal lengths "
            f"| {r['root_error_mm']:.0f} mm ({100 * r['relative_error']:.1f}% of the camera "
            f"distance) | depth {r['depth_error_mm']:.0f} mm, x-y {r['xy_error_mm']:.0f} mm")


_DATA_NAMES = {"humaneva": "HumanEva-I"}


def _budget_row(r):
    fit = f" ({r['fit_2d']['p_mpjpe']:.1f} mm fitted to 2D)" if "fit_2d" in r else ""
    return (f"| HumanEva-I P-MPJPE, {r['budget_s'] / 60:.0f} minutes of training on 2 CPU cores "
            f"({r['members']} x {r['channels']} ch) | **{r['p_mpjpe']:.1f} mm**{fit} "
            f"| tuned VideoPose3D {r['reference_tuned_videopose3d_mm']} mm; target {r['target_mm']} mm")


def _ensemble_row(r):
    run = next((x for x in r["runs"] if x["data"] == "humaneva"), r["runs"][0])
    name = _DATA_NAMES.get(run["data"], run["data"])
    return (f"| {name} P-MPJPE, ensemble of {run['members']} x {run['channels']} ch "
            f"| {run['protocol_summary']['p_mpjpe']:.1f} mm | mean member "
            f"{run['mean_member']['p_mpjpe']:.1f} mm, best {run['best_member_p_mpjpe']:.1f} mm")


def _corrupted_row(r):
    run = next((x for x in r["runs"] if x["data"] == "humaneva"), r["runs"][0])
    c = run["corrupted"]
    ref = c["mean"]["clean_p_mpjpe"]
    return (f"| the same, one member of {run['members']} given random weights: P-MPJPE change "
            f"| `weighted` {100 * (c['weighted']['corrupted_p_mpjpe'] / ref - 1):+.0f}% "
            f"| `mean` {100 * (c['mean']['corrupted_p_mpjpe'] / ref - 1):+.0f}%")


def _semi_row(r):
    m = r["runs"][0]["modes"]
    fraction = re.search(r"--fraction[ =]([0-9.]+)", r["command"])   # bench_semi.py's default: 0.4
    labelled = 100 * float(fraction.group(1) if fraction else 0.4)
    return (f"| {_DATA_NAMES.get(r['runs'][0]['data'], r['runs'][0]['data'])} P-MPJPE, {labelled:.0f}% labelled, "
            f"`--semi gated` | {m['gated']['p_mpjpe']:.1f} mm ({100 * m['gated']['gap_closed']:.0f}% of "
            f"the gap closed) | labelled only {m['labelled_only']['p_mpjpe']:.1f} mm, 2022 schedule "
            f"{m['schedule']['p_mpjpe']:.1f} mm, all labelled {m['full']['p_mpjpe']:.1f} mm")


def _tune_row(r):
    return (f"| HumanEva-I, config found by `raypose tune` on a validation split (10 minutes a trial), test P-MPJPE "
            f"| {r['found']['test_p_mpjpe']:.1f} mm (x{r['found_over_handpicked_test']:.3f}) "
            f"| hand-picked on the test split {r['handpicked']['test_p_mpjpe']:.1f} mm")


def _scale_row(r):
    """The README's row for Human3.6M-sized data (benchmarks/scale.json): the 800,000-frame run."""
    x = next((x for x in r["rows"] if x["frames"] == 800_000 and x.get("train")), None)
    if x is None:
        return "| Human3.6M-sized data | not measured | |"
    t, vp = x["train"], x.get("videopose3d")
    return (f"| Human3.6M-sized synthetic data (800,000 frames x 4 cameras), {t['members']} members x 64 ch, one "
            f"iteration: peak memory, all processes (PSS) | {t['peak_mib']['total'] / 1024:.1f} GiB "
            f"| before: 2 members killed at 23.5 GB (issue 26)"
            + (f"; VideoPose3D's run.py {vp['peak_mib']['total'] / 1024:.1f} GiB to its first batch" if vp else ""))


def summary(found):
    """The README's headline figures, each beside what it is measured against; the rest is in
    docs/benchmarks.md. `found` maps a benchmark's name to its JSON (missing ones are left out)."""
    rows = ["| result | raypose | compared with | from |", "|---|---|---|---|"]
    used = {}

    def row(name, text):
        r = found.get(name)
        if r is not None:
            rows.append(text(r) + f" | `{name}.json` |")
            used[name] = r

    row("budget", _budget_row)
    row("ensemble", _ensemble_row)
    row("ensemble", _corrupted_row)
    row("tune", _tune_row)
    row("semi_humaneva", _semi_row)

    row("uncertainty", _radii_row)
    row("uncertainty", _filled_row)
    row("coco_mapping", lambda r: f"| COCO-17 2D mapped onto HumanEva-15 (synthetic), P-MPJPE "
                                  f"| {r['coco_17_mapped_p_mpjpe']:.2f} mm (x{r['ratio']:.3f}) "
                                  f"| native 15-joint 2D {r['native_15_p_mpjpe']:.2f} mm")
    row("trajectory", _trajectory_row)
    row("fov", _fov_row)
    row("export", lambda r: f"| BVH export of HumanEva-I predictions: forward kinematics against the poses "
                            f"| {r['fk_vs_normalised_mm']['mean']:.1f} mm mean (bone lengths made constant) "
                            f"| the raw poses: {r['fk_vs_raw_mm']['mean']:.1f} mm mean")
    row("train", lambda r: f"| member training, 1024 ch | {r['samples_per_s']:,.0f} samples/s, "
                           f"{100 * r['mfu']:.0f}% MFU | target >= 980 (2x VideoPose3D)")
    row("ensemble_scaling", lambda r: "| Ray's share of a 10-minute run | "
        + (f"{100 * r['long_ray_share']:.1f}%" if r.get("long_ray_share") is not None else "not run")
        + " | target <= 10%")
    row("infer", lambda r: f"| ensemble inference, {r['members']} x {r['channels']} ch "
                           f"| {100 * r['flop_utilisation']:.0f}% of fp32 peak | target >= 50%")
    row("scale", _scale_row)
    machines = sorted({r["machine"].split(",")[0] for r in used.values()})
    dates = sorted({r["date"] for r in used.values()})
    rows += ["", f"Measured on {', '.join(machines)} ({', '.join(dates)}), in `benchmarks/`; "
             "commands in docs/benchmarks.md."]
    return rows

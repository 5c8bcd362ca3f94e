"""The docs' table of each benchmark JSON in benchmarks/ (`render(name, data)`); bench_table.py puts them
in place. One function per benchmark, named for it."""


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
            f"| {run['data']} ({run['members']} x {run['channels']} ch, "
            f"{run['iterations']} x {run['epochs_per_iteration']} epochs) "
            f"| {run['protocol_summary']['p_mpjpe']:.1f} mm | {run['mean_member']['p_mpjpe']:.1f} mm "
            f"| {run['best_member_p_mpjpe']:.1f} mm | "
            + " | ".join(f"{c[m]['clean_p_mpjpe']:.1f} / {c[m]['corrupted_p_mpjpe']:.1f} "
                         f"({100 * (c[m]['corrupted_p_mpjpe'] / ref - 1):+.0f}%)" for m in aggs)
            + f" | {run['calibration']['spearman']:.2f} / {run['calibration']['spearman_frame']:.2f} "
            f"| {run['calibration']['ause']:.3f} "
            f"| x{run['noise']['spread_ratio']:.2f} (error {run['noise']['error_mm']['p_mpjpe']:.1f} mm) |")
    rows.append("")
    rows.append("Ensemble and member columns: P-MPJPE, protocol 2 averaged over actions then subjects. "
                "Aggregate columns: P-MPJPE over all evaluation frames, clean and with member 0 "
                "replaced by random weights; the percentage is against the clean mean ensemble.")
    return rows


def _train(r):
    rows = ["| member (batch 128, flip on) | samples/s | MFLOP/sample (fwd+bwd) | MFU | with Conv1d kernels "
            "| with PyTorch's dropout | with foreach Adam | torch.compile / eager (compile time) |",
            "|---|---|---|---|---|---|---|---|"]

    def other(m, key):
        return f"{m[key]:,.0f}" if m.get(key) else "-"
    for name, m in r["models"].items():
        comp = (f"{m['compiled_vs_eager']:.2f}x ({m['compile_s']:.0f} s)" if m.get("compiled_vs_eager") else "-")
        rows.append(f"| {name} | {m['samples_per_s']:,.0f} | {1000 * m['gflop_per_sample']:.1f} "
                    + (f"| {100 * m['mfu']:.0f}% " if m.get("mfu") is not None else "| - ")
                    + f"| {other(m, 'conv1d_samples_per_s')} | {other(m, 'torch_dropout_samples_per_s')} "
                    f"| {other(m, 'unfused_adam_samples_per_s')} | {comp} |")
    if r.get("peak_gflops"):   # a GPU the peak table does not know has none
        rows.append(f"| {r.get('precision', 'fp32')} matmul peak | {r['peak_gflops']:.0f} GFLOP/s | | | | | | |")
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
    if "focal_per_camera" in r:
        rows += ["", "Focal lengths fitted on the labelled windows (normalised units, 1 = half the image "
                 "width): " + ", ".join(f"{c} {f:.2f}" for c, f in r["focal_per_camera"].items()) + "."]
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
                "worker's training or evaluation. The training ratio counts training time only; the long "
                "run's end-to-end ratio is against the short lone run, so it mostly shows start-up paid off.")
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
    return ["| ensemble | frames | ensemble frames/s | member-frames/s | GFLOP per member-frame (flip TTA) "
            "| of fp32 peak |",
            "|---|---|---|---|---|---|",
            f"| {r['members']} x {r['channels']} ch | {r['frames']:,} in {r['sequences']} sequences "
            f"| {r['ensemble_frames_per_s']:,.0f} | {r['member_frames_per_s']:,.0f} "
            f"| {r['gflop_per_member_frame']:.3f} "
            f"| {100 * r['flop_utilisation']:.0f}% of {r['peak_gflops']:.0f} GFLOP/s |"]


def _budget(runs):
    """One row per budget run: benchmarks/budget.json (the chosen setup) first, then budget_*.json."""
    rows = ["| run | raypose train wall time | ensemble | sampling, lr decay | epochs per member | Ray share "
            "| P-MPJPE (S1 / S2 / S3) | members (all frames) | fitted to the 2D (S1 / S2 / S3) "
            "| tuned VideoPose3D | target |",
            "|---" * 11 + "|"]
    for name, r in runs:
        subj = " / ".join(f"{v:.1f}" for v in r["p_mpjpe_per_subject"].values())
        share = f"{100 * r['timing']['ray_share']:.1f}%" if "timing" in r else "-"
        members = " / ".join(f"{v:.1f}" for v in r.get("member_p_mpjpe_all_frames", [])) or "-"
        fit = r.get("fit_2d")
        fitted = (f"{fit['p_mpjpe']:.1f} mm (" + " / ".join(f"{v:.1f}" for v in fit["p_mpjpe_per_subject"].values())
                  + ")") if fit else "-"
        mark = "**" if name == "budget" else ""   # the chosen run
        rows.append(f"| `{name}.json` | {r['train_wall_s']:.0f} s of {r['budget_s']:.0f} s "
                    f"| {r['members']} x {r['channels']} ch, dropout {r['dropout']}, {r['aggregate']} "
                    f"| {r['sampling']}, {r['lr_decay']} | {r['epochs']} | {share} "
                    f"| {mark}{r['p_mpjpe']:.1f} mm{mark} ({subj}) | {members} | {fitted} "
                    f"| {r['reference_tuned_videopose3d_mm']} mm | {r['target_mm']} mm |")
    rows.append("")
    rows += [f"- `{name}.json`, {r['date']}, {r['machine']}: `{r['command']}`" for name, r in runs]
    return rows


def _fit_2d(r):
    rows = ["| 2D noise | ensemble P-MPJPE | fitted to the 2D | MPJPE | fitted |", "|---|---|---|---|---|"]
    for x in r["rows"]:
        rows.append(f"| {x['noise_px']:g} px | {x['p_mpjpe']:.1f} mm | {x['fit_2d_p_mpjpe']:.1f} mm "
                    f"| {x['mpjpe']:.1f} mm | {x['fit_2d_mpjpe']:.1f} mm |")
    rows.append("")
    rows.append(f"{r['data']}, {r['members']} x {r['channels']} ch ({r['aggregate']}, iteration {r['iteration']}); "
                "focal lengths fitted by the run: " + ", ".join(f"{c} {f:.2f}" for c, f in r["focal"].items()) + ".")
    return rows


def performance(found):
    """Every headline figure of issue 6 beside its target, each with where, when and how."""
    rows = ["| figure | measured | target | machine | date | command |", "|---|---|---|---|---|---|"]

    def row(name, figure, value, target):
        if found.get(name) is not None:
            r = found[name]
            rows.append(f"| {figure} | {value(r)} | {target} | {r['machine']} | {r['date']} | `{r['command']}` |")
    row("train", "member training, 1024 ch",
        lambda r: f"{r['samples_per_s']:,.0f} samples/s, {100 * r['mfu']:.0f}% MFU",
        ">= 980 samples/s (2x VideoPose3D), >= 60% MFU")
    row("train", "member training, 256 ch", lambda r: f"{r['models']['c256']['samples_per_s']:,.0f} samples/s",
        ">= 7,760 samples/s (2x VideoPose3D)")
    row("ensemble_scaling", "2 members at once vs 1 alone (demo)",
        lambda r: f"{r['demo_ratio']:.2f} end to end, {r['demo_train_ratio']:.2f} training", ">= 0.9")
    row("ensemble_scaling", "Ray's share of the demo's wall time", lambda r: f"{100 * r['demo_ray_share']:.0f}%", "")
    row("ensemble_scaling", "Ray's share of a 10-minute run",
        lambda r: f"{100 * r['long_ray_share']:.1f}%" if r.get("long_ray_share") is not None else "not run", "<= 10%")
    row("pack", "packed members vs separate workers",
        lambda r: ", ".join(f"{c['members']} x {c['channels']} ch {c['packed_vs_separate']:.2f}x"
                            for c in r["cases"]), "")
    row("infer", "ensemble inference, 5 x 1024 ch", lambda r: f"{100 * r['flop_utilisation']:.0f}% of peak",
        ">= 50% of peak")
    row("budget", "P-MPJPE after 10 minutes on HumanEva", lambda r: f"{r['p_mpjpe']:.1f} mm"
        + (f" ({r['fit_2d']['p_mpjpe']:.1f} mm fitted to the 2D)" if "fit_2d" in r else ""), "<= 17.4 mm")
    return rows


def _uncertainty(r):
    """Calibrated radii per input condition, the alternatives, and the issue's targets."""
    u = r["uncertainty"]
    err = r.get("mean_joint_error_mm")
    rows = [f"Real HumanEva-I, Validate/S1-S3, Walk/Jog/Box; `{r['config']}`, calibrated on "
            f"{u['calibration']['fitted_on']}; iteration {r['iteration']}."
            + (f" Mean joint error (root-relative) on the calibration frames {err['calibration']:.1f} mm, on the "
               f"evaluation frames {err['evaluation']:.1f} mm." if err else "")
            + ("" if r.get("calibration_as_stored", True) else " The calibration was refitted by the benchmark from "
               "the run's members and held-out frames with the current code, not the one the run stored (trained "
               "before its latest variant or features)."), "",
            "| 2D input | coverage at 0.5 / 0.9 / 0.95 | QCE | mean radius at 0.9 | Spearman | NLL | AUSE "
            "| P-MPJPE |", "|---|---|---|---|---|---|---|---|"]

    def line(name, c, err=True):
        cov = " / ".join(f"{v:.3f}" for v in c["coverage_at"].values())
        return (f"| {name} | {cov} | {c['qce']:.3f} | {c['mean_radius_mm']['0.9']:.1f} mm | {c['spearman']:.2f} "
                f"| {c['nll']:.2f} | {c['ause']:.3f} | " + (f"{c['p_mpjpe']:.1f} mm |" if err else "same as clean |"))
    rows.append(line("clean, members' spread read as a Gaussian", u["spread_as_gaussian"], err=False))
    rows += [line(name, u["conditions"][name]) for name in u.get("order", u["conditions"])]
    gaps = u["conditions"].get("gaps 10%", {})
    if "filled" in gaps:
        f, o = gaps["filled"], gaps["observed"]
        rows += ["", f"Gaps 10%: of the joint-frames, {f['joint_frames']} filled in from their neighbours in time "
                 f"(as `predict` fills a detector's misses) against {o['joint_frames']} observed: coverage at "
                 f"0.9 {f['coverage_at']['0.9']:.3f} against {o['coverage_at']['0.9']:.3f}; mean radius at 0.9 "
                 f"{f['mean_radius_mm']['0.9']:.0f} against {o['mean_radius_mm']['0.9']:.0f} mm; mean error "
                 f"{f['error_mm']:.0f} against {o['error_mm']:.0f} mm."]
    cols = [k for k in ("clean", "gaussian 6px", "gaussian 10px", "detector-like") if k in u["conditions"]]
    has_gaps = all("filled" in a["conditions"].get("gaps 10%", {}) for a in r["alternatives"].values())
    rows += ["", "Alternatives on the same members and calibration split (coverage at 0.9; QCE):", "",
             "| radii from | " + " | ".join(cols) + (" | gaps 10%: filled-in joints" if has_gaps else "")
             + " | radius 6px / clean |", "|---|" + "---|" * (len(cols) + has_gaps + 1)]
    for name, a in r["alternatives"].items():
        c = a["conditions"]
        cells = [f"{c[k]['coverage_at']['0.9']:.3f}; {c[k]['qce']:.3f}" for k in cols]
        if has_gaps:
            cells.append(f"{c['gaps 10%']['filled']['coverage_at']['0.9']:.3f}")
        ratio = c["gaussian 6px"]["mean_radius_mm"]["0.9"] / c["clean"]["mean_radius_mm"]["0.9"]
        rows.append(f"| {name} | " + " | ".join(cells) + f" | x{ratio:.2f} |")
    rows += ["", "| target | measured |", "|---|---|"]
    rows += [f"| {k} | {v:.3f} |" for k, v in r["targets"].items()]
    ref = r["reference"]
    rows += ["", f"Accuracy: P-MPJPE {r['p_mpjpe']:.1f} mm ({r['iteration']} iterations in the budget) with "
             f"{100 * r['holdout']:.0f}% of the training frames held out ({r['holdout_by']}), against "
             f"{ref['p_mpjpe']:.1f} mm ({ref['iterations']} iterations) for the same config without "
             f"(`{ref['file']}`, {ref['date']})."
             + (f" At the same iteration ({ref['same_iteration']['iteration']}, the same epochs): "
                f"{ref['same_iteration']['p_mpjpe']:.1f} against {ref['same_iteration']['reference_p_mpjpe']:.1f} mm."
                if "same_iteration" in ref else "")]
    return rows


def _uncertainty_split(r):
    """The same benchmark with another calibration split: one row per input condition."""
    u = r["uncertainty"]
    rows = [f"Calibration split `{r['holdout_by']}` ({100 * r['holdout']:.0f}% held out), its own run of the "
            "same config:",
            "", "| 2D input | coverage at 0.5 / 0.9 / 0.95 | QCE | Spearman | P-MPJPE |", "|---|---|---|---|---|"]
    for name, c in u["conditions"].items():
        cov = " / ".join(f"{v:.3f}" for v in c["coverage_at"].values())
        rows.append(f"| {name} | {cov} | {c['qce']:.3f} | {c['spearman']:.2f} | {c['p_mpjpe']:.1f} mm |")
    rows += ["", f"P-MPJPE (protocol) {r['p_mpjpe']:.1f} mm, {r['iteration']} iterations."]
    return rows


def _coco_mapping(r):
    """P-MPJPE from native 15-joint 2D against COCO-17 mapped onto it, and where the cost comes from."""
    rows = [f"{r['data']}, {r['members']} x {r['channels']} ch, iteration {r['iteration']}, "
            f"{r['eval_frames']} frames per camera:", "",
            "| 2D input | P-MPJPE |", "|---|---|",
            f"| native HumanEva-15 | {r['native_15_p_mpjpe']:.2f} mm |",
            f"| COCO-17 mapped | {r['coco_17_mapped_p_mpjpe']:.2f} mm (x{r['ratio']:.3f}) |"]
    rows += [f"| mapped, but the native {joint} | {v:.2f} mm |" for joint, v in r["mapped_with_native"].items()]
    rows += ["", "Mean 2D distance of a mapped joint from the native one: " + ", ".join(
        f"{joint} {v:.1f} px" for joint, v in r["derived_offset_px"].items()) + "."]
    return rows


def _trajectory(r):
    return ["| frames | camera distance | root error (mean / median) | of the distance | depth | x-y |",
            "|---|---|---|---|---|---|",
            f"| {r['frames']} | {r['camera_distance_m']:.2f} m | {r['root_error_mm']:.0f} / "
            f"{r['root_error_median_mm']:.0f} mm | {100 * r['relative_error']:.1f}% | {r['depth_error_mm']:.0f} mm "
            f"| {r['xy_error_mm']:.0f} mm |"]


def _export(r):
    """BVH forward kinematics against the exported poses: bone-normalised (the forks' fit) and raw."""
    mm = lambda e: f"{e['mean']:.2f} / {e['max']:.1f} mm"
    rows = [f"{r['source']}:", "", "| sequence | frames | FK vs bone-normalised (mean / max) | FK vs raw (mean / max) "
            "| bone length deviation |", "|---|---|---|---|---|"]
    rows += [f"| {q['sequence']} | {q['frames']} | {mm(q['fk_vs_normalised_mm'])} | {mm(q['fk_vs_raw_mm'])} "
             f"| {q['bone_length_deviation_mm']:.1f} mm |" for q in r["sequences"]]
    rows += [f"| all | {r['frames']} | {mm(r['fk_vs_normalised_mm'])} | {mm(r['fk_vs_raw_mm'])} | |", "",
             f"Export (solve, write, check) {r['seconds']:.2f} s for {r['frames']} frames."]
    return rows


def _fov(r):
    """P-MPJPE, radius coverage and root error through predict --focal, as is and --fov-correction."""
    rows = [f"Real HumanEva-I evaluation sequences ({r['frames']} frames), projected by pinhole cameras with the "
            f"run's focal length ({r['run_focal']:.2f}) or a wide lens ({r['wide_focal']:g}); principal point at the "
            "image centre:", "",
            "| camera and person | root depth | P-MPJPE as is / corrected | coverage at 0.9 as is / corrected "
            "| root error as is / corrected |", "|---|---|---|---|---|"]
    if "real_2d" in r:
        real = r["real_2d"]
        rows.append(f"| HumanEva's own cameras and 2D (the same frames) | | {real['p_mpjpe_mm']:.1f} mm "
                    f"| {real['coverage']['0.9']:.2f} | |")
    for name, c in r["conditions"].items():
        a, b = c["as is"], c["corrected"]
        rows.append(f"| {name} | {c['mean_root_depth_m']:.1f} m | {a['p_mpjpe_mm']:.1f} / {b['p_mpjpe_mm']:.1f} mm "
                    f"| {a['coverage']['0.9']:.2f} / {b['coverage']['0.9']:.2f} "
                    f"| {a['root_error_mm']:.0f} / {b['root_error_mm']:.0f} mm |")
    return rows


def _tune(r):
    f, h = r["found"], r["handpicked"]
    rows = ["| config | validation P-MPJPE (training subjects) | test P-MPJPE (Validate/*) "
            "| iterations in the budget |",
            "|---|---|---|---|",
            f"| found by `raypose tune` (trial {f['trial']}) | **{f['validation_p_mpjpe']:.2f} mm** "
            f"| **{f['test_p_mpjpe']:.2f} mm** | {f['iterations']} |",
            f"| hand-picked `humaneva_10min.toml` (chosen on the test split) | {h['validation_p_mpjpe']:.2f} mm "
            f"| {h['test_p_mpjpe']:.2f} mm | {h['iterations']} |",
            "", f"Search: {r['trials']} trials of {r['budget_s']:g} s in {r['search_wall_s'] / 60:.0f} minutes "
            f"(limit {r['search_time_limit_s'] / 60:.0f}), {r['stopped_early']} stopped early by ASHA or the limit, "
            f"{r['errors']} failed; found / hand-picked on the test split: x{r['found_over_handpicked_test']:.3f}.",
            "", "| found key | value |", "|---|---|"]
    rows += [f"| `{k}` | {_value(v)} |" for k, v in f["params"].items()]
    return rows


def _predict_scale(r):
    """predict's peak memory and time by input size, npz and Parquet, and the code before (issue 26)."""
    cell = lambda m: f"{m['peak_mib']:,.0f} MiB / {m['wall_s']:.0f} s" if m else ""
    rows = ["| 3D frames | camera-frames | npz: peak / time | Parquet: peak / time | before, npz: peak / time |",
            "|---|---|---|---|---|"]
    rows += [f"| {s['frames_3d']:,} | {s['camera_frames']:,} | {cell(s['npz'])} | {cell(s['parquet'])} "
             f"| {cell(s.get('baseline_npz'))} |" for s in r["sizes"]]
    same = [s["identical_to_baseline"] for s in r["sizes"] if "identical_to_baseline" in s]
    rows += ["", f"{r['run']} on {r['cpu']}. {r['note'][0].upper()}{r['note'][1:]}."
             + (" The npz holds the same arrays as before's, bit for bit." if same and all(same) else "")]
    if r.get("baseline_commit"):
        rows[-1] += f" Before: commit {r['baseline_commit']}."
    cpu = lambda m: (f"{m['peak_mib']:,.0f} MiB, {m['cpu_s']:.0f} s of CPU "
                     f"(load {m['load_before']:.0f}-{m['load_after']:.0f})")
    for e in r.get("evaluate", ()):
        rows += ["", f"`raypose evaluate --data` (3D frames {e['frames_3d']:,}: {e['eval_frames']:,} evaluation "
                 f"camera-frames, --no-curve): {cpu(e['this'])}; before {cpu(e['baseline']) if 'baseline' in e else ''}"
                 + ("; the same report, number for number." if e.get("identical_to_baseline") else ".")]
    return rows


def _value(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return ", ".join(map(str, v)) if isinstance(v, list) else str(v)


def _scale(r):
    """benchmarks/scale.json: memory and time against frames, VideoPose3D's loop beside."""
    gib = lambda mib: f"{mib / 1024:.1f}"   # noqa: E731
    rows = ["| frames per camera | input | members | windows (object store) | peak PSS all | driver | largest worker "
            "| to windows built | to first step | iteration | samples/s | predict | VideoPose3D to first batch |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        for key in ("train", "train_2_members"):
            t = x.get(key)
            if not t:
                continue
            p = t["peak_mib"]
            pred = x.get("predict") if key == "train" else None
            vp = x.get("videopose3d") if key == "train" else None
            rows.append(
                f"| {x['frames']:,} | {x['input']} | {t['members']} | {gib(p['object_store'])} GiB "
                f"| **{gib(p['total'])} GiB** | {gib(p['driver'])} | {gib(p['train_worker_each'])} "
                f"| {t['windows_built_s']:.0f} s | {t['first_step_s']:.0f} s | {t['iteration_s']:.0f} s "
                f"| {t['samples_per_s']:,.0f} "
                f"| {_gib_s(pred, 'wall_s')} | {_gib_s(vp, 'first_batch_s')} |")
    c = r.get("cpu", {})
    tp = r.get("throughput")
    if tp:
        items = list(tp["samples_per_s"].items())
        (small, a), (big, b) = items[0], items[-1]
        rows += ["", f"Windowing does not slow down with the data: one 64-channel member in one process "
                 f"({tp['threads']} thread, the same 20,000-window draw, best of 3, sizes alternated) trains "
                 f"{float(a):,.0f} samples/s on the {int(small):,}-frame windows and {float(b):,.0f} on the "
                 f"{int(big):,}-frame ones (x{tp['ratio_to_smallest'][big]:.3f}); the runs' own samples/s above mix "
                 f"in Ray and 5 members on 2 cores."]
    rows += ["", f"One iteration of 64-channel members (`{r['train_options']}`) on synthetic data in Human3.6M's "
             f"layout (4 cameras; 800,000 frames is Human3.6M's size). CPU: {c.get('model', '?')}, "
             f"{c.get('cpus', '?')} cores, bf16 flags: {', '.join(c.get('bf16_flags') or []) or 'none'}."]
    return rows


def _gib_s(m, seconds):
    """`1.2 GiB, 34 s` of a measured command, or nothing."""
    return f"{m['peak_mib']['total'] / 1024:.1f} GiB, {m[seconds]:.0f} s" if m else ""


RENDER = {"infer": _infer, "ensemble": _ensemble, "train": _train, "semi_synthetic": _semi,
          "semi_humaneva": _semi, "semi_synthetic_small": _semi, "ensemble_scaling": _scaling, "pack": _pack,
          "pseudo_labels": _pseudo_labels, "fit_2d": _fit_2d,
          "uncertainty": _uncertainty, "uncertainty_chunk": _uncertainty_split,
          "coco_mapping": _coco_mapping, "trajectory": _trajectory, "export": _export,
          "fov": _fov, "tune": _tune, "scale": _scale, "predict_scale": _predict_scale}


def render(name, data):
    if name == "budget":
        return "\n".join(_budget(data))
    rows = RENDER[name](data)
    rows.append("")
    rows.append(f"Measured {data['date']} on {data['machine']} with `{data['command']}`.")
    return "\n".join(rows)

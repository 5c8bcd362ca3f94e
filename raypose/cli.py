"""The `raypose` command: parses arguments and calls the library; nothing else lives here."""
import argparse
import signal
import sys
import threading

from raypose.ensemble.uncertainty import QUANTILES
from raypose.errors import UserError
from raypose.interop.tracks import CONFIDENCE_THRESHOLD


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def _cmd_prepare(args):
    from raypose.data.prepare import format_summary, prepare
    summary = prepare(args.npz_dir, args.out, keypoints=args.keypoints, split=args.split,
                      actions=args.actions, csv=args.csv, overwrite=args.overwrite, dataset=args.dataset,
                      skeleton=args.skeleton, cameras=args.cameras)
    print(format_summary(summary))


def _cmd_synth(args):
    from raypose.data.synthetic import write_synthetic
    paths = write_synthetic(args.out, frames=args.frames, seed=args.seed, overwrite=args.overwrite,
                            layout=args.layout)
    print("wrote " + ", ".join(paths))


def _cmd_demo(args):
    from raypose.commands.demo import run_demo
    run_demo(args.out, **{"data.synthetic_frames": args.frames, "data.synthetic_seed": args.seed})


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread so that cleanups run; exit status 128 + signal."""

    def __init__(self, signum=signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def _cmd_train(args):
    from raypose import config as C
    from raypose.train.driver import train
    cfg = C.from_args(args)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupted) if main_thread else None   # `kill`: as Ctrl-C
    try:
        train(cfg)
    except (KeyboardInterrupt, SystemExit) as e:
        signum = _signal_of(e)
        if signum is None:
            raise
        print(f"raypose train: stopped by {signal.Signals(signum).name}; {_kept(cfg.run.out)}", file=sys.stderr)
        raise Interrupted(signum) from None
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _signal_of(e):
    """The signal that ended training: ours (Interrupted), Ctrl-C's KeyboardInterrupt, or the SystemExit(15)
    of the SIGTERM handler ray.init installs in the driver; None for any other exit."""
    if isinstance(e, KeyboardInterrupt):
        return getattr(e, "signum", signal.SIGINT)
    return signal.SIGTERM if e.code == signal.SIGTERM else None


def _kept(out):
    """What an interrupted run keeps, and how to go on."""
    try:
        from raypose.run import Run
        last = Run(out).latest()
    except Exception:   # noqa: BLE001 - the note must not hide the interruption
        last = None
    if last:
        return (f"{out} keeps iteration {last}, the last complete one (the one under way is dropped); the same "
                "command resumes from it")
    return f"{out} has no complete iteration yet; the same command starts it again"


def _cmd_tune(args):
    from raypose import config as C
    from raypose.tune.search import read_space
    from raypose.tune.tuner import tune
    space = read_space(args.space) if args.space else None
    tune(C.from_args(args, base=None if args.config else C.with_values(C.Config(), {"train.iterations": 1000})),
         args.data, args.budget_s, args.trials, args.out, space=space, search_time_s=args.search_time_s,
         seed=args.seed)


def _cmd_evaluate(args):
    from raypose.evaluation.evaluate import evaluate
    evaluate(args.run, iteration=args.iteration, method=args.aggregate, data=args.data,
             split=args.split, tta=not args.no_tta, curve=not args.no_curve, device=args.device,
             dataset=args.dataset, skeleton=args.skeleton, cameras=args.cameras)


def _cmd_plot(args):
    from raypose.commands.plot import animation, prediction_animation, run_plots
    if args.pred:
        if not args.animate:
            raise UserError("plot --pred: needs --animate SUBJECT/ACTION --out FILE.gif; expected a track of the file")
        if args.iteration is not None or args.aggregate:
            raise UserError("plot --pred: --iteration and --aggregate choose a run's members; expected them with --run")
        print(f"wrote {prediction_animation(args.pred, args.animate, args.camera, args.out, args.overwrite)}")
        return
    if args.animate:
        path = animation(args.run, args.animate, args.camera, args.out, iteration=args.iteration,
                         method=args.aggregate, overwrite=args.overwrite)
        print(f"wrote {path}")
        return
    for path in run_plots(args.run):
        print(f"wrote {path}")


def _cmd_predict(args):
    from raypose.commands.predict import predict_file
    path = predict_file(args.run, args.input, args.out, iteration=args.iteration, method=args.aggregate,
                        flip=not args.no_tta, fit_2d=args.fit_2d, focal=args.focal, overwrite=args.overwrite,
                        device=args.device, quantiles=args.quantiles, image_size=args.image_size,
                        frames=args.frames, threshold=args.confidence_threshold,
                        fill_missing_frames=args.fill_missing_frames, fov_correction=args.fov_correction)
    print(f"wrote {path}")


def _cmd_import_members(args):
    from raypose.interop.vp3d import import_members
    for line in import_members(args.files, args.out, data=args.data, overwrite=args.overwrite,
                               keypoints=args.keypoints):
        print(line)


def _cmd_export_member(args):
    from raypose.interop.vp3d import export_member
    for line in export_member(args.run, args.member, args.out, iteration=args.iteration, overwrite=args.overwrite):
        print(line)


def _cmd_export(args):
    from raypose.interop.export import export_file, format_summary
    print(format_summary(export_file(args.poses, args.format, args.out, overwrite=args.overwrite, fps=args.fps)))


def _add_prepare(sub):
    q = sub.add_parser("prepare", help="npz (HumanEva, Human3.6M, yours) -> Parquet frame table (and CSV)")
    q.add_argument("--npz-dir", required=True, help="folder with data_2d_<dataset>_<kp>.npz "
                   "and data_3d_<dataset>.npz (humaneva15, h36m, or your own)")
    q.add_argument("--dataset", help="humaneva15, h36m or your own name (default: from the file names)")
    q.add_argument("--skeleton", help="your dataset's skeleton: .json or .npz of parents, joints_left, joints_right")
    q.add_argument("--cameras", help="your dataset's cameras: .json keyed by subject, 'S1' or 'Train/S1' "
                   "(docs/usage.md: Your own dataset)")
    q.add_argument("--out", required=True, help="output directory (must be new or empty)")
    q.add_argument("--keypoints", default="gt", help="2D file suffix: gt, or a detector's name")
    q.add_argument("--split", default="videopose3d", help="videopose3d or seed; stored as a column")
    q.add_argument("--actions", default=None, help="action prefixes, e.g. Walk,Jog,Box (default all)")
    q.add_argument("--csv", action="store_true", help="also write OUT/_frames.csv in the 2022 layout")
    q.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    q.set_defaults(func=_cmd_prepare)


def _frames_help():
    from raypose.data.synthetic import MIN_CHUNK_FRAMES, min_frames
    return (f"approximate 3D frames in all; at least {min_frames()} are written (every chunk of every subject "
            f"has at least {MIN_CHUNK_FRAMES})")


def _add_synth(sub):
    q = sub.add_parser("synth", help="write a synthetic npz pair (HumanEva-like, or Human3.6M's layout)")
    q.add_argument("--out", required=True)
    q.add_argument("--frames", type=int, default=3000, help=_frames_help())
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--layout", choices=("humaneva15", "coco", "h36m"), default="humaneva15",
                   help="2D keypoints: HumanEva's 15 joints or a detector's 17 COCO keypoints (3D stays 15); "
                   "h36m: VideoPose3D's data_3d_h36m.npz (32 joints) and data_2d_h36m_gt.npz (17, 4 cameras)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_cmd_synth)


def _add_train(sub):
    from raypose import flags
    q = sub.add_parser("train", help="train an ensemble (resumes an interrupted run)")
    q.add_argument("--config", help="TOML config, e.g. raypose/configs/humaneva.toml")
    flags.add_flags(q)   # every option with a flag, from raypose/config.py
    q.set_defaults(func=_cmd_train)


def _add_tune(sub):
    q = sub.add_parser("tune", help="Ray Tune: the best ensemble config for a time budget, scored on a "
                       "validation split of the training subjects (never the test split)")
    q.add_argument("--data", required=True, help="npz directory, prepared table or 'synthetic' [data.path]")
    q.add_argument("--budget-s", type=float, required=True, help="seconds of each trial (a whole raypose train)")
    q.add_argument("--trials", type=int, required=True, help="configs to try")
    q.add_argument("--out", required=True, help="the search's directory: best.toml, trials.csv, tune.png, "
                   "trials/ (runs), tune_state/ (the same command resumes from it)")
    q.add_argument("--space", help="TOML file of config keys and ranges (default: raypose's; docs/usage.md)")
    q.add_argument("--config", help="base TOML config the draws apply to (default: raypose's defaults, "
                   "1000 iterations so the budget decides)")
    q.add_argument("--search-time-s", type=float, default=0.0, help="stop the whole search after this many "
                   "seconds (0: when every trial has run)")
    q.add_argument("--seed", type=int, default=0, help="seed of the draws")
    q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any config key of the base, "
                   "e.g. data.actions=Walk,Jog,Box or run.local=true")
    q.set_defaults(func=_cmd_tune)


def _add_predict(sub):
    q = sub.add_parser("predict", help="3D poses and per-joint spread for new 2D input")
    q.add_argument("--run", required=True)
    q.add_argument("--input", required=True, help="2D keypoints: VideoPose3D npz (positions_2d; its in-the-wild "
                   "custom file too) or COCO keypoint-results JSON")
    q.add_argument("--image-size", nargs=2, type=float, metavar=("W", "H"),
                   help="pixel size of the images (default: the file's, or the training data's for its own layout)")
    q.add_argument("--frames", metavar="FILE", help="COCO JSON: image ids in frame order (one per line or a JSON "
                   "list; default: the ids sorted)")
    q.add_argument("--confidence-threshold", type=float, default=CONFIDENCE_THRESHOLD,
                   help="keypoints below this confidence are filled in from their neighbours in time")
    q.add_argument("--fill-missing-frames", action="store_true",
                   help="COCO JSON: fill a frame without a person in from its neighbours (default: refused)")
    q.add_argument("--out", required=True, help="output .npz (VideoPose3D's nesting) or .parquet (a row per frame, "
                   "written as it goes: for outputs larger than memory); new, outside any run: positions_3d (T, J, 3), "
                   "uncertainty (T, J), radius (T, J, Q) per track; J the run's 3D joints, 15 for HumanEva, 17 for "
                   "Human3.6M")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    q.add_argument("--iteration", type=int, help="default: the latest complete iteration")
    q.add_argument("--aggregate", help="mean, median, trimmed, geomedian or weighted (the default)")
    q.add_argument("--no-tta", action="store_true", help="no test-time flip averaging")
    q.add_argument("--fit-2d", action="store_true",
                   help="fit each pose onto its input 2D: for exact 2D (motion capture), not detections")
    q.add_argument("--focal", type=float, help="the camera's focal length in normalised units (f_px * 2 / "
                   "width), for the trajectory and --fit-2d; default: the run's fit for its cameras, by name")
    q.add_argument("--fov-correction", action="store_true", help="needs --focal: zoom the 2D about the image centre "
                   "to the run's focal length (what its cameras would see of the same 3D; see docs/usage.md)")
    q.add_argument("--device", default="cpu", help="where the members run: cpu, cuda or cuda:N")
    q.add_argument("--quantiles", default=",".join(f"{x:g}" for x in QUANTILES),
                   help="probabilities of the error radii written as `radius` (T, J, Q)")
    q.set_defaults(func=_cmd_predict)


def _add_evaluate(sub):
    q = sub.add_parser("evaluate", help="tables, aggregates, ensemble-size study, calibration")
    q.add_argument("--run", required=True)
    q.add_argument("--iteration", type=int, help="default: the latest complete iteration")
    q.add_argument("--aggregate", help="mean, median, trimmed, geomedian or weighted (the default)")
    q.add_argument("--data", help="evaluate on other data (npz dir, prepared dir, synthetic); its skeleton "
                   "must be the run's")
    q.add_argument("--dataset", help="with --data: the other data's dataset name (default: from its file names)")
    q.add_argument("--skeleton", help="with --data: the other data's skeleton file, for a dataset of your own")
    q.add_argument("--cameras", help="with --data: the other data's cameras file, for a dataset of your own")
    q.add_argument("--split", help="videopose3d or seed (default: the run's)")
    q.add_argument("--no-tta", action="store_true", help="no test-time flip averaging")
    q.add_argument("--no-curve", action="store_true", help="skip re-evaluating earlier iterations")
    q.add_argument("--device", default="cpu", help="where the members run: cpu, cuda or cuda:N")
    q.set_defaults(func=_cmd_evaluate)


def _add_plot(sub):
    q = sub.add_parser("plot", help="figures into RUN/plots, or an animation of one sequence")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--run")
    what.add_argument("--pred", metavar="POSES", help="a `raypose predict` file (.npz or .parquet) to animate "
                      "(with --animate)")
    q.add_argument("--animate", metavar="SUBJECT/ACTION", help="e.g. 'Validate/S1/Walking 1 chunk0'")
    q.add_argument("--camera", help="camera of the animated sequence (default: C1 for --run, the track's first "
                   "for --pred)")
    q.add_argument("--out", help="GIF path for --animate (must be new)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out GIF")
    q.add_argument("--iteration", type=int)
    q.add_argument("--aggregate", help="aggregate for the animated skeleton")
    q.set_defaults(func=_cmd_plot)


def _add_demo(sub):
    q = sub.add_parser("demo", help="synthetic data end to end on this machine")
    q.add_argument("--out", default="runs/demo", help="where the demo writes (a run an earlier demo wrote there is "
                   "replaced; any other non-empty directory is refused)")
    q.add_argument("--frames", type=int, default=3000, help=_frames_help())
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_demo)


def _add_import_members(sub):
    q = sub.add_parser("import-members", help="a run whose members are VideoPose3D checkpoints (model_pos)")
    q.add_argument("files", nargs="+", metavar="FILE.bin", help="checkpoints VideoPose3D's run.py saved, "
                   "one member each, of one architecture")
    q.add_argument("--out", required=True, help="the run directory to write (must be new or empty)")
    q.add_argument("--data", default="synthetic", help="the run's data for evaluate and plot (npz dir, prepared "
                   "dir, or synthetic: HumanEva-15 2D only); its 2D must have the model's input joints")
    q.add_argument("--keypoints", choices=("humaneva15", "coco"), help="the 2D layout the models take (default: "
                   "by their input joints, humaneva15 for 15, coco for 17, which is said and recorded)")
    q.add_argument("--overwrite", action="store_true", help="replace a run import-members wrote at --out (never a "
                   "trained run, nor one being written)")
    q.set_defaults(func=_cmd_import_members)


def _add_export_member(sub):
    q = sub.add_parser("export-member", help="one member as a checkpoint VideoPose3D's run.py loads (--evaluate)")
    q.add_argument("--run", required=True)
    q.add_argument("--member", type=int, required=True, help="member index, 0 to N - 1")
    q.add_argument("--iteration", type=int, help="default: the latest complete iteration")
    q.add_argument("--out", required=True, help="the .bin file to write (must be new)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    q.set_defaults(func=_cmd_export_member)


def _add_export(sub):
    from raypose.interop.export import FORMATS
    q = sub.add_parser("export", help="a prediction as BVH (one file per track), CSV or JSON")
    q.add_argument("poses", metavar="POSES", help="a file `raypose predict` wrote (.npz or .parquet)")
    q.add_argument("--format", required=True, choices=FORMATS)
    q.add_argument("--out", required=True, help="the folder to write (must be new or empty)")
    q.add_argument("--overwrite", action="store_true", help="replace a former export at --out")
    q.add_argument("--fps", type=float, help="BVH frames per second (default: the prediction's, else 60)")
    q.set_defaults(func=_cmd_export)


def build_parser():
    p = _Parser(prog="raypose", description="Ensembles of temporal CNNs for 3D human pose "
                "estimation, trained in parallel on Ray.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_add_prepare, _add_synth, _add_train, _add_predict, _add_evaluate, _add_plot, _add_demo,
                _add_import_members, _add_export_member, _add_export, _add_tune):
        add(sub)
    return p


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return 128 + int(getattr(e, "signum", signal.SIGINT))
    return 0


if __name__ == "__main__":
    sys.exit(main())

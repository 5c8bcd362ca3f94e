"""The `raypose` command: parses arguments and calls the library; nothing else lives here."""
import argparse
import sys

from .errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"{self.prog}: {message}")


def _cmd_prepare(args):
    from .data.prepare import format_summary, prepare
    summary = prepare(args.npz_dir, args.out, keypoints=args.keypoints, split=args.split,
                      actions=args.actions, csv=args.csv, overwrite=args.overwrite)
    print(format_summary(summary))


def _cmd_synth(args):
    from .data.synthetic import write_synthetic
    from .data.table import check_empty
    check_empty(args.out, args.overwrite)
    paths = write_synthetic(args.out, frames=args.frames, seed=args.seed)
    print("wrote " + ", ".join(paths))


def _cmd_demo(args):
    from .demo import run_demo
    overrides = {"data.synthetic_frames": args.frames, "data.synthetic_seed": args.seed}
    run_demo(args.out, **overrides)


TRAIN_FLAGS = {  # flag -> config key
    "data": "data.path", "split": "data.split", "actions": "data.actions",
    "keypoints": "data.keypoints", "members": "train.members", "iterations": "train.iterations",
    "epochs": "train.epochs", "sampling": "train.sampling", "subset_size": "train.subset_size",
    "channels": "model.channels", "widths": "model.widths", "batch_size": "train.batch_size",
    "seed": "train.seed", "out": "run.out", "time_budget": "run.time_budget",
    "address": "run.address", "gpus_per_member": "run.gpus_per_member",
    "max_failures": "run.max_failures", "keep_last": "run.keep_last",
    "members_per_worker": "run.members_per_worker", "semi": "semi.mode",
    "labelled_fraction": "semi.labelled_fraction",
}
SEMI_DEFAULT_FRACTION = 0.4   # the 2022 study's labelled share


def train_config(args):
    """Config file, then flags, then --set: the later wins."""
    from . import config as C
    cfg = C.load(args.config) if args.config else C.Config()
    for flag, key in TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            C.set_key(cfg, key, value)
    if args.local:
        cfg.run.local = True
    if args.semi not in (None, "off") and args.labelled_fraction is None and cfg.semi.labelled_fraction == 1:
        cfg.semi.labelled_fraction = SEMI_DEFAULT_FRACTION
    for item in args.set or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        key, value = item.split("=", 1)
        C.set_key(cfg, key.strip(), value.strip())
    return C.validate(cfg)


def _cmd_train(args):
    from .train.run import train
    train(train_config(args))


def _cmd_evaluate(args):
    from .evaluate import evaluate
    evaluate(args.run, iteration=args.iteration, method=args.aggregate, data=args.data,
             split=args.split, tta=not args.no_tta, curve=not args.no_curve)


def _cmd_plot(args):
    from .figures import animation, run_plots
    if args.animate:
        path = animation(args.run, args.animate, args.camera, args.out, iteration=args.iteration,
                         method=args.aggregate)
        print(f"wrote {path}")
        return
    for path in run_plots(args.run):
        print(f"wrote {path}")


def _cmd_predict(args):
    from .evaluate import DEFAULT_AGGREGATE
    from .predict import predict_file
    path = predict_file(args.run, args.input, args.out, iteration=args.iteration,
                        method=args.aggregate or DEFAULT_AGGREGATE, flip=not args.no_tta,
                        fit_2d=args.fit_2d, focal=args.focal)
    print(f"wrote {path}")


def build_parser():
    p = _Parser(prog="raypose", description="Ensembles of temporal CNNs for 3D human pose "
                "estimation, trained in parallel on Ray.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    q = sub.add_parser("prepare", help="HumanEva npz -> Parquet frame table (and CSV)")
    q.add_argument("--npz-dir", required=True, help="folder with data_2d_humaneva15_<kp>.npz "
                   "and data_3d_humaneva15.npz")
    q.add_argument("--out", required=True, help="output directory (must be new or empty)")
    q.add_argument("--keypoints", default="gt", help="2D file suffix: gt, or a detector's name")
    q.add_argument("--split", default="videopose3d", help="videopose3d or seed; stored as a column")
    q.add_argument("--actions", default=None, help="action prefixes, e.g. Walk,Jog,Box (default all)")
    q.add_argument("--csv", action="store_true", help="also write frames.csv in the 2022 layout")
    q.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    q.set_defaults(func=_cmd_prepare)

    q = sub.add_parser("synth", help="write the synthetic HumanEva-like npz pair")
    q.add_argument("--out", required=True)
    q.add_argument("--frames", type=int, default=3000, help="approximate 3D frames in all")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=_cmd_synth)

    q = sub.add_parser("train", help="train an ensemble (resumes an interrupted run)")
    q.add_argument("--config", help="TOML config, e.g. raypose/configs/humaneva.toml")
    q.add_argument("--data", help="npz directory, prepared Parquet directory/URI, or 'synthetic'")
    q.add_argument("--split", help="videopose3d or seed")
    q.add_argument("--actions", help="action prefixes, e.g. Walk,Jog,Box")
    q.add_argument("--keypoints", help="2D file suffix (gt, or a detector's name)")
    q.add_argument("--members", type=int, help="ensemble size N (one Ray worker each)")
    q.add_argument("--iterations", type=int)
    q.add_argument("--epochs", type=int, help="epochs per iteration")
    q.add_argument("--sampling", help="bootstrap, disjoint or full")
    q.add_argument("--subset-size", type=int, help="samples per member and iteration (0 = all)")
    q.add_argument("--channels", type=int)
    q.add_argument("--widths", help="filter widths, e.g. 3,3,3")
    q.add_argument("--batch-size", type=int)
    q.add_argument("--seed", type=int)
    q.add_argument("--out", help="run directory: local path or s3:// / gs:// URI")
    q.add_argument("--time-budget", type=float, help="seconds; stops after the iteration that crosses it")
    q.add_argument("--address", help="Ray cluster address (default: local, or RAY_ADDRESS)")
    q.add_argument("--gpus-per-member", type=int)
    q.add_argument("--max-failures", type=int, help="worker restarts allowed (default 2)")
    q.add_argument("--keep-last", type=int, help="keep only the newest K iterations (0 = all)")
    q.add_argument("--members-per-worker", type=int)
    q.add_argument("--semi", help="off, schedule (the 2022 pseudo-label schedule) or gated "
                   "(pseudo-labels where the members agree)")
    q.add_argument("--labelled-fraction", type=float,
                   help="share of training chunks that keep their 3D (default 1; 0.4 with --semi)")
    q.add_argument("--local", action="store_true", help="all members in this process, no Ray workers")
    q.add_argument("--set", action="append", metavar="KEY=VALUE", help="any config key")
    q.set_defaults(func=_cmd_train)

    q = sub.add_parser("predict", help="3D poses and per-joint spread for new 2D input")
    q.add_argument("--run", required=True)
    q.add_argument("--input", required=True, help="npz with positions_2d (VideoPose3D layout)")
    q.add_argument("--out", required=True, help="output npz")
    q.add_argument("--iteration", type=int, help="default: the latest complete iteration")
    q.add_argument("--aggregate", help="mean, median, trimmed, geomedian or weighted (default)")
    q.add_argument("--no-tta", action="store_true", help="no test-time flip averaging")
    q.add_argument("--fit-2d", action="store_true",
                   help="fit each pose onto its input 2D: for exact 2D (motion capture), not detections")
    q.add_argument("--focal", type=float, help="--fit-2d: focal length in normalised units "
                   "(f_px * 2 / width); default: the run's fit for cameras C1.. by index")
    q.set_defaults(func=_cmd_predict)

    q = sub.add_parser("evaluate", help="tables, aggregates, ensemble-size study, calibration")
    q.add_argument("--run", required=True)
    q.add_argument("--iteration", type=int, help="default: the latest complete iteration")
    q.add_argument("--aggregate", help="mean, median, trimmed, geomedian or weighted (default)")
    q.add_argument("--data", help="evaluate on other data (npz dir, prepared dir, synthetic)")
    q.add_argument("--split", help="videopose3d or seed (default: the run's)")
    q.add_argument("--no-tta", action="store_true", help="no test-time flip averaging")
    q.add_argument("--no-curve", action="store_true", help="skip re-evaluating earlier iterations")
    q.set_defaults(func=_cmd_evaluate)

    q = sub.add_parser("plot", help="figures into RUN/plots, or an animation of one sequence")
    q.add_argument("--run", required=True)
    q.add_argument("--animate", metavar="SUBJECT/ACTION", help="e.g. 'Validate/S1/Walking 1 chunk0'")
    q.add_argument("--camera", default="C1", help="camera of the animated sequence (C1, C2, C3)")
    q.add_argument("--out", help="GIF path for --animate")
    q.add_argument("--iteration", type=int)
    q.add_argument("--aggregate", help="aggregate for the animated skeleton")
    q.set_defaults(func=_cmd_plot)

    q = sub.add_parser("demo", help="synthetic data end to end on this machine")
    q.add_argument("--out", default="runs/demo", help="where the demo writes (replaced)")
    q.add_argument("--frames", type=int, default=3000)
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=_cmd_demo)
    return p


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

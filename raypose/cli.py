"""The `raypose` command: parses arguments and calls the library; nothing else lives here."""
import argparse
import os
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
    from .data.prepare import check_empty
    from .data.synthetic import write_synthetic
    check_empty(args.out, args.overwrite)
    paths = write_synthetic(args.out, frames=args.frames, seed=args.seed)
    print("wrote " + ", ".join(paths))


def _cmd_demo(args):
    from .demo import run_demo
    run_demo(args.out, frames=args.frames, seed=args.seed)


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

"""`raypose prepare`: HumanEva npz -> checked frame table on disk, with a summary of what was written.

The output directory is itself a hive-partitioned Parquet dataset (subject=/action=/camera=), so
Arrow, pandas, DuckDB and Ray read it as it is; its side files start with '_' so they skip them.
"""
import json
import os

import pyarrow.dataset as pads

from ..outputs import atomic_dir, check_replaceable, plain
from . import splits
from .csv import write_csv
from .npz import FILE_2D, FILE_3D, load_humaneva
from .table import CSV_FILE, KEY, METADATA_FILE, frame_table


def prepare(npz_dir, out, keypoints="gt", split="videopose3d", actions=None, csv=False,
            overwrite=False):
    """Returns a summary dict; the table carries a `split` column (train/test) for `split`.

    `out` is new, empty, or (with `overwrite`) an earlier prepared directory; never the input
    directory, one holding it, or one holding its npz files.
    """
    inputs = (npz_dir, os.path.join(npz_dir, FILE_2D.format(keypoints)), os.path.join(npz_dir, FILE_3D))
    check_replaceable(out, overwrite, inputs, kind="prepared")   # before anything is read
    data = load_humaneva(npz_dir, keypoints)
    keys = [(s, a) for s in data.positions_2d for a in data.positions_2d[s]]
    train, test = splits.select(keys, split, actions, source=os.fspath(npz_dir))
    part = {k: "train" for k in train} | {k: "test" for k in test}
    kept = [k for k in keys if k in part]
    table = frame_table(data, kept, split=part)
    out = write_outputs(table, out, csv=csv, overwrite=overwrite,
                        metadata=dict(data.metadata, num_joints=data.num_joints_2d), inputs=inputs)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    return {
        "out": out,
        "subjects": sorted({s for s, _ in kept}),
        "actions": sorted({splits.action_name(a) for _, a in kept}),
        "chunks": len(kept),
        "frames": int(sum(len(data.positions_3d[s][a]) for s, a in kept)),
        "rows": table.num_rows,
        "joints_2d": data.num_joints_2d,
        "train_chunks": len(train),
        "test_chunks": len(test),
        "bytes": size,
    }


def write_outputs(table, out, csv=False, overwrite=False, metadata=None, inputs=()):
    """`out`/subject=.../action=.../camera=.../part-0.parquet, _raypose.json, and _frames.csv if asked.

    Written into a temporary sibling directory and renamed into place at the end; `out` must
    pass outputs.check_replaceable (kind "prepared", none of `inputs` in it).
    """
    with atomic_dir(out, overwrite, inputs, kind="prepared") as tmp:
        pads.write_dataset(table, tmp, format="parquet", partitioning=KEY, partitioning_flavor="hive",
                           basename_template="part-{i}.parquet",
                           existing_data_behavior="overwrite_or_ignore")
        if csv:
            write_csv(table, os.path.join(tmp, CSV_FILE))
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(plain(metadata or {}), f, indent=1)
    return os.path.abspath(os.fspath(out))


def format_summary(summary):
    s = summary
    return (f"wrote {s['out']}: {len(s['subjects'])} subjects ({', '.join(s['subjects'])}), "
            f"actions {', '.join(s['actions'])}, {s['chunks']} chunks "
            f"({s['train_chunks']} train / {s['test_chunks']} test), {s['frames']} frames of 3D, "
            f"{s['rows']} rows ({s['joints_2d']} 2D joints), {s['bytes']:,} bytes")


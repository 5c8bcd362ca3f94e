"""`raypose prepare`: a dataset's npz files -> checked frame table on disk, with a summary of what was written.

The output directory is itself a hive-partitioned Parquet dataset (subject=/action=/camera=), so
Arrow, pandas, DuckDB and Ray read it as it is; its side files start with '_' so they skip them.
"""
import json
import os

import pyarrow as pa
import pyarrow.dataset as pads

from raypose.data import splits
from raypose.data.csv import write_csv
from raypose.data.npz import load_dataset
from raypose.data.table import CSV_FILE, KEY, METADATA_FILE, frame_table
from raypose.datasets.registry import recognise, resolve
from raypose.outputs import atomic_dir, check_replaceable, plain


def prepare(npz_dir, out, keypoints="gt", split="videopose3d", actions=None, csv=False,
            overwrite=False, dataset=None, skeleton=None, cameras=None):
    """Returns a summary dict; the table carries a `split` column (train/test) for `split`.

    `dataset` (a name), `skeleton` and `cameras` (files) override what the file names give
    (raypose.datasets.registry.resolve). `out` is new, empty, or (with `overwrite`) an earlier prepared
    directory; never the input directory, one holding it, or one holding its input files.
    """
    name = dataset or recognise(npz_dir)   # file names only
    inputs = (npz_dir, os.path.join(npz_dir, f"data_2d_{name}_{keypoints}.npz"),
              os.path.join(npz_dir, f"data_3d_{name}.npz")) + tuple(p for p in (skeleton, cameras) if p)
    check_replaceable(out, overwrite, inputs, kind="prepared")   # before anything is read
    data = load_dataset(npz_dir, keypoints, resolve(npz_dir, name, skeleton, cameras))
    keys = [(s, a) for s in data.positions_2d for a in data.positions_2d[s]]
    train, test = splits.select(keys, split, actions, source=os.fspath(npz_dir), dataset=data.dataset)
    part = {k: "train" for k in train} | {k: "test" for k in test}
    kept = [k for k in keys if k in part]
    # one chunk's rows at a time: a table of the whole set cost 3x the frames (4x Human3.6M: 12 GB)
    tables = (frame_table(data, [k], split=part) for k in kept)
    meta = dict(data.metadata, num_joints=data.num_joints_2d, keypoints_symmetry=list(data.symmetry),
                dataset=data.dataset.to_dict())
    out, rows = write_outputs(tables, out, csv=csv, overwrite=overwrite, metadata=meta, inputs=inputs)
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    return {
        "out": out,
        "dataset": data.dataset.name,
        "subjects": sorted({s for s, _ in kept}),
        "left_out": list(data.metadata.get("left_out_subjects", [])),
        "empty_actions": list(data.metadata.get("empty_actions", [])),
        "actions": sorted({splits.action_name(a) for _, a in kept}),
        "chunks": len(kept),
        "frames": int(sum(data.frames(s, a) for s, a in kept)),
        "frames_cut_2d": int(data.metadata.get("frames_cut_2d", 0)),
        "rows": rows,
        "joints_2d": data.num_joints_2d,
        "joints_3d": data.dataset.skeleton.num_joints,
        "train_chunks": len(train),
        "test_chunks": len(test),
        "bytes": size,
    }


def write_outputs(tables, out, csv=False, overwrite=False, metadata=None, inputs=()):
    """`out`/subject=.../action=.../camera=.../part-0.parquet, _raypose.json, and _frames.csv if asked,
    from `tables` (frame tables, each of whole chunks, written as they come); returns (out, rows).

    Written into a temporary sibling directory and renamed into place at the end; `out` must
    pass outputs.check_replaceable (kind "prepared", none of `inputs` in it).
    """
    rows = 0
    with atomic_dir(out, overwrite, inputs, kind="prepared") as tmp:
        for i, table in enumerate([tables] if isinstance(tables, pa.Table) else tables):
            pads.write_dataset(table, tmp, format="parquet", partitioning=KEY, partitioning_flavor="hive",
                               basename_template="part-{i}.parquet",
                               existing_data_behavior="overwrite_or_ignore")
            if csv:
                write_csv(table, os.path.join(tmp, CSV_FILE), append=i > 0)
            rows += table.num_rows
        with open(os.path.join(tmp, METADATA_FILE), "w") as f:
            json.dump(plain(metadata or {}), f, indent=1)
    return os.path.abspath(os.fspath(out)), rows


def format_summary(summary):
    s = summary
    left_out = f", left out (2D but no 3D): {', '.join(s['left_out'])}" if s.get("left_out") else ""
    cut = f" ({s['frames_cut_2d']} extra 2D frames cut)" if s.get("frames_cut_2d") else ""
    empty = s.get("empty_actions") or []
    left_out += f", left out (0 frames): {', '.join(empty[:3])}{', ...' if len(empty) > 3 else ''}" if empty else ""
    return (f"wrote {s['out']}: {len(s['subjects'])} subjects ({', '.join(s['subjects'])}){left_out}, "
            f"actions {', '.join(s['actions'])}, {s['chunks']} chunks "
            f"({s['train_chunks']} train / {s['test_chunks']} test), {s['frames']} frames of 3D{cut}, "
            f"{s['rows']} rows ({s['joints_2d']} 2D joints), {s['bytes']:,} bytes")

"""The Ray Data pipeline: frame rows -> the split's chunks -> one row per (subject, action, camera) sequence.

Workers turn the sequence rows into receptive-field windows (`windows.make_windows`); the
datasets are materialised before training starts, because on a small node the members hold
every CPU and a lazy pipeline would wait forever for one.
"""
import json
import os
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from ..errors import UserError
from ..skeleton import LEFT, RIGHT
from . import splits
from .npz import FILE_3D, PoseData, load_humaneva
from .table import frame_table
from .windows import make_windows

KEY = ["subject", "action", "camera"]


@dataclass
class Source:
    """Where frames come from, with what the driver must know before any worker starts."""
    chunks: list            # every (subject, action) in key order
    num_joints_2d: int
    symmetry: tuple         # (left, right) of the 2D layout
    table: pa.Table | None  # in-memory frames (npz or synthetic input)
    parquet: str | None     # or a prepared Parquet dataset (local path or URI)
    description: str


def open_source(data_cfg):
    path = data_cfg.path
    if path == "synthetic":
        from .synthetic import generate
        pos2d, pos3d, meta = generate(frames=data_cfg.synthetic_frames, seed=data_cfg.synthetic_seed)
        return _from_pose_data(PoseData(pos2d, pos3d, meta), f"synthetic ({data_cfg.synthetic_frames} frames, seed {data_cfg.synthetic_seed})")
    if "://" not in path and os.path.isfile(os.path.join(path, FILE_3D)):
        return _from_pose_data(load_humaneva(path, data_cfg.keypoints), f"npz {path}")
    return _from_parquet(path)


def _from_pose_data(data, description):
    chunks = [(s, a) for s in data.positions_2d for a in data.positions_2d[s]]
    return Source(chunks, data.num_joints_2d, data.symmetry, frame_table(data), None, description)


def _from_parquet(path):
    if "://" in path:
        fs, root = pafs.FileSystem.from_uri(path)
    else:
        if not os.path.isdir(path):
            raise UserError(f"{path}: data not found; expected 'synthetic', an npz directory with "
                            f"{FILE_3D}, or a directory written by raypose prepare")
        fs, root = pafs.LocalFileSystem(), os.path.abspath(path)
    frames = root.rstrip("/") + "/frames"
    if fs.get_file_info(frames).type != pafs.FileType.Directory:
        frames = root
    try:
        keys = pads.dataset(frames, filesystem=fs, format="parquet", partitioning="hive")
        keys = keys.to_table(columns=["subject", "action"])
    except Exception as e:
        raise UserError(f"{path}: not a prepared frame table ({type(e).__name__}: {e})") from None
    meta = {}
    try:
        with fs.open_input_stream(root.rstrip("/") + "/metadata.json") as f:
            meta = json.loads(f.read())
    except (FileNotFoundError, OSError):
        pass
    pairs = list(dict.fromkeys(zip(keys.column("subject").to_pylist(), keys.column("action").to_pylist())))
    sym = meta.get("keypoints_symmetry") or [LEFT, RIGHT]
    nj = int(meta.get("num_joints", 15))
    uri = frames if "://" not in path else path.rstrip("/") + frames[len(root.rstrip("/")):]
    return Source(pairs, nj, (list(sym[0]), list(sym[1])), None, uri, f"parquet {path}")


def _to_sequence(group: pa.Table) -> pa.Table:
    """All frames of one (subject, action, camera), in frame order, as one row."""
    group = group.sort_by("frame")
    row = {k: [group.column(k)[0].as_py()] for k in KEY}
    row["frames"] = [group.num_rows]
    for col in ("keypoints", "pose_3d"):
        if col in group.column_names:
            flat = group.column(col).combine_chunks().flatten().to_numpy(zero_copy_only=False)
            row[col] = pa.array([flat.astype(np.float32)], type=pa.large_list(pa.float32()))
    return pa.table(row)


def sequence_dataset(source, chunks):
    """A materialised Ray Dataset with one row per sequence of the given chunks."""
    import ray.data

    if source.table is not None:
        ds = ray.data.from_arrow(source.table)
    else:
        ds = ray.data.read_parquet(source.parquet, partitioning=ray.data.datasource.Partitioning("hive"))
    subjects = pa.array(sorted({s for s, _ in chunks}))
    wanted = pa.array(sorted({f"{s}\x00{a}" for s, a in chunks}))

    def keep(batch: pa.Table) -> pa.Table:
        key = pc.binary_join_element_wise(batch.column("subject"), batch.column("action"), "\x00")
        return batch.filter(pc.and_(pc.is_in(batch.column("subject"), subjects), pc.is_in(key, wanted)))

    ds = ds.map_batches(keep, batch_format="pyarrow")
    # a handful of shuffle partitions: sequences are few and small, and each partition is a task
    ds = ds.groupby(KEY, num_partitions=min(8, 3 * len(chunks))).map_groups(_to_sequence, batch_format="pyarrow")
    return ds.materialize()


def datasets(source, split, actions):
    """{'train': ..., 'eval': ...} sequence datasets for a split protocol and action filter."""
    train, test = splits.select(source.chunks, split, actions or None, source=source.description)
    return {"train": sequence_dataset(source, train), "eval": sequence_dataset(source, test)}, train, test


def rows_to_sequences(batches, num_joints_2d):
    """Sequence rows (pyarrow batches) -> [((subject, action, camera), 2D, 3D or None)], sorted."""
    out = []
    for batch in batches:
        cols = {k: batch.column(k).to_pylist() for k in KEY + ["frames"]}
        kp = batch.column("keypoints")
        pose = batch.column("pose_3d") if "pose_3d" in batch.column_names else None
        for r in range(batch.num_rows):
            t = cols["frames"][r]
            key = tuple(cols[k][r] for k in KEY)
            k2 = np.asarray(kp[r].values.to_numpy(zero_copy_only=False), np.float32).reshape(t, num_joints_2d, 2)
            p3 = None if pose is None else np.asarray(pose[r].values.to_numpy(zero_copy_only=False), np.float32).reshape(t, 15, 3)
            out.append((key, k2, p3))
    out.sort(key=lambda s: s[0])
    return out


def shard_windows(shard, num_joints_2d, receptive_field):
    """Windows over every sequence of a Ray Data shard (each member reads the whole set)."""
    batches = shard.iter_batches(batch_format="pyarrow", batch_size=None)
    return make_windows(rows_to_sequences(batches, num_joints_2d), receptive_field)

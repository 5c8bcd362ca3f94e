"""The Ray Data pipeline: frame rows -> the split's chunks -> one row per (subject, action, camera) sequence.

Workers turn the sequence rows into receptive-field windows (`windows.make_windows`); the
datasets are materialised before training starts, because on a small node the members hold
every CPU and a lazy pipeline would wait forever for one.
"""
import functools

import numpy as np
import pyarrow as pa

from .source import read_sequences
from .table import KEY, chunk_filter, table_sequences


def _flat(arrays):
    return pa.array([np.ascontiguousarray(a, np.float32).ravel() for a in arrays], type=pa.large_list(pa.float32()))


def _to_sequence(group: pa.Table) -> pa.Table:
    """All frames of one (subject, action, camera), in frame order, as one row."""
    return _sequence_rows(table_sequences(group), "pose_3d" in group.column_names)


def _sequence_rows(sequences, with_3d):
    """One row per sequence [((subject, action, camera), 2D, 3D)]: what the workers read."""
    rows = {k: [key[i] for key, _, _ in sequences] for i, k in enumerate(KEY)}
    rows["frames"] = [len(kp) for _, kp, _ in sequences]
    rows["keypoints"] = _flat(kp for _, kp, _ in sequences)
    if with_3d:
        rows["pose_3d"] = _flat(pose for _, _, pose in sequences)
    return pa.table(rows)


def sequence_dataset(source, chunks, with_3d=True):
    """A materialised Ray Dataset with one row per sequence of the given chunks.

    with_3d=False drops the 3D before anything else happens: unlabelled chunks reach the
    members as 2D only, so their ground truth cannot leak into training.
    """
    import ray.data

    if source.table is not None:   # npz or synthetic frames, in this process already: no shuffle to pay
        return ray.data.from_arrow(_sequence_rows(read_sequences(source, chunks), with_3d)).materialize()
    # base_dir: only partitions below the table count, not a 'k=v' folder above it
    ds = ray.data.read_parquet(source.parquet, file_extensions=["parquet"],
                               partitioning=ray.data.datasource.Partitioning("hive", base_dir=source.parquet))
    ds = ds.map_batches(functools.partial(chunk_filter, chunks=chunks), batch_format="pyarrow")
    if not with_3d:
        ds = ds.drop_columns(["pose_3d"])
    # a handful of shuffle partitions: sequences are few and small, and each partition is a task
    ds = ds.groupby(KEY, num_partitions=min(8, 3 * len(chunks))).map_groups(_to_sequence, batch_format="pyarrow")
    return ds.materialize()


def datasets(source, labelled, unlabelled, test):
    """{'train', 'eval'[, 'unlabelled']} sequence datasets of the run's chunk lists
    (`splits.select` and `splits.labelled_split` chose them)."""
    out = {"train": sequence_dataset(source, labelled), "eval": sequence_dataset(source, test)}
    if unlabelled:
        out["unlabelled"] = sequence_dataset(source, unlabelled, with_3d=False)
    return out


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
            k2 = _values(kp[r]).reshape(t, num_joints_2d, 2)
            p3 = None if pose is None else _values(pose[r]).reshape(t, -1, 3)
            out.append((key, k2, p3))
    out.sort(key=lambda s: s[0])
    return out


def _values(cell):
    return np.asarray(cell.values.to_numpy(zero_copy_only=False), np.float32)


def shard_sequences(shard, num_joints_2d):
    """Every sequence of a Ray Data shard (each member reads the whole set)."""
    return rows_to_sequences(shard.iter_batches(batch_format="pyarrow", batch_size=None), num_joints_2d)

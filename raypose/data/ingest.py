"""The Ray Data pipeline: frame rows -> the split's chunks -> one row per (subject, action, camera) sequence.

A prepared table holds one file per sequence, and a read task reads whole files, so each block
turns into sequence rows where it was read: no shuffle. Should a block ever end inside a
sequence, the reader gets two rows of it and `rows_to_sequences` joins them by their first frame.

A Ray task turns the sequence rows into the run's windows (`train.windowset`) before training
starts, because on a small node the members hold every CPU and a pipeline would wait forever for
one; the windows go to every worker through the object store, once per node.
"""
import functools

import numpy as np
import pyarrow as pa

from raypose.data.table import KEY, chunk_filter, table_sequences

READ_TASKS_PER_CPU = 2   # a few files per task: one task per file costs more in scheduling than in reading


def _flat(arrays):
    return pa.array([np.ascontiguousarray(a, np.float32).ravel() for a in arrays], type=pa.large_list(pa.float32()))


def _sequence_rows(table, with_3d):
    """Frame table -> one row per sequence: key, frames, first frame ("start"), 2D[, 3D].

    The one row builder for in-memory and Parquet frames alike; typed columns, so a block
    with no frames of the chunks still has the schema of the others.
    """
    sequences = table_sequences(table)
    starts = _first_frames(table)
    rows = {k: pa.array([key[i] for key, _, _ in sequences], pa.string()) for i, k in enumerate(KEY)}
    rows["frames"] = pa.array([len(kp) for _, kp, _ in sequences], pa.int64())
    rows["start"] = pa.array([starts[key] for key, _, _ in sequences], pa.int64())
    rows["keypoints"] = _flat(kp for _, kp, _ in sequences)
    if with_3d:
        rows["pose_3d"] = _flat(pose for _, _, pose in sequences)
    return pa.table(rows)


def _first_frames(table):
    """{(subject, action, camera): its smallest frame number in `table`}."""
    if table.num_rows == 0:
        return {}
    first = table.select(KEY + ["frame"]).group_by(KEY).aggregate([("frame", "min")])
    cols = [first.column(k).to_pylist() for k in KEY]
    return dict(zip(zip(*cols), first.column("frame_min").to_pylist()))


def _block_rows(block, chunks, with_3d):
    """A read block (whole files, one sequence each) -> its sequence rows of `chunks`."""
    return _sequence_rows(chunk_filter(block, chunks), with_3d)


def sequence_dataset(source, chunks, with_3d=True):
    """A Ray Dataset (lazy: read as it is consumed) with one row per sequence of the given chunks of
    a prepared table (`source.parquet`).

    with_3d=False drops the 3D before anything else happens: unlabelled chunks reach the
    members as 2D only, so their ground truth cannot leak into training.
    """
    rows = functools.partial(_block_rows, chunks=chunks, with_3d=with_3d)
    return _read_table(source.parquet, chunks, with_3d).map_batches(rows, batch_format="pyarrow", batch_size=None)


def _read_table(path, chunks, with_3d):
    """Ray Data read of the chunks' files only, a few whole files per read task.

    Through Ray's V1 Parquet reader: in Ray 2.60 the V2 reader starts 32 footer-reading actors
    per read to list the files, ~7 s on a 2-CPU node for a table of small files (V1: <1 s).
    """
    import ray.data

    wanted = {(s, a) for s, a in chunks}
    # base_dir: only partitions below the table count, not a 'k=v' folder above it
    hive = dict(style="hive", base_dir=path)
    ctx = ray.data.DataContext.get_current()
    v2, ctx.use_datasource_v2 = getattr(ctx, "use_datasource_v2", False), False
    try:
        ds = ray.data.read_parquet(
            path, file_extensions=["parquet"], partitioning=ray.data.datasource.Partitioning(**hive),
            partition_filter=ray.data.datasource.PathPartitionFilter.of(
                lambda p: (p.get("subject"), p.get("action")) in wanted, **hive),
            override_num_blocks=_read_tasks(len(chunks)))
    finally:
        ctx.use_datasource_v2 = v2
    return ds.select_columns(KEY + ["frame", "keypoints"] + (["pose_3d"] if with_3d else []))


def _read_tasks(num_chunks):
    """Enough read tasks for every CPU of the cluster, never more than the files (3 cameras a chunk)."""
    import ray
    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1
    return max(1, min(3 * num_chunks, READ_TASKS_PER_CPU * cpus))


def read_chunks(source, labelled, unlabelled, test):
    """(training, evaluation) sequences of a prepared table, read by Ray Data's tasks as they are
    consumed here (in the Ray task that builds the run's windows, never the driver). Unlabelled
    chunks come as 2D only: their 3D is dropped before anything else happens."""
    train = shard_sequences(sequence_dataset(source, labelled), source.num_joints_2d) if labelled else []
    if unlabelled:
        train += shard_sequences(sequence_dataset(source, unlabelled, with_3d=False), source.num_joints_2d)
    test = shard_sequences(sequence_dataset(source, test), source.num_joints_2d) if test else []
    return train, test


def rows_to_sequences(batches, num_joints_2d):
    """Sequence rows (pyarrow batches) -> [((subject, action, camera), 2D, 3D or None)], sorted.

    Rows of the same sequence (a block that ended inside it) are joined in frame order.
    """
    parts = {}
    for batch in batches:
        cols = {k: batch.column(k).to_pylist() for k in KEY + ["frames", "start"]}
        kp = batch.column("keypoints")
        pose = batch.column("pose_3d") if "pose_3d" in batch.column_names else None
        for r in range(batch.num_rows):
            t = cols["frames"][r]
            key = tuple(cols[k][r] for k in KEY)
            k2 = _values(kp[r]).reshape(t, num_joints_2d, 2)
            p3 = None if pose is None else _values(pose[r]).reshape(t, -1, 3)
            parts.setdefault(key, []).append((cols["start"][r], k2, p3))
    return [(key, *_joined(parts[key])) for key in sorted(parts)]


def _joined(parts):
    """(2D, 3D or None) of one sequence's rows, in the order of their first frames."""
    if len(parts) == 1:
        return parts[0][1:]
    parts = sorted(parts, key=lambda p: p[0])
    pose = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
    return np.concatenate([p[1] for p in parts]), pose


def _values(cell):
    return np.asarray(cell.values.to_numpy(zero_copy_only=False), np.float32)


def shard_sequences(shard, num_joints_2d):
    """Every sequence of a Ray Data shard (each member reads the whole set)."""
    return rows_to_sequences(shard.iter_batches(batch_format="pyarrow", batch_size=None), num_joints_2d)

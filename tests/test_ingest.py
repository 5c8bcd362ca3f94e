"""Ray Data ingest of a prepared table: one row per sequence without a shuffle, the same
sequences the driver reads itself, whatever blocks the reader cuts."""
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from raypose.cli import main
from raypose.config import DataConfig
from raypose.data import ingest, splits
from raypose.data.source import open_source, read_sequences
from raypose.data.table import chunk_filter, table_sequences


@pytest.fixture(scope="module")
def prepared(synth_dir, tmp_path_factory):
    """`raypose prepare` of the session's synthetic npz: one Parquet file per sequence."""
    out = tmp_path_factory.mktemp("ingest") / "prepared"
    assert main(["prepare", "--npz-dir", str(synth_dir), "--out", str(out)]) == 0
    return open_source(DataConfig(path=str(out)))


def assert_same(got, ref, with_3d=True):
    assert [k for k, _, _ in got] == [k for k, _, _ in ref] and got
    for (key, kp, pose), (_, kp_ref, pose_ref) in zip(got, ref):
        np.testing.assert_array_equal(kp, kp_ref, err_msg=str(key))
        if with_3d:
            np.testing.assert_array_equal(pose, pose_ref, err_msg=str(key))
        else:
            assert pose is None, key


def _chunks(src):
    train, test = splits.select(src.chunks, "videopose3d")
    labelled, unlabelled = splits.labelled_split(train, 0.5, seed=0)
    assert labelled and unlabelled and test
    return labelled, unlabelled, test


@pytest.mark.ray
def test_datasets_match_the_driver_read(prepared, ray_local):
    """Each read block holds whole files, so each sequence is one row: no shuffle needed."""
    labelled, unlabelled, test = _chunks(prepared)
    for chunks, with_3d in ((labelled, True), (test, True), (unlabelled, False)):
        ds = ingest.sequence_dataset(prepared, chunks, with_3d)
        ref = read_sequences(prepared, chunks)
        assert ds.count() == len(ref) == 3 * len(chunks)
        assert ("pose_3d" in ds.columns()) == with_3d
        assert_same(ingest.shard_sequences(ds, prepared.num_joints_2d), ref, with_3d)
    train, evaluation = ingest.read_chunks(prepared, labelled, unlabelled, test)
    assert_same(train[:3 * len(labelled)], read_sequences(prepared, labelled))
    assert_same(train[3 * len(labelled):], read_sequences(prepared, unlabelled), with_3d=False)
    assert_same(evaluation, read_sequences(prepared, test))


def test_in_memory_frames_read_as_the_prepared_table(synth_dir, prepared):
    """npz frames go to sequences without a frame table: the same arrays, the same order."""
    npz = open_source(DataConfig(path=str(synth_dir)))
    assert npz.poses is not None and prepared.poses is None
    chunks = npz.chunks[::3]
    assert_same(read_sequences(npz, chunks), read_sequences(prepared, chunks))


@pytest.mark.ray
def test_sequences_split_across_blocks_are_joined(prepared, ray_local):
    """Blocks far smaller than a sequence: the reader cuts sequences, the consumer joins them."""
    import ray.data

    chunks = prepared.chunks[:4]
    ctx = ray.data.DataContext.get_current()
    saved = ctx.target_max_block_size
    ctx.target_max_block_size = 16 * 1024
    try:
        ds = ingest.sequence_dataset(prepared, chunks)
    finally:
        ctx.target_max_block_size = saved
    ref = read_sequences(prepared, chunks)
    assert ds.count() > len(ref), "expected some sequences split over several rows"
    assert_same(ingest.shard_sequences(ds, prepared.num_joints_2d), ref)


def test_rows_of_one_sequence_join_in_frame_order(prepared):
    """Parts of a sequence arrive in any order (late part first, spread over batches)."""
    table = chunk_filter(pads.dataset(prepared.parquet, format="parquet", partitioning="hive").to_table(),
                         prepared.chunks[:2])
    table = table.sort_by([("subject", "ascending"), ("action", "ascending"), ("camera", "ascending"),
                           ("frame", "ascending")])
    cut = [0, 7, 40, table.num_rows // 2, table.num_rows]   # inside sequences, across one boundary
    parts = [table.slice(lo, hi - lo) for lo, hi in zip(cut[:-1], cut[1:])]
    batches = [ingest._sequence_rows(p, with_3d=True) for p in reversed(parts)]
    assert sum(b.num_rows for b in batches) > len(table_sequences(table))
    assert_same(ingest.rows_to_sequences(batches, prepared.num_joints_2d), table_sequences(table))
    # a block with none of the chunks' frames keeps the typed schema of the others
    empty = ingest._sequence_rows(table.slice(0, 0), with_3d=True)
    assert empty.num_rows == 0 and empty.schema == batches[0].schema
    assert ingest.rows_to_sequences([pa.concat_tables([empty, batches[0]])], prepared.num_joints_2d)

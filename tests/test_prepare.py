"""`raypose prepare` on synthetic data, and every bad input it must refuse with one clear line."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.dataset as pads
import pytest

from raypose.cli import main
from raypose.data import npz, table
from raypose.data.source import open_source, read_sequences
from raypose.datasets.skeleton import NUM_JOINTS
from raypose.errors import UserError


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_user_error(capsys, argv, *needles, out_dir=None):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if out_dir is not None:
        assert not os.path.exists(out_dir), "a failed prepare left output behind"
        leftovers = [p for p in os.listdir(os.path.dirname(out_dir)) if ".tmp-" in p]
        assert not leftovers, leftovers
    return lines[0]


def read_table(out):
    """A prepared directory as users read it: the directory itself is the dataset."""
    return pads.dataset(out, format="parquet", partitioning="hive").to_table()


def test_prepare_writes_partitioned_parquet_and_csv(synth_dir, tmp_path, capsys):
    out = tmp_path / "prepared"
    code, stdout, err = run_cli(capsys, "prepare", "--npz-dir", str(synth_dir), "--out", str(out), "--csv")
    assert code == 0, err
    data = npz.load_humaneva(synth_dir)
    frames = sum(len(a) for s in data.positions_3d.values() for a in s.values())
    assert f"{frames} frames" in stdout and f"{3 * frames} rows" in stdout
    # hive layout subject=/action=/camera=, values URI-encoded (Train/S1 holds a slash)
    dirs = {os.path.relpath(r, out) for r, _, f in os.walk(out) if f and r != str(out)}
    walking = os.path.join("subject=Train%2FS1", "action=Walking%201%20chunk0", "camera=C")
    assert any(d.startswith(walking) for d in dirs)
    # partitions straight under out; the side files start with '_' so dataset readers skip them
    assert sorted(p for p in os.listdir(out) if not p.startswith("subject=")) == ["_frames.csv", "_raypose.json"]
    assert json.loads((out / "_raypose.json").read_text())["num_joints"] == NUM_JOINTS
    t = read_table(out)
    assert t.num_rows == 3 * frames
    assert set(t.column("subject").to_pylist()) == set(data.positions_3d)
    assert set(t.column("split").to_pylist()) == {"train", "test"}
    # rows match the npz: pixels verbatim, normalised 2D, 3D root-relative in camera coordinates
    seqs = {k: (kp, pose) for k, kp, pose in table.table_sequences(t)}
    kp, pose = seqs[("Train/S2", "Jog 1 chunk1", "C3")]
    np.testing.assert_allclose(kp * 320 + np.array([320, 240]), data.positions_2d["Train/S2"]["Jog 1 chunk1"][2],
                               atol=1e-3)
    assert np.all(pose[:, 0] == 0)
    world = data.positions_3d["Train/S2"]["Jog 1 chunk1"]
    # camera transform keeps bone lengths
    np.testing.assert_allclose(np.linalg.norm(pose[:, 1] - pose[:, 14], axis=-1),
                               np.linalg.norm(world[:, 1] - world[:, 14], axis=-1), rtol=1e-5)
    # CSV in the 2022 layout
    import pandas as pd
    df = pd.read_csv(out / "_frames.csv")
    assert list(df.columns[:5]) == ["Subject", "Action", "Camera", "x1", "y1"]
    assert list(df.columns[-3:]) == ["X15", "Y15", "Z15"]
    assert df.shape == (3 * frames, 3 + NUM_JOINTS * 2 + NUM_JOINTS * 3)


def test_prepare_action_filter_and_overwrite(synth_dir, tmp_path, capsys):
    out = tmp_path / "p"
    assert run_cli(capsys, "prepare", "--npz-dir", str(synth_dir), "--out", str(out), "--actions", "Walk")[0] == 0
    t = read_table(out)
    assert {a.split()[0] for a in t.column("action").to_pylist()} == {"Walking"}
    assert_user_error(capsys, ["prepare", "--npz-dir", str(synth_dir), "--out", str(out)],
                      str(out), "not empty")
    assert read_table(out).num_rows == t.num_rows  # untouched
    assert run_cli(capsys, "prepare", "--npz-dir", str(synth_dir), "--out", str(out), "--overwrite")[0] == 0
    assert read_table(out).num_rows > t.num_rows
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p]


def test_seventeen_keypoint_input_keeps_its_width(synth_copy, tmp_path, capsys):
    """Detector files carry 17 COCO keypoints: the table keeps 17, the 3D side stays 15."""
    p2 = synth_copy / "data_2d_humaneva15_gt.npz"
    pos2d, meta = npz.load_2d(p2)
    for actions in pos2d.values():
        for a, cams in actions.items():
            actions[a] = [np.concatenate([kp, kp[:, :2]], axis=1) for kp in cams]
    meta = dict(meta, layout_name="coco", num_joints=17,
                keypoints_symmetry=[[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]])
    npz.save_2d(synth_copy / "data_2d_humaneva15_coco.npz", pos2d, meta)
    out = tmp_path / "p17"
    code, stdout, err = run_cli(capsys, "prepare", "--npz-dir", str(synth_copy), "--out", str(out),
                                "--keypoints", "coco")
    assert code == 0, err
    assert "17 2D joints" in stdout
    t = read_table(out)
    assert t.schema.field("keypoints").type.list_size == 34
    assert t.schema.field("pose_3d").type.list_size == 45
    data = npz.load_humaneva(synth_copy, "coco")
    assert data.num_joints_2d == 17 and data.symmetry[0][0] == 1
    # a run on the prepared directory gets the 17-joint layout from _raypose.json
    src = open_source(_data_cfg(out))
    assert src.num_joints_2d == 17 and src.symmetry[0][0] == 1
    (key, kp, pose), *_ = read_sequences(src, src.chunks[:1])
    assert kp.shape[1:] == (17, 2) and pose.shape[1:] == (15, 3)


# ---- the prepared directory as other tools and raypose read it ----------------------------------

def _data_cfg(path):
    from raypose.config import DataConfig
    return DataConfig(path=str(path))


@pytest.fixture(scope="module")
def prepared(synth_dir, tmp_path_factory):
    """One prepared directory with the CSV beside the partitions, shared by the reader tests."""
    out = tmp_path_factory.mktemp("prepared") / "out"
    assert main(["prepare", "--npz-dir", str(synth_dir), "--out", str(out), "--csv"]) == 0
    return out


@pytest.mark.parametrize("csv", [False, True])
def test_arrow_pandas_duckdb_read_the_directory(synth_dir, tmp_path, capsys, csv):
    """Pointing a reader at --out is what users try first: it must work, with or without --csv."""
    import duckdb
    import pandas as pd

    out = tmp_path / "out"
    argv = ["prepare", "--npz-dir", str(synth_dir), "--out", str(out)] + (["--csv"] if csv else [])
    assert run_cli(capsys, *argv)[0] == 0
    assert (out / "_frames.csv").exists() == csv
    data = npz.load_humaneva(synth_dir)
    rows = 3 * sum(len(a) for s in data.positions_3d.values() for a in s.values())
    subjects = sorted(data.positions_3d)        # 'Train/S1': a slash, stored as Train%2FS1 on disk

    t = pads.dataset(out, format="parquet", partitioning="hive").to_table()
    assert t.num_rows == rows and sorted(set(t.column("subject").to_pylist())) == subjects

    df = pd.read_parquet(out)
    assert len(df) == rows and sorted(df["subject"].astype(str).unique()) == subjects

    # DuckDB (2.0) also URI-decodes hive values: it gives back 'Train/S1', not 'Train%2FS1'
    rel = f"read_parquet('{out}/**/*.parquet', hive_partitioning=true)"
    assert duckdb.sql(f"select count(*) from {rel}").fetchall()[0][0] == rows
    assert [r[0] for r in duckdb.sql(f"select distinct subject from {rel} order by 1").fetchall()] == subjects
    assert duckdb.sql(f"select count(*) from {rel} where subject = 'Train/S1' and camera = 'C2'").fetchall()[0][0] \
        == sum(len(a) for a in data.positions_3d["Train/S1"].values())


def _old_layout(new, old):
    """A directory as prepare wrote it before: partitions under frames/, metadata.json, frames.csv."""
    shutil.copytree(new, old / "frames")
    os.rename(old / "frames" / "_raypose.json", old / "metadata.json")
    os.rename(old / "frames" / "_frames.csv", old / "frames.csv")


def test_source_reads_new_and_old_layouts(prepared, tmp_path):
    old = tmp_path / "old"
    _old_layout(prepared, old)
    new_src, old_src = open_source(_data_cfg(prepared)), open_source(_data_cfg(old))
    assert new_src.parquet == str(prepared) and old_src.parquet == str(old / "frames")
    assert new_src.chunks == old_src.chunks and len(new_src.chunks) > 4
    assert (new_src.num_joints_2d, new_src.symmetry) == (old_src.num_joints_2d, old_src.symmetry)
    want = new_src.chunks[1:4:2]
    a, b = read_sequences(new_src, want), read_sequences(old_src, want)
    assert [k[:2] for k, _, _ in a] == [c for c in want for _ in range(3)]  # three cameras each
    for (ka, kpa, pa_), (kb, kpb, pb) in zip(a, b):
        assert ka == kb
        np.testing.assert_array_equal(kpa, kpb)
        np.testing.assert_array_equal(pa_, pb)


def test_chunk_filter_keeps_exactly_the_chunks(prepared):
    t = read_table(prepared)
    chunks = [("Train/S1", "Jog 1 chunk0"), ("Validate/S3", "Box 1 chunk0"), ("Train/S1", "no such")]
    kept = table.chunk_filter(t, chunks)
    assert set(zip(kept.column("subject").to_pylist(), kept.column("action").to_pylist())) == set(chunks[:2])
    assert table.chunk_filter(t, []).num_rows == 0


def test_bad_prepared_directories_are_user_errors(prepared, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="empty: no Parquet files found; expected a directory written by"):
        open_source(_data_cfg(empty))
    (empty / "part-0.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="empty: not a prepared frame table .*expected a directory") as e:
        open_source(_data_cfg(empty))
    assert "\n" not in str(e.value)
    broken = tmp_path / "broken"
    shutil.copytree(prepared, broken)
    (broken / "_raypose.json").write_text("{not json")
    with pytest.raises(UserError, match="_raypose.json: unreadable metadata .*expected the JSON") as e:
        open_source(_data_cfg(broken))
    assert "\n" not in str(e.value)


# ---- bad input: one line, exit 2, no traceback, nothing written ---------------------------------

def _rewrite(path, key, mutate):
    content = npz.read_npz(path)
    mutate(content[key])
    npz.save_npz(path, **content)


def _prep(d, tmp_path):
    out = tmp_path / "out"
    return ["prepare", "--npz-dir", str(d), "--out", str(out)], str(out)


def test_missing_file(synth_copy, tmp_path, capsys):
    os.remove(synth_copy / "data_3d_humaneva15.npz")
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "data_3d_humaneva15.npz", "not found", out_dir=out)


def test_missing_directory(tmp_path, capsys):
    argv, out = _prep(tmp_path / "nowhere", tmp_path)
    assert_user_error(capsys, argv, "nowhere", "not found", out_dir=out)


def test_not_an_npz(synth_copy, tmp_path, capsys):
    (synth_copy / "data_2d_humaneva15_gt.npz").write_text("subject,action\n")
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "data_2d_humaneva15_gt.npz", "not an npz", out_dir=out)


def test_truncated_npz(synth_copy, tmp_path, capsys):
    p = synth_copy / "data_3d_humaneva15.npz"
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "data_3d_humaneva15.npz", out_dir=out)


@pytest.mark.parametrize("fname,key", [("data_2d_humaneva15_gt.npz", "positions_2d"),
                                       ("data_3d_humaneva15.npz", "positions_3d")])
def test_missing_key(synth_copy, tmp_path, capsys, fname, key):
    np.savez(synth_copy / fname, other=np.zeros(3))
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, fname, f"'{key}'", out_dir=out)


def test_subject_only_in_one_file(synth_copy, tmp_path, capsys):
    _rewrite(synth_copy / "data_3d_humaneva15.npz", "positions_3d", lambda d: d.pop("Validate/S2"))
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "data_3d_humaneva15.npz", "Validate/S2", "missing", out_dir=out)


def test_action_only_in_one_file(synth_copy, tmp_path, capsys):
    _rewrite(synth_copy / "data_2d_humaneva15_gt.npz", "positions_2d", lambda d: d["Train/S1"].pop("Box 1 chunk0"))
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "data_2d_humaneva15_gt.npz", "Box 1 chunk0", out_dir=out)


def test_frame_count_mismatch(synth_copy, tmp_path, capsys):
    def cut(d):
        d["Train/S3"]["Walking 1 chunk0"][1] = d["Train/S3"]["Walking 1 chunk0"][1][:-5]
    _rewrite(synth_copy / "data_2d_humaneva15_gt.npz", "positions_2d", cut)
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "Train/S3", "Walking 1 chunk0", "frames", out_dir=out)


def test_3d_joint_count(synth_copy, tmp_path, capsys):
    def drop(d):
        d["Train/S1"]["Jog 1 chunk0"] = d["Train/S1"]["Jog 1 chunk0"][:, :14]
    _rewrite(synth_copy / "data_3d_humaneva15.npz", "positions_3d", drop)
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "positions_3d", "Jog 1 chunk0", "expected 15 joints", out_dir=out)


def test_2d_joint_count_differs_between_cameras(synth_copy, tmp_path, capsys):
    def drop(d):
        d["Train/S1"]["Jog 1 chunk0"][2] = d["Train/S1"]["Jog 1 chunk0"][2][:, :14]
    _rewrite(synth_copy / "data_2d_humaneva15_gt.npz", "positions_2d", drop)
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "positions_2d", "14 joints, but other tracks have 15", out_dir=out)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_coordinates(synth_copy, tmp_path, capsys, bad):
    def poison(d):
        d["Validate/S1"]["Box 1 chunk0"][7, 3, 1] = bad
    _rewrite(synth_copy / "data_3d_humaneva15.npz", "positions_3d", poison)
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "Validate/S1", "Box 1 chunk0", "NaN or infinite", out_dir=out)


def test_unknown_split(synth_dir, tmp_path, capsys):
    argv, out = _prep(synth_dir, tmp_path)
    assert_user_error(capsys, argv + ["--split", "random"], "split 'random'", "videopose3d", out_dir=out)


def test_action_filter_selects_nothing(synth_dir, tmp_path, capsys):
    argv, out = _prep(synth_dir, tmp_path)
    assert_user_error(capsys, argv + ["--actions", "Dance"], "Dance", "selects no", out_dir=out)


def test_output_is_a_file(synth_dir, tmp_path, capsys):
    f = tmp_path / "out"
    f.write_text("keep me")
    assert_user_error(capsys, ["prepare", "--npz-dir", str(synth_dir), "--out", str(f)], "not a directory")
    assert f.read_text() == "keep me"


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_hostile_pickle_is_refused(synth_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = synth_copy / "data_3d_humaneva15.npz"
    arr = np.empty((), dtype=object)
    arr[()] = {"Train/S1": {"Walking 1 chunk0": _Payload()}}
    np.savez(p, positions_3d=arr)
    import zipfile
    assert b"system" in zipfile.ZipFile(p).read("positions_3d.npy")  # the payload is really there
    argv, out = _prep(synth_copy, tmp_path)
    assert_user_error(capsys, argv, "data_3d_humaneva15.npz", "refusing", out_dir=out)
    assert not (tmp_path / "PWNED").exists()


def test_error_is_one_line_from_the_real_command(synth_copy, tmp_path):
    """The installed entry point, not just main(): no traceback reaches the terminal."""
    (synth_copy / "data_2d_humaneva15_gt.npz").write_bytes(b"\x00" * 10)
    r = subprocess.run([sys.executable, "-m", "raypose.cli", "prepare", "--npz-dir", str(synth_copy),
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "data_2d_humaneva15_gt.npz" in r.stderr
    assert not (tmp_path / "o").exists()


def test_bad_cli_arguments_are_one_line(capsys):
    assert_user_error(capsys, ["prepare", "--out", "x"], "--npz-dir")
    assert_user_error(capsys, ["synth", "--out", "x", "--frames", "many"], "--frames")


@pytest.mark.ray
def test_ray_reads_the_directory(prepared, tmp_path, ray_local):
    """Ray Data reads the directory itself, never _raypose.json or _frames.csv.

    The table sits below a 'run=1' folder: only partitions under the table may become columns.
    (Old layouts give Ray their frames/ folder, as before; one Ray read here, each takes ~10 s.)
    """
    from raypose.data.ingest import sequence_dataset, shard_sequences

    new = tmp_path / "run=1" / "new"
    shutil.copytree(prepared, new)
    src = open_source(_data_cfg(new))
    want = src.chunks[:3:2]
    ds = sequence_dataset(src, want)
    assert "run" not in ds.columns()
    got = shard_sequences(ds, src.num_joints_2d)
    ref = read_sequences(src, want)
    assert [k for k, _, _ in got] == [k for k, _, _ in ref] and len(ref) == 6
    for (_, kp, pose), (_, kp_ref, pose_ref) in zip(got, ref):
        np.testing.assert_array_equal(kp, kp_ref)
        np.testing.assert_array_equal(pose, pose_ref)
    # npz and synthetic frames are in the driver already: it builds the windows itself (no Ray Data),
    # puts them in the object store and lets its frames go; the unlabelled chunks' 3D never reaches them
    from raypose import config as C
    from raypose.data.source import source_layout
    from raypose.train.run import window_set
    mem, fresh = open_source(_data_cfg("synthetic")), open_source(_data_cfg("synthetic"))
    cfg = C.with_values(C.Config(), {"model.widths": [3, 3], "uncertainty.holdout": 0.0})
    labelled, unlabelled = mem.chunks[:2], mem.chunks[2:4]
    ref, size = window_set(ray_local, cfg, source_layout(mem), mem, (labelled, unlabelled, mem.chunks[4:5]))
    w = ray_local.get(ref)
    assert size == w.nbytes() and mem.poses is None and not w.train.inputs.flags.writeable
    assert w.train.labelled.sum() == sum(len(kp) for _, kp, _ in read_sequences(fresh, labelled))
    assert (~w.train.labelled).sum() == sum(len(kp) for _, kp, _ in read_sequences(fresh, unlabelled))
    assert not w.train.targets[~w.train.labelled].any()

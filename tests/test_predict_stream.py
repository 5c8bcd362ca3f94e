"""`raypose predict` one track at a time (issue 26): the numbers of the whole file windowed at once,
bit for bit; the npz or a Parquet table (a row per frame) by the suffix of --out; nothing left
behind when it stops half-way; `export` reads either."""
import json
import os

import numpy as np
import pytest

from raypose.cli import main
from raypose.commands import predict as P
from raypose.data.npz import read_npz, save_2d
from raypose.data.windows import make_windows
from raypose.datasets.cameras import image_coordinates
from raypose.ensemble.ensemble import Ensemble
from raypose.interop.inputs import read_2d
from raypose.interop.predfile import read_parquet
from raypose.interop.tracks import prepare
from raypose.model.geometry import trajectory, window_focals
from raypose.run import Run

J = 15
LENGTHS = {("S1", "walk"): [40, 25, 0], ("S1", "jog"): [61], ("S2", "box"): [33, 47]}


@pytest.fixture(scope="module")
def run_dir(local_run):
    return local_run


@pytest.fixture(scope="module")
def two_d(tmp_path_factory):
    """Six tracks of HumanEva-15 2D in pixels, one with 0 frames, two with joints missing."""
    rng = np.random.default_rng(7)
    pos = {}
    for (subject, action), lengths in LENGTHS.items():
        cams = []
        for t in lengths:
            base = rng.uniform([200, 100], [440, 380], (1, J, 2))
            cams.append((base + np.cumsum(rng.normal(0, 2, (t, J, 2)), 0)).astype(np.float32))
        pos.setdefault(subject, {})[action] = cams
    pos["S1"]["walk"][0][rng.random((40, J)) < 0.15] = np.nan   # gaps, filled in from neighbours
    pos["S2"]["box"][1][5:20, 4] = np.nan
    path = tmp_path_factory.mktemp("stream") / "in.npz"
    save_2d(path, pos, {})
    return path


def _whole_file(run_dir, inp):
    """Per (subject, action, camera): what predict computed before it streamed, every track
    windowed together, through the members, radii and trajectory at once."""
    run = Run.open(run_dir)
    ensemble = Ensemble.load(run)
    tracks = list(prepare(read_2d(inp), ensemble.layout, inp).each())
    windows = make_windows([(key, kp, None) for key, kp, *_ in tracks], int(np.prod(run.config.model.widths)),
                           [gaps for *_, gaps, _ in tracks])
    _, pose, unc, vspread = ensemble.estimate(windows)
    radius = ensemble.calibration.radius(windows, vspread)
    root = trajectory(pose, windows.centre(), window_focals(run.focals(), windows.key_per_target(2)))
    centre = windows.centre()
    out = {}
    for key, lo, hi in zip(windows.keys, windows.offsets[:-1], windows.offsets[1:]):
        size = next(size for k, *_, size in tracks if k == key)
        out[key] = {"positions_3d": pose[lo:hi], "uncertainty": unc[lo:hi], "radius": radius[lo:hi],
                    "trajectory": root[lo:hi], "keypoints_2d": image_coordinates(centre[lo:hi], *size),
                    "filled": next(f for k, _, f, *_ in tracks if k == key)}
    return out


def _per_track(content):
    """{(subject, action, camera): {name: array}} of read_npz's nesting (cameras C1, C2 ...)."""
    out = {}
    for name, subjects in content.items():
        if name == "metadata":
            continue
        for subject, actions in subjects.items():
            for action, cams in actions.items():
                for c, a in enumerate(cams):
                    out.setdefault((subject, action, f"C{c + 1}"), {})[name] = a
    return out


def test_streamed_npz_is_the_whole_file_at_once_bit_for_bit(run_dir, two_d, tmp_path):
    assert main(["predict", "--run", str(run_dir), "--input", str(two_d), "--out", str(tmp_path / "p.npz")]) == 0
    got = _per_track(read_npz(tmp_path / "p.npz"))
    want = _whole_file(run_dir, two_d)
    assert list(got) == [(s, a, f"C{c + 1}") for (s, a), ls in LENGTHS.items() for c in range(len(ls))]
    assert {k: len(v["positions_3d"]) for k, v in got.items()} == {
        (s, a, f"C{c + 1}"): t for (s, a), ls in LENGTHS.items() for c, t in enumerate(ls)}
    assert got[("S1", "walk", "C3")]["radius"].shape == (0, J, 3)   # the 0-frame track keeps its place
    assert sorted(want) == sorted(k for k, v in got.items() if len(v["positions_3d"]))
    assert got[("S1", "walk", "C1")]["filled"].any()
    for key, arrays in want.items():
        assert sorted(got[key]) == sorted(arrays)
        for name, a in arrays.items():
            assert got[key][name].dtype == (bool if name == "filled" else np.float32)
            assert np.array_equal(got[key][name], a), (key, name)   # exactly: not a rounding apart
    meta = read_npz(tmp_path / "p.npz")["metadata"]
    assert meta["input"]["tracks"]["S1/walk/C1"]["filled_share"] > 0
    assert meta["uncertainty_calibration"]["outside_calibrated_range"] >= 0
    assert meta["trajectory"]["written"] is True


def test_parquet_holds_the_npz_a_row_per_frame(run_dir, two_d, tmp_path):
    import duckdb
    import pandas as pd
    for name in ("p.npz", "p.parquet"):
        assert main(["predict", "--run", str(run_dir), "--input", str(two_d), "--out", str(tmp_path / name)]) == 0
    npz, table = read_npz(tmp_path / "p.npz"), read_parquet(tmp_path / "p.parquet")
    assert table["metadata"] == json.loads(json.dumps(npz["metadata"]))
    got, want = _per_track(table), _per_track(npz)
    assert list(got) == list(want)
    for key in want:
        for name, a in want[key].items():
            assert got[key][name].dtype == a.dtype and np.array_equal(got[key][name], a), (key, name)

    df = pd.read_parquet(tmp_path / "p.parquet")
    assert list(df.columns[:4]) == ["subject", "action", "camera", "frame"]
    assert len(df) == sum(sum(ls) for ls in LENGTHS.values())
    row = df[(df.subject == "S2") & (df.action == "box") & (df.camera == "C2") & (df.frame == 10)].iloc[0]
    track = want[("S2", "box", "C2")]
    assert np.array_equal(np.asarray(row.pose_3d, np.float32).reshape(J, 3), track["positions_3d"][10])
    assert np.array_equal(np.asarray(row.radius, np.float32).reshape(J, 3), track["radius"][10])

    frames = duckdb.sql(f"select subject, action, camera, count(*) as n, max(frame) as last, avg(uncertainty[2]) as u "
                        f"from '{tmp_path / 'p.parquet'}' group by all order by n").fetchall()
    assert [(s, a, c, n, last) for s, a, c, n, last, _ in frames] == sorted(
        [(*key, len(v["positions_3d"]), len(v["positions_3d"]) - 1) for key, v in want.items()
         if len(v["positions_3d"])], key=lambda r: r[3])
    for s, a, c, _, _, u in frames:   # duckdb lists count from 1: joint 1's spread
        assert u == pytest.approx(want[(s, a, c)]["uncertainty"][:, 1].astype(np.float64).mean(), rel=1e-6)


def test_export_reads_parquet_as_it_reads_the_npz(run_dir, two_d, tmp_path):
    for name in ("p.npz", "p.parquet"):
        assert main(["predict", "--run", str(run_dir), "--input", str(two_d), "--out", str(tmp_path / name)]) == 0
    for fmt in ("csv", "json", "bvh"):
        for name in ("p.npz", "p.parquet"):
            out = tmp_path / f"{fmt}_{name}"
            assert main(["export", str(tmp_path / name), "--format", fmt, "--out", str(out)]) == 0
        a, b = tmp_path / f"{fmt}_p.npz", tmp_path / f"{fmt}_p.parquet"
        assert sorted(os.listdir(a)) == sorted(os.listdir(b))
        for f in os.listdir(a):
            if f == "raypose_export.json" or fmt == "json":   # they name their source file
                continue
            lines_a, lines_b = (p.joinpath(f).read_text().splitlines() for p in (a, b))
            assert lines_a[1:] == lines_b[1:] if fmt == "csv" else lines_a == lines_b, f
        if fmt == "json":
            ja, jb = (json.loads((p / "poses.json").read_text()) for p in (a, b))
            assert ja["tracks"] == jb["tracks"] and len(ja["tracks"]) == 6


def test_another_suffix_is_one_line_and_nothing_is_written(run_dir, two_d, tmp_path, capsys):
    assert main(["predict", "--run", str(run_dir), "--input", str(two_d), "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "p.csv: unknown suffix; expected OUT.npz" in err and ".parquet" in err
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("name", ["p.npz", "p.parquet"])
def test_stopped_half_way_leaves_nothing(run_dir, two_d, tmp_path, monkeypatch, name):
    """Interrupted after the third track (the Parquet file has had rows written by then): no output,
    no temporary file."""
    monkeypatch.setattr("raypose.interop.predfile.ROW_GROUP", 1)   # every track written as it comes
    step, calls = P.Step.__call__, []

    def stop(self, *args):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return step(self, *args)
    monkeypatch.setattr(P.Step, "__call__", stop)
    with pytest.raises(KeyboardInterrupt):
        P.predict_file(run_dir, two_d, tmp_path / "out" / name)
    assert len(calls) == 4
    assert not os.path.exists(tmp_path / "out") or not os.listdir(tmp_path / "out")


def test_plot_reads_parquet_as_it_reads_the_npz(run_dir, two_d, tmp_path):
    from raypose.commands.plot import _read_prediction
    for name in ("p.npz", "p.parquet"):
        assert main(["predict", "--run", str(run_dir), "--input", str(two_d), "--out", str(tmp_path / name)]) == 0
    a, b = _read_prediction(tmp_path / "p.npz"), _read_prediction(tmp_path / "p.parquet")
    assert a["skeleton"].parents == b["skeleton"].parents
    for name in ("positions_3d", "keypoints_2d", "filled", "trajectory"):
        assert np.array_equal(a[name]["S2"]["box"][1], b[name]["S2"]["box"][1])


def test_parquet_whose_last_track_fills_a_row_group(tmp_path):
    """Tracks that end exactly on a row group leave nothing waiting for `finish` (the 3,200,000-frame
    benchmark's predict failed there): the file closes and reads back whole."""
    from raypose.interop import predfile
    rows = predfile.ROW_GROUP
    path = tmp_path / "p.parquet"
    tracks = [(("S1", "Walk", "C1"), rows // 2), (("S1", "Walk", "C2"), rows - rows // 2)]
    with open(path, "wb") as f, predfile.ParquetSink(f, str(path)) as sink:
        for key, n in tracks:
            sink.add(key, {"positions_3d": np.full((n, 17, 3), 0.5, np.float32),
                           "uncertainty": np.zeros((n, 17), np.float32), "filled": np.zeros((n, 17), bool)})
        sink.finish({"quantiles": [0.5]})
    back = read_parquet(path)
    assert [len(a) for a in back["positions_3d"]["S1"]["Walk"]] == [rows // 2, rows - rows // 2]
    assert back["metadata"] == {"quantiles": [0.5]}

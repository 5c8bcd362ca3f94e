"""Human3.6M-sized data at a small scale: the frames once per node, bounded per-iteration scoring,
memory planned before Ray is asked, and Ray's memory monitor as one line. scripts/bench_scale.py
measures the real sizes; these catch a regression without an 800,000-frame run."""
import numpy as np
import pytest

from raypose import config as C
from raypose.data.windows import make_windows
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import LEFT, RIGHT
from raypose.errors import UserError
from raypose.train import memory
from raypose.train.plan import NodeType, plan
from raypose.train.windowset import WindowSet, build, middle_frames

LAYOUT = Layout.of(15, (LEFT, RIGHT))


def _seqs(n, t, labelled=True, seed=0):
    rng = np.random.default_rng(seed)
    return [((f"S{i % 3}", f"Walk {i}", f"C{i % 2 + 1}"), rng.normal(size=(t, 15, 2)).astype(np.float32),
             rng.normal(size=(t, 15, 3)).astype(np.float32) if labelled else None) for i in range(n)]


def test_make_windows_fills_one_array_as_before():
    """The preallocated windows equal the padded concatenation they replace, gaps and unlabelled too."""
    seqs = _seqs(4, 30) + _seqs(2, 17, labelled=False, seed=1) + [(("S9", "Box 1", "C1"), np.zeros((0, 15, 2)), None)]
    gaps = [np.arange(len(kp) * 15).reshape(len(kp), 15) % 3 for _, kp, _ in seqs]
    w = make_windows(seqs, 9, gaps)
    pad = 4
    kept = [s for s in seqs if len(s[1])]
    ref = np.concatenate([np.concatenate([kp[:1].repeat(pad, 0), kp, kp[-1:].repeat(pad, 0)]) for _, kp, _ in kept])
    np.testing.assert_array_equal(w.inputs, ref)
    assert w.keys == [k for k, _, _ in kept] and w.offsets.tolist() == [0, 30, 60, 90, 120, 137, 154]
    np.testing.assert_array_equal(w.targets[:120], np.concatenate([p for _, _, p in kept[:4]]))
    assert not w.targets[120:].any() and w.labelled.tolist() == [True] * 120 + [False] * 34
    np.testing.assert_array_equal(w.inputs[w.starts + pad], np.concatenate([kp for _, kp, _ in kept]))
    assert w.gaps.shape == (len(w.inputs), 15) and (w.gaps[w.starts + pad][:30] == gaps[0]).all()


def test_middle_frames_bound_the_scored_frames():
    seqs = _seqs(3, 100) + _seqs(1, 10, seed=2)
    assert middle_frames(seqs, 0) is seqs and middle_frames(seqs, 310) is seqs
    cut = middle_frames(seqs, 155)
    lengths = [len(kp) for _, kp, _ in cut]
    assert lengths == [50, 50, 50, 5] and sum(lengths) <= 155
    np.testing.assert_array_equal(cut[0][1], seqs[0][1][25:75])
    np.testing.assert_array_equal(cut[0][2], seqs[0][2][25:75])


def test_windowset_caps_eval_and_calibration_only():
    cfg = C.with_values(C.Config(), {"model.widths": [3, 3], "train.eval_frames": 60, "uncertainty.max_frames": 20,
                                     "uncertainty.holdout": 0.2})
    ws = build(cfg, LAYOUT, _seqs(6, 50), _seqs(4, 40, seed=3))
    assert isinstance(ws, WindowSet) and len(ws.eval) == 60
    assert len(ws.train) == 6 * 40 and len(ws.calib[0][1]) == 18 and len(ws.calib) == 5
    assert ws.nbytes() >= ws.train.inputs.nbytes + ws.train.targets.nbytes
    whole = build(C.with_values(cfg, {"train.eval_frames": 0, "uncertainty.max_frames": 0}), LAYOUT,
                  _seqs(6, 50), _seqs(4, 40, seed=3))
    assert len(whole.eval) == 160 and len(whole.calib[0][1]) == 60
    np.testing.assert_array_equal(whole.train.inputs, ws.train.inputs)


def test_memory_plan_refuses_a_node_too_small_in_one_line():
    cfg = C.with_values(C.Config(), {"train.members": 5, "model.channels": 64})
    types = [NodeType("the driver's node", cpus=2, driver=True, memory=24 * memory.GIB)]
    p = plan(5, types)
    est = memory.check(p, types, 1.0 * memory.GIB, cfg, 17, 17)
    assert 4 * memory.GIB < est["the driver's node"] < 8 * memory.GIB
    with pytest.raises(UserError) as e:
        memory.check(p, types, 30 * memory.GIB, cfg, 17, 17)
    msg = str(e.value)
    assert "\n" not in msg and "would need about" in msg and "has 24.0 GiB" in msg and "--members" in msg
    more = memory.node_bytes(6, 1, 0, cfg, 17, 17, False, True)[0] - memory.node_bytes(5, 1, 0, cfg, 17, 17,
                                                                                      False, True)[0]
    assert more < 0.75 * memory.GIB   # a further member on a node: its worker, not another copy of the data
    unknown = [NodeType("a node", cpus=2, driver=True)]   # memory unknown: not checked
    assert memory.check(plan(5, unknown), unknown, 10 ** 15, cfg, 17, 17) == {}


def test_ray_memory_monitor_kill_is_one_line():
    from raypose.train.run import user_error

    class OutOfMemoryError(Exception):
        pass
    text = ("Task was killed due to the node running low on memory. Memory on the node (IP: 10.0.0.1) where "
            "the task was running was 22.68GB used / 23.54GB limit")
    err = RuntimeError("controller failed")
    err.__cause__ = OutOfMemoryError(text)
    found = user_error(err)
    assert isinstance(found, UserError) and "22.68GB used of 23.54GB" in str(found) and "resumes" in str(found)
    assert "\n" not in str(found)


@pytest.mark.ray
def test_workers_read_the_windows_from_the_object_store_without_a_copy(ray_local):
    """Two tasks on this node read a ~120 MB WindowSet and train-batch from it: each one's private
    memory grows by a sliver (the arrays are the object store's pages, shared), not by the data."""
    ray = ray_local
    rng = np.random.default_rng(0)
    seqs = [((f"S{i}", "Walk 1", "C1"), rng.normal(size=(80_000, 15, 2)).astype(np.float32),
             rng.normal(size=(80_000, 15, 3)).astype(np.float32)) for i in range(5)]
    cfg = C.with_values(C.Config(), {"model.widths": [3, 3], "uncertainty.holdout": 0.0})
    ws = build(cfg, LAYOUT, seqs, seqs[:1])
    ref = ray.put(ws)
    size = ws.nbytes()
    del ws, seqs

    @ray.remote(num_cpus=0)
    def private_growth(windows_ref):
        from raypose.train.member import TrainSet

        def private():
            with open("/proc/self/smaps_rollup") as f:
                return sum(int(line.split()[1]) * 1024 for line in f if line.startswith(("Private_Clean",
                                                                                          "Private_Dirty")))
        before = private()
        w = ray.get(windows_ref[0])
        ts = TrainSet(w.train, True, LAYOUT)   # above member.STORE_TWINS_BELOW: twins mirrored as drawn
        assert not ts.stored
        touched = float(ts.inputs.sum()) + float(ts.targets.sum())   # every page read
        x, y, _ = ts.batch(np.arange(0, 2 * ts.n, 997))
        return private() - before, w.train.inputs.flags.writeable, touched, tuple(x.shape)

    results = ray.get([private_growth.remote([ref]) for _ in range(2)])
    for grown, writeable, _, shape in results:
        assert not writeable and shape[1:] == (9, 15, 2)
        assert grown < 0.15 * size, (grown, size)


def test_prepare_writes_one_chunk_at_a_time(synth_dir, tmp_path, monkeypatch):
    """prepare builds the frame table of one (subject, action) at a time, and the table it writes
    reads back whole: the rows of every chunk, in one Parquet file per sequence."""
    import pyarrow.dataset as pads

    from raypose.cli import main
    from raypose.data import prepare as P
    calls, real = [], P.frame_table
    monkeypatch.setattr(P, "frame_table", lambda data, keys, split=None: calls.append(list(keys)) or
                        real(data, keys, split))
    out = tmp_path / "table"
    assert main(["prepare", "--npz-dir", str(synth_dir), "--out", str(out), "--csv"]) == 0
    assert calls and all(len(keys) == 1 for keys in calls) and len({tuple(k) for k in calls}) == len(calls)
    table = pads.dataset(out, format="parquet", partitioning="hive").to_table()
    with open(out / "_frames.csv") as f:
        lines = f.read().splitlines()
    assert table.num_rows == len(lines) - 1 and lines[0].startswith("Subject,Action,Camera,x1,y1")
    assert len(list(out.glob("subject=*/action=*/camera=*/part-0.parquet"))) == 3 * len(calls)

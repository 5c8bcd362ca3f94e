"""`raypose export` (issue 15, item 6): BVH that pybvh reads back and whose forward kinematics give
the exported poses, CSV / JSON with the prediction's own numbers, and one line for bad input."""
import json
import os
import stat

import numpy as np
import pandas as pd
import pytest
from pybvh import read_bvh_file
from pybvh.rotations import euler_to_rotmat

from raypose.cli import main
from raypose.data.npz import load_2d, read_npz, save_2d, save_npz
from raypose.datasets.keypoints import COCO
from raypose.datasets.skeleton import HUMANEVA
from raypose.interop import bvh as B
from raypose.interop.export import FORMATS

P = HUMANEVA.parents
J = len(P)
# A standing body in camera coordinates (metres, y down): each joint's offset from its parent
OFFSET = np.array([(0, 0, 0), (0, -.5, 0), (.18, -.02, 0), (0, .28, .02), (0, .25, 0), (-.18, -.02, 0), (0, .28, .02),
                   (0, .25, 0), (.1, .02, 0), (0, .42, 0), (0, .4, .03), (-.1, .02, 0), (0, .42, 0), (0, .4, .03),
                   (0, -.25, -.03)])
FK_TOL_M = 1e-5   # the BVH text holds 6 decimals of centimetres and degrees: ~1e-8 m here


def _moving_body(frames=120, seed=0):
    """(positions (T, J, 3) root-relative, trajectory (T, 3)): each joint turning smoothly in every
    axis (twist too), every bone stretching by up to 4% frame to frame, in our own forward kinematics."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, frames)[:, None]
    angles = 0.7 * np.sin(t * rng.uniform(0.5, 2, J * 3) + rng.uniform(0, 6, J * 3)).reshape(frames, J, 3)
    local = euler_to_rotmat(angles, "XYZ")
    turn, pos = np.empty((frames, J, 3, 3)), np.zeros((frames, J, 3))
    for j, p in enumerate(P):
        if p < 0:
            turn[:, j] = local[:, j]
            continue
        stretch = 1 + 0.04 * np.sin(3 * t[:, 0] + j)
        pos[:, j] = pos[:, p] + stretch[:, None] * np.einsum("tij,j->ti", turn[:, p], OFFSET[j])
        turn[:, j] = turn[:, p] @ local[:, j]
    trajectory = np.stack([np.sin(t[:, 0]), 0.2 + 0 * t[:, 0], 4 + np.cos(t[:, 0])], 1)
    return pos.astype(np.float32), trajectory.astype(np.float32)


def _layout(parents=P, joints_2d=J):
    """The layout predict records: a run's 2D of `joints_2d` joints (17: COCO's) and the HumanEva skeleton."""
    skeleton = {**HUMANEVA.to_dict(), "parents": list(parents)}
    sides = COCO.symmetry if joints_2d == 17 else (HUMANEVA.left, HUMANEVA.right)
    return {"joints_2d": joints_2d, "left_2d": list(sides[0]), "right_2d": list(sides[1]), "skeleton": skeleton}


def _prediction(path, parents=P, empty=False, joints_2d=J, meta=None):
    """A prediction npz laid out as `raypose predict` writes it: two tracks (one 0-frame with `empty`)
    of a run whose 2D has `joints_2d` joints (filled is over those), `meta` added to its metadata."""
    pos, root = _moving_body()
    rng = np.random.default_rng(1)
    quantiles = [0.5, 0.9]
    tracks = {"S1/clip one": [pos, pos[:60][::-1].copy()]} | ({"S2/empty": [pos[:0]]} if empty else {})
    arrays = {"positions_3d": {}, "uncertainty": {}, "radius": {}, "filled": {}, "trajectory": {}}
    for key, cams in tracks.items():
        s, a = key.split("/")
        for name in arrays:
            arrays[name].setdefault(s, {})[a] = [
                {"positions_3d": p, "uncertainty": rng.uniform(0, .05, p.shape[:2]).astype(np.float32),
                 "radius": rng.uniform(0, .1, (*p.shape[:2], 2)).astype(np.float32),
                 "filled": rng.uniform(size=(len(p), joints_2d)) < 0.1,
                 "trajectory": root[:len(p)] if len(p) != 60 else root[:60][::-1].copy()}[name] for p in cams]
    meta = {"layout": _layout(parents, joints_2d), "quantiles": quantiles, "units": "metres", **(meta or {})}
    return save_npz(os.fspath(path), metadata=meta, **arrays)


def _export(src, fmt, out, *extra):
    return main(["export", str(src), "--format", fmt, "--out", str(out), *extra])


def _normalised(pos, parents):
    """Positions rebuilt from the root along each frame's bone directions with the median lengths."""
    out = np.array(pos, dtype=np.float64)   # the root stays where it is
    for j, p in enumerate(parents):   # HumanEva's parents come before their children
        if p >= 0:
            bone = pos[:, j] - pos[:, p]
            length = np.median(np.linalg.norm(bone, axis=-1))
            out[:, j] = out[:, p] + length * bone / np.linalg.norm(bone, axis=-1, keepdims=True)
    return out


def _fk_camera(bvh):
    """pybvh's forward kinematics of a read-back BVH, in the skeleton's joint order, camera metres."""
    order = [HUMANEVA.joint_names.index(n) for n in bvh.joint_names]
    out = np.empty((bvh.frame_count, J, 3))
    out[:, order] = bvh.joint_positions()
    return out * [1, -1, -1] / 100


def test_bvh_reproduces_the_poses_and_round_trips(tmp_path, capsys):
    src = _prediction(tmp_path / "pred.npz")
    assert _export(src, "bvh", tmp_path / "out", "--fps", "50") == 0
    assert "2 BVH file(s)" in capsys.readouterr().out
    files = sorted(os.listdir(tmp_path / "out"))
    assert files == ["S1__clip_one__C1.bvh", "S1__clip_one__C2.bvh", "raypose_export.json"]
    d = read_npz(src)
    for c, name in enumerate(files[:2]):
        pos, root = d["positions_3d"]["S1"]["clip one"][c], d["trajectory"]["S1"]["clip one"][c]
        bvh = read_bvh_file(tmp_path / "out" / name)
        assert bvh.joint_names[:3] == ["pelvis", "thorax", "l_shoulder"] and bvh.joint_count == J
        assert {n.name: n.parent.name for n in bvh.nodes if n.parent and not n.is_end_site()} == {
            HUMANEVA.joint_names[j]: HUMANEVA.joint_names[p] for j, p in enumerate(P) if p >= 0}
        assert bvh.frame_count == len(pos) and bvh.frame_time == pytest.approx(1 / 50, abs=1e-12)
        assert bvh.euler_orders == ["ZXY"] * J
        # the root channels: the trajectory in BVH axes (x, -y, -z) and centimetres
        np.testing.assert_allclose(bvh.root_pos, 100 * root * [1, -1, -1], atol=1e-5)
        fk = _fk_camera(bvh)
        # this body's forks (pelvis, thorax) are rigid, so the file gives the bone-normalised poses exactly
        np.testing.assert_allclose(fk, _normalised(pos + root[:, None], P), atol=FK_TOL_M)
        # the raw poses, within what their bones stretch (summed down each chain)
        stretch = np.zeros((len(pos), J))
        for j, p in enumerate(P):
            if p >= 0:
                n = np.linalg.norm(pos[:, j] - pos[:, p], axis=-1)
                stretch[:, j] = stretch[:, p] + np.abs(n - np.median(n))
        err = np.linalg.norm(fk - pos - root[:, None], axis=-1)
        assert np.all(err <= stretch + FK_TOL_M) and err.max() > 1e-3   # the cost of constant bones is real
        # the rest pose stands up (+Y) and faces +Z: its left side at +X
        rest = bvh.rest_pose_positions()
        at = bvh.node_index
        assert rest[at["head"], 1] > rest[at["thorax"], 1] > 30 and rest[at["l_ankle"], 1] < -40
        assert rest[at["l_shoulder"], 0] - rest[at["r_shoulder"], 0] > 25 and rest[at["l_hip"], 0] > 5 > -5 > rest[
            at["r_hip"], 0]


def test_joints_with_one_child_have_no_twist(tmp_path):
    """The swing-only convention: each such joint's rotation turns its rest bone by exactly the
    rotation's own angle (trace R = 1 + 2 cos(angle between the rest and turned bone))."""
    src = _prediction(tmp_path / "pred.npz")
    assert _export(src, "bvh", tmp_path / "out") == 0
    bvh = read_bvh_file(tmp_path / "out" / "S1__clip_one__C1.bvh")
    rot = euler_to_rotmat(bvh.joint_angles, bvh.euler_orders)
    checked = 0
    for node in bvh.nodes:
        kids = [] if node.is_end_site() else [k for k in node.children if not k.is_end_site()]
        if node.parent is None or len(kids) != 1:
            continue
        bone = kids[0].offset / np.linalg.norm(kids[0].offset)
        r = rot[:, bvh.joint_index[node.name]]
        cos = np.einsum("i,tij,j->t", bone, r, bone)
        np.testing.assert_allclose(np.trace(r, axis1=1, axis2=2), 1 + 2 * cos, atol=1e-5)
        checked += 1
    assert checked == 8   # shoulders, elbows, hips, knees
    leaf = bvh.joint_angles[:, [bvh.joint_index[n] for n in ("l_wrist", "r_ankle", "head")]]
    assert np.all(leaf == 0)


def test_bvh_of_a_predicted_sequence(local_run, synth_dir, tmp_path):
    """A real `raypose predict` file: the bones below joints with one child point where predicted,
    frame by frame (the forks' fit is the only approximation), root at the origin without a trajectory."""
    pos2d, meta = load_2d(synth_dir / "data_2d_humaneva15_gt.npz")
    save_2d(tmp_path / "in.npz", {"Validate/S1": {"Walking 1 chunk0": pos2d["Validate/S1"]["Walking 1 chunk0"]}}, meta)
    pred = tmp_path / "pred.npz"
    assert main(["predict", "--run", str(local_run), "--input", str(tmp_path / "in.npz"), "--out", str(pred)]) == 0
    d = read_npz(pred)
    assert _export(pred, "bvh", tmp_path / "out") == 0
    summary = json.loads((tmp_path / "out" / "raypose_export.json").read_text())
    assert summary["bvh"]["fps"] == 60 and len(summary["tracks"]) == sum(
        len(c) for a in d["positions_3d"].values() for c in a.values())
    track = next(t for t in summary["tracks"] if t["frames"] > 100)   # 105 frames of each camera
    pos = d["positions_3d"][track["subject"]][track["action"]][int(track["camera"][1:]) - 1]
    assert "trajectory" in d   # the run's fitted focal lengths for its own cameras
    root = d["trajectory"][track["subject"]][track["action"]][int(track["camera"][1:]) - 1]
    fk = _fk_camera(read_bvh_file(tmp_path / "out" / track["file"]))
    raw = pos + root[:, None]
    single = [j for j, p in enumerate(P) if p >= 0 and sum(q == p for q in P) == 1]   # elbows, wrists, knees ..
    unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
    got = unit(fk[:, single] - fk[:, [P[j] for j in single]])
    np.testing.assert_allclose(got, unit(raw[:, single] - raw[:, [P[j] for j in single]]), atol=1e-5)
    err = np.linalg.norm(fk - _normalised(raw, P), axis=-1).mean()
    assert 1000 * err == pytest.approx(track["fk_vs_normalised_mm"]["mean"], rel=1e-3)
    # without the trajectory the root stays at the origin
    nodrop = tmp_path / "notraj.npz"
    save_npz(nodrop, **{k: v for k, v in d.items() if k != "trajectory"})
    assert _export(nodrop, "bvh", tmp_path / "out2") == 0
    assert np.all(read_bvh_file(tmp_path / "out2" / track["file"]).root_pos == 0)


def test_csv_and_json_carry_the_predictions_numbers(tmp_path):
    src = _prediction(tmp_path / "pred.npz", empty=True)
    d = read_npz(src)
    assert _export(src, "csv", tmp_path / "csv") == 0 and _export(src, "json", tmp_path / "json") == 0
    with open(tmp_path / "csv" / "poses.csv") as f:
        assert f.readline().startswith("# raypose export of pred.npz: metres, camera coordinates")
    table = pd.read_csv(tmp_path / "csv" / "poses.csv", skiprows=1)
    doc = json.loads((tmp_path / "json" / "poses.json").read_text())
    assert list(table.columns[:7]) == ["subject", "action", "camera", "frame", "pelvis_x", "pelvis_y", "pelvis_z"]
    assert list(table.columns[7:11]) == ["pelvis_uncertainty", "pelvis_radius_q0.5", "pelvis_radius_q0.9",
                                         "thorax_x"]
    # the 2D joints' filled flags (here the skeleton's own) after the 3D joints' columns, then the trajectory
    assert list(table.columns[-3 - J:]) == [f"{n}_filled" for n in HUMANEVA.joint_names] + [
        "trajectory_x", "trajectory_y", "trajectory_z"]
    assert len(table) == 120 + 60 and len(doc["tracks"]) == 3 and doc["tracks"][2]["frames"] == 0
    assert doc["joint_names"] == doc["joint_names_2d"] == list(HUMANEVA.joint_names) and doc["quantiles"] == [0.5, 0.9]
    for c, track in enumerate(doc["tracks"][:2]):
        rows = table[(table.subject == "S1") & (table.camera == f"C{c + 1}")]
        want = {k: d[k]["S1"]["clip one"][c] for k in ("positions_3d", "uncertainty", "radius", "filled", "trajectory")}
        assert list(rows.frame) == list(range(len(want["positions_3d"])))
        got = rows[[f"{n}_{a}" for n in HUMANEVA.joint_names for a in "xyz"]].to_numpy(np.float32)
        assert np.array_equal(got.reshape(-1, J, 3), want["positions_3d"])   # exactly the npz's float32
        assert np.array_equal(rows[[f"{n}_radius_q0.9" for n in HUMANEVA.joint_names]].to_numpy(np.float32),
                              want["radius"][..., 1])
        assert np.array_equal(rows[[f"{n}_filled" for n in HUMANEVA.joint_names]].to_numpy() == 1, want["filled"])
        assert np.array_equal(rows[["trajectory_x", "trajectory_y", "trajectory_z"]].to_numpy(np.float32),
                              want["trajectory"])
        assert np.array_equal(np.array(track["positions"], np.float32), want["positions_3d"])
        assert np.array_equal(np.array(track["uncertainty"], np.float32), want["uncertainty"])
        assert np.array_equal(np.array(track["radius"], np.float32), want["radius"])
        assert np.array_equal(np.array(track["filled"]), want["filled"])
        assert np.array_equal(np.array(track["trajectory"], np.float32), want["trajectory"])


def test_an_empty_track_is_left_out_of_the_bvh_with_a_note(tmp_path, capsys):
    src = _prediction(tmp_path / "pred.npz", empty=True)
    assert _export(src, "bvh", tmp_path / "out") == 0
    assert "skipped S2/empty/C1: no frames" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "raypose_export.json").read_text())
    assert summary["tracks"][2] == {"subject": "S2", "action": "empty", "camera": "C1", "frames": 0, "file": None,
                                    "skipped": "no frames (a BVH needs at least one)"}
    assert len(os.listdir(tmp_path / "out")) == 3


def _fails(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    good = _prediction(tmp_path / "pred.npz")
    out = tmp_path / "out"
    (tmp_path / "notes.npz").write_text("not a zip")
    save_npz(tmp_path / "twod.npz", positions_2d={"S": {"a": [np.zeros((3, J, 2), np.float32)]}}, metadata={})
    save_npz(tmp_path / "nolayout.npz", positions_3d={"S": {"a": [np.zeros((3, J, 3), np.float32)]}},
             metadata={"quantiles": None})
    cyclic = _prediction(tmp_path / "cyclic.npz", parents=(-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 14, 13))
    (tmp_path / "adir").mkdir()
    for argv, needle in [
            ([str(tmp_path / "missing.npz")], "missing.npz: file not found"),
            ([str(tmp_path / "adir")], "adir: a directory; expected a prediction .npz or .parquet"),
            ([str(tmp_path / "notes.npz")], "not an npz file"),
            ([str(tmp_path / "twod.npz")], "missing key 'positions_3d'"),
            ([str(tmp_path / "nolayout.npz")], "metadata['layout']['skeleton']: missing"),
            ([str(cyclic)], "has a cycle through joint 13; expected a tree"),
            ([str(good), "--fps", "0"], "--fps 0.0: expected a positive number")]:
        _fails(capsys, ["export", *argv, "--format", "bvh", "--out", str(out)], needle)
        assert not out.exists()
    _fails(capsys, ["export", str(good), "--format", "fbx", "--out", str(out)], "invalid choice: 'fbx'")
    assert not out.exists()
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    _fails(capsys, ["export", str(good), "--format", "csv", "--out", str(out)], "not empty")
    _fails(capsys, ["export", str(good), "--format", "csv", "--out", str(out), "--overwrite"], "not replaced")
    assert os.listdir(out) == ["mine.txt"]
    _fails(capsys, ["export", str(good), "--format", "csv", "--out", str(tmp_path)], "holds the input")
    # a former export is replaced with --overwrite, and only then
    assert _export(good, "csv", tmp_path / "again") == 0
    _fails(capsys, ["export", str(good), "--format", "json", "--out", str(tmp_path / "again")], "--overwrite")
    assert _export(good, "json", tmp_path / "again", "--overwrite") == 0
    assert sorted(os.listdir(tmp_path / "again")) == ["poses.json", "raypose_export.json"]
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n or ".old-" in n]


def test_the_skeleton_is_the_files_own(tmp_path):
    """Joints in another order (a parent after its child), other names (spaces, a brace): the same
    motion, the BVH's joint names made safe."""
    perm = np.array([3, 14, 0, 7, 1, 12, 5, 9, 2, 10, 13, 4, 6, 8, 11])   # new joint k is HumanEva's perm[k]
    inv = np.argsort(perm)
    pos, root = _moving_body(frames=40)
    names = [f"Joint {{{n}}}" for n in np.array(HUMANEVA.joint_names)[perm]]
    parents = [-1 if P[j] < 0 else int(inv[P[j]]) for j in perm]
    layout = {**_layout(), "skeleton": {"name": "mine", "joint_names": names, "parents": parents,
                                        "left": [int(inv[j]) for j in HUMANEVA.left],
                                        "right": [int(inv[j]) for j in HUMANEVA.right]}}
    for name, p, lay in (("a", pos, _layout()), ("b", pos[:, perm], layout)):
        save_npz(tmp_path / f"{name}.npz", positions_3d={"S": {"x": [p]}}, trajectory={"S": {"x": [root]}},
                 metadata={"layout": lay})
        assert _export(tmp_path / f"{name}.npz", "bvh", tmp_path / name) == 0
    a, b = (read_bvh_file(tmp_path / n / "S__x__C1.bvh") for n in "ab")
    assert "Joint_pelvis" in b.joint_names and len(set(b.joint_names)) == J
    fa = a.joint_positions()[:, [a.joint_names.index(HUMANEVA.joint_names[j]) for j in perm]]
    fb = b.joint_positions()[:, [b.joint_names.index(f"Joint_{HUMANEVA.joint_names[j]}") for j in perm]]
    np.testing.assert_allclose(fb, fa, atol=1e-4)   # centimetres


def test_a_17_to_15_runs_prediction(tmp_path):
    """COCO-17 2D in, HumanEva-15 3D out: `filled` is over the run's 17 2D joints, named after COCO's
    keypoints (kp<j> for a 2D layout raypose does not know); a `filled` of another width is one line."""
    src = _prediction(tmp_path / "pred.npz", joints_2d=17)
    d = read_npz(src)
    for fmt in FORMATS:
        assert _export(src, fmt, tmp_path / fmt) == 0
    table = pd.read_csv(tmp_path / "csv" / "poses.csv", skiprows=1)
    filled = [f"{n}_filled" for n in COCO.names]
    assert [c for c in table.columns if c.endswith("_filled")] == filled and "pelvis_x" in table
    doc = json.loads((tmp_path / "json" / "poses.json").read_text())
    assert doc["joint_names_2d"] == list(COCO.names) and doc["joint_names"] == list(HUMANEVA.joint_names)
    for c in range(2):
        want = d["filled"]["S1"]["clip one"][c]
        assert want.shape[1] == 17 and want.any()
        assert np.array_equal(table[table.camera == f"C{c + 1}"][filled].to_numpy() == 1, want)
        assert np.array_equal(np.array(doc["tracks"][c]["filled"]), want)
    assert read_bvh_file(tmp_path / "bvh" / "S1__clip_one__C1.bvh").joint_count == J
    src16 = _prediction(tmp_path / "p16.npz", joints_2d=16)
    assert _export(src16, "csv", tmp_path / "csv16") == 0
    columns = pd.read_csv(tmp_path / "csv16" / "poses.csv", skiprows=1).columns
    assert [c for c in columns if c.endswith("_filled")] == [f"kp{j}_filled" for j in range(16)]


def test_filled_of_the_wrong_width_is_one_line(tmp_path, capsys):
    d = read_npz(_prediction(tmp_path / "pred.npz", joints_2d=17))
    d["metadata"]["layout"]["joints_2d"] = 16
    save_npz(tmp_path / "bad.npz", **d)
    _fails(capsys, ["export", str(tmp_path / "bad.npz"), "--format", "csv", "--out", str(tmp_path / "no")],
           "filled['S1']['clip one'][0]: (120, 17) bool; expected a numeric array of shape (120, 16)")
    assert not (tmp_path / "no").exists()


def test_a_bad_out_is_one_line_before_the_input_is_read(tmp_path, capsys):
    good = tmp_path / "p.npz"
    _prediction(good)
    (tmp_path / "junk.npz").write_text("not a zip")
    for src in (good, tmp_path / "junk.npz"):   # the input is not read: junk is not named
        _fails(capsys, ["export", str(src), "--format", "csv", "--out", str(src / "sub")],
               f"--out {src / 'sub'}: {src} is a file, not a folder; expected a path in a folder")
        _fails(capsys, ["export", str(src), "--format", "bvh", "--out", "/proc/x"],
               "--out /proc/x: cannot write in /proc (No such file or directory); expected a writable folder")
    assert sorted(os.listdir(tmp_path)) == ["junk.npz", "p.npz"]


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_the_export_folder_gets_the_users_permissions(tmp_path, umask):
    src = _prediction(tmp_path / "pred.npz")
    old = os.umask(umask)
    try:
        assert _export(src, "csv", tmp_path / "out") == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "out").st_mode) == 0o777 & ~umask   # as a run's, not mkdtemp's 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "out" / "poses.csv").st_mode) == 0o666 & ~umask


def test_overwrite_keeps_a_users_file_in_a_former_export(tmp_path, capsys):
    """--overwrite replaces only what raypose_export.json lists: a .blend saved beside the BVHs
    (or a folder) makes it one line naming that file, and nothing is touched."""
    src = _prediction(tmp_path / "pred.npz")
    out = tmp_path / "out"
    assert _export(src, "bvh", out) == 0
    (out / "scene.blend").write_bytes(b"a user's work")
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    _fails(capsys, ["export", str(src), "--format", "bvh", "--out", str(out), "--overwrite"],
           "scene.blend is not listed in its raypose_export.json, so it is not replaced")
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    summary = json.loads((out / "raypose_export.json").read_text())
    assert summary["files"] == ["S1__clip_one__C1.bvh", "S1__clip_one__C2.bvh"]
    os.remove(out / "scene.blend")
    (out / "S1__clip_one__C1.bvh").unlink()   # a file it wrote, gone: the rest is still its own
    (out / "renders").mkdir()
    _fails(capsys, ["export", str(src), "--format", "csv", "--out", str(out), "--overwrite"], "renders is not listed")
    (out / "renders").rmdir()
    assert _export(src, "csv", out, "--overwrite") == 0
    assert sorted(os.listdir(out)) == ["poses.csv", "raypose_export.json"]


def _tumbling_body(frames=136):
    """(positions (T, J, 3), trajectory (T, 3)): the standing body turning forward about the camera's
    x axis from -20 to 250 degrees, wobbling a hair about the other two (not through the gimbal lock
    itself, where only a + c is determined: close to it a and c turn fast whatever the branch)."""
    stand = np.zeros((J, 3))
    for j, p in enumerate(P):
        stand[j] = stand[p] + OFFSET[j] if p >= 0 else 0
    t = np.linspace(0, 1, frames)
    wobble = 1e-4 * np.stack([np.sin(7 * t), np.cos(5 * t)], 1)
    turn = euler_to_rotmat(np.concatenate([np.radians(-20 + 270 * t)[:, None], wobble], 1), "XYZ")
    return np.einsum("tij,kj->tki", turn, stand), np.tile([0.0, 0.0, 4.0], (frames, 1))


@pytest.mark.filterwarnings("ignore:Rest pose suggests world up")   # pybvh, of a body tumbling a 3/4 turn
def test_euler_angles_stay_continuous_through_the_branch_point(tmp_path):
    """ZXY's two solutions (a, b, c) and (a + pi, pi - b, c + pi): where the root's X angle passes
    90 degrees the principal one jumps half a turn in Z and Y; the file's angles step under 10 degrees
    a frame, and pose the body as before."""
    pos, root = _tumbling_body()
    save_npz(tmp_path / "p.npz", positions_3d={"S": {"tumble": [pos]}}, trajectory={"S": {"tumble": [root]}},
             metadata={"layout": _layout()})
    assert _export(tmp_path / "p.npz", "bvh", tmp_path / "out") == 0
    bvh = read_bvh_file(tmp_path / "out" / "S__tumble__C1.bvh")
    assert np.degrees(np.abs(np.diff(bvh.joint_angles, axis=0))).max() < 10
    x = bvh.joint_angles[:, bvh.joint_index["pelvis"], 1]
    assert np.ptp(x) > np.radians(200)   # so through -90 or +90 degrees, where the principal solution jumps
    np.testing.assert_allclose(_fk_camera(bvh), _normalised(pos + root[:, None], P), atol=FK_TOL_M)
    # the identity the choice rests on, for R = Rz(a) Rx(b) Ry(c)
    a = np.random.default_rng(0).uniform(-3, 3, (50, 3))
    np.testing.assert_allclose(euler_to_rotmat(a * [1, -1, 1] + np.pi, "ZXY"), euler_to_rotmat(a, "ZXY"), atol=1e-12)
    t = np.linspace(0, 1, 50)
    path = np.stack([0.1 * np.sin(5 * t), 3 * t, 0.1 * np.cos(3 * t)], 1)   # b through 90 degrees
    np.testing.assert_allclose(B.continuous_euler(euler_to_rotmat(path, "ZXY")[:, None])[:, 0], path, atol=1e-9)


def test_cameras_are_named_as_predict_recorded(tmp_path):
    tracks = {"S1/clip one/left cam": {}, "S1/clip one/Right": {}}
    src = _prediction(tmp_path / "pred.npz", meta={"input": {"tracks": tracks}})
    assert _export(src, "bvh", tmp_path / "bvh") == 0 and _export(src, "csv", tmp_path / "csv") == 0
    assert sorted(os.listdir(tmp_path / "bvh")) == ["S1__clip_one__Right.bvh", "S1__clip_one__left_cam.bvh",
                                                   "raypose_export.json"]
    table = pd.read_csv(tmp_path / "csv" / "poses.csv", skiprows=1)
    assert list(table.camera.unique()) == ["left cam", "Right"]
    # names that do not match the file's cameras (one recorded for two): C1, C2
    src = _prediction(tmp_path / "other.npz", meta={"input": {"tracks": {"S1/clip one/left cam": {}}}})
    assert _export(src, "csv", tmp_path / "csv2") == 0
    assert list(pd.read_csv(tmp_path / "csv2" / "poses.csv", skiprows=1).camera.unique()) == ["C1", "C2"]

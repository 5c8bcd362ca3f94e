"""A skeleton from the data (issue 16): skeleton files (.json and the .npz form {"data": ...}),
every bad one as the user's one line, the layout that carries the skeleton and the dataset, and
the config keys that name them without moving old runs' hashes."""
import json
import zipfile

import numpy as np
import pytest

from raypose import config as C
from raypose.cli import build_parser, main
from raypose.data.npz import save_npz
from raypose.datasets import h36m
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import (
    HUMANEVA,
    LEFT,
    NUM_JOINTS,
    PARENTS,
    RIGHT,
    Skeleton,
    flip_permutation,
    read_skeleton,
)
from raypose.errors import UserError

GOOD = {"parents": [-1, 0, 1, 0, 3], "joints_left": [1, 2], "joints_right": [3, 4]}
# (what is wrong, the file's dict, a piece of the one line that says so)
BAD = [
    ("cycle", dict(GOOD, parents=[-1, 0, 4, 0, 2]), "cycle through joints [2, 4]"),
    ("self parent", dict(GOOD, parents=[-1, 1, 1, 0, 3]), "cycle through joints [1]"),
    ("two roots", dict(GOOD, parents=[-1, 0, 1, -1, 3]), "roots (parent -1) at joints [0, 3]"),
    ("root not first", dict(GOOD, parents=[1, -1, 1, 1, 3]), "roots (parent -1) at joints [1]"),
    ("parent out of range", dict(GOOD, parents=[-1, 0, 1, 0, 7]), "joint 4's parent 7 is out of range"),
    ("parent after child", dict(GOOD, parents=[-1, 0, 4, 0, 0]), "joint 2's parent 4 comes after it"),
    ("lengths differ", dict(GOOD, joints_right=[3]), "joints_left has 2 joints and joints_right 1"),
    ("overlap", dict(GOOD, joints_right=[1, 4]), "joints [1] are both left and right"),
    ("listed twice", dict(GOOD, joints_left=[1, 1], joints_right=[3, 4]), "joints [1] are listed twice"),
    ("side out of range", dict(GOOD, joints_right=[3, 5]), "left/right joints [5] out of range"),
    ("names count", dict(GOOD, joint_names=["a", "b"]), "2 joint names for 5 joints"),
    ("not integers", dict(GOOD, parents=[-1, 0, 1.5, 0, 3]), "1.5, 0"),
    ("missing key", {"parents": [-1, 0]}, "no 'joints_left'"),
]
IDS = [b[0] for b in BAD]


def _one_line(e):
    text = str(e.value)
    assert text and "\n" not in text, text
    return text


@pytest.mark.parametrize("what, d, message", BAD, ids=IDS)
def test_bad_skeleton_file_is_one_line(tmp_path, what, d, message):
    """Each bad case through both file forms and through a layout.json's skeleton."""
    js = tmp_path / "bad.json"
    js.write_text(json.dumps(d))
    with pytest.raises(UserError) as e:
        read_skeleton(js)
    assert _one_line(e).startswith(f"{js}: ") and message in str(e.value)
    nz = save_npz(tmp_path / "bad.npz", data={k: np.asarray(v) for k, v in d.items()})
    with pytest.raises(UserError) as e:
        read_skeleton(nz)
    assert _one_line(e).startswith(f"{nz}: ") and message in str(e.value)
    layout = dict(Layout.of(5, ((1,), (2,))).to_dict(), skeleton=d)
    with pytest.raises(UserError) as e:
        Layout.from_dict(layout, "run/layout.json")
    assert _one_line(e).startswith("run/layout.json: skeleton: ") and message in str(e.value)


def test_validate_and_the_built_in_skeletons():
    assert HUMANEVA.validate() is HUMANEVA and h36m.SKELETON.validate() is h36m.SKELETON
    with pytest.raises(UserError, match=r"^here: roots \(parent -1\) at joints \[0, 2\]"):
        Skeleton("x", ("a", "b", "c"), (-1, 0, -1), (), ()).validate("here")
    with pytest.raises(UserError, match="joint names \\['a'\\] occur more than once"):
        Skeleton("x", ("a", "a", "c"), (-1, 0, 0), (1,), (2,)).validate("here")


def test_file_forms_read(tmp_path):
    """.json with and without names; the 2022 study's .npz form, numpy arrays inside; HumanEva's
    own skeleton comes back as it went out."""
    js = tmp_path / "rig.json"
    js.write_text(json.dumps(GOOD))
    rig = read_skeleton(js)
    assert rig == Skeleton("rig", ("j0", "j1", "j2", "j3", "j4"), (-1, 0, 1, 0, 3), (1, 2), (3, 4))
    np.testing.assert_array_equal(rig.flip_permutation(), [0, 3, 4, 1, 2])
    he = {"parents": PARENTS, "joints_left": np.array(LEFT), "joints_right": np.array(RIGHT),
          "joint_names": list(HUMANEVA.joint_names)}
    path = save_npz(tmp_path / "humaneva_skeleton.npz", data=he)
    back = read_skeleton(path)
    assert back.name == "humaneva_skeleton" and back.num_joints == NUM_JOINTS == 15
    assert (back.joint_names, back.parents, back.left, back.right) == \
        (HUMANEVA.joint_names, HUMANEVA.parents, HUMANEVA.left, HUMANEVA.right)
    np.testing.assert_array_equal(back.flip_permutation(), flip_permutation())
    (tmp_path / "h.json").write_text(json.dumps(HUMANEVA.to_dict()))        # raypose's own form reads too
    assert read_skeleton(tmp_path / "h.json") == HUMANEVA
    assert Skeleton.from_dict(HUMANEVA.to_dict()) == HUMANEVA
    assert Skeleton.from_dict(h36m.SKELETON.to_dict()) == h36m.SKELETON


def test_file_form_errors(tmp_path):
    for name, body, message in [("a.json", b"{not json", "not valid JSON"),
                                ("a.yaml", b"parents: []", "must be .json or .npz"),
                                ("a.npz", b"not a zip", "not an npz file"),
                                ("list.json", b"[1, 2]", "a list; expected a dict with parents")]:
        (tmp_path / name).write_bytes(body)
        with pytest.raises(UserError) as e:
            read_skeleton(tmp_path / name)
        assert _one_line(e).startswith(f"{tmp_path / name}: ") and message in str(e.value)
    with pytest.raises(UserError, match="skeleton file not found"):
        read_skeleton(tmp_path / "missing.json")


def test_npz_pickles_run_no_code(tmp_path):
    """An npz whose pickle asks for anything but plain data is refused, never executed."""
    class Boom:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'ran')!r}, 'w').write('ran')",))
    arr = np.empty((), dtype=object)
    arr[()] = {"parents": Boom()}
    with zipfile.ZipFile(tmp_path / "evil.npz", "w") as zf, zf.open("data.npy", "w") as f:
        np.lib.format.write_array(f, arr, allow_pickle=True)
    with pytest.raises(UserError, match="unsafe or corrupt pickled object"):
        read_skeleton(tmp_path / "evil.npz")
    assert not (tmp_path / "ran").exists()


# ---- the layout carries the skeleton and the dataset -------------------------------------------

H36M_DATASET = {"name": "h36m", "fps": 50, "image_sizes": {"C1": [1000, 1002], "C2": [1000, 1000],
                                                           "C3": [1000, 1000], "C4": [1000, 1002]}}


def test_layout_round_trip_with_and_without_dataset():
    he = Layout.of(15, (LEFT, RIGHT))
    assert he.dataset is None and he.fps == 60 and he.image_size("C1") == (640, 480)
    assert "dataset" not in he.to_dict()                      # HumanEva's layout.json as before
    assert Layout.from_dict(json.loads(json.dumps(he.to_dict()))) == he
    sk = h36m.SKELETON
    lay = Layout.of(17, (sk.left, sk.right), sk, H36M_DATASET, "h36m")
    back = Layout.from_dict(json.loads(json.dumps(lay.to_dict())))
    assert back == lay and back.skeleton == sk and back.name_2d == "h36m"
    assert back.fps == 50 and back.image_size("C1") == (1000, 1002) and back.image_size("C3") == (1000, 1000)
    with pytest.raises(UserError, match="no image size for camera 'C5' of dataset 'h36m'"):
        back.image_size("C5")


def test_old_layout_json_reads_as_humaneva():
    """A layout.json written before datasets (no dataset, no name_2d): HumanEva's 60 fps, 640x480."""
    old = {"joints_2d": 15, "left_2d": LEFT, "right_2d": RIGHT, "skeleton": {
        "name": "humaneva15", "joint_names": list(HUMANEVA.joint_names), "parents": list(HUMANEVA.parents),
        "left": list(HUMANEVA.left), "right": list(HUMANEVA.right)}}
    lay = Layout.from_dict(old, "old/layout.json")
    assert lay == Layout.of(15, (LEFT, RIGHT)) and lay.skeleton is not None and lay.skeleton == HUMANEVA
    assert (lay.fps, lay.image_size("C3"), lay.dataset_name) == (60, (640, 480), "humaneva15")


@pytest.mark.parametrize("dataset, message", [
    ({"name": "x", "fps": 0, "image_sizes": {}}, "dataset fps is 0"),
    ({"name": "x", "fps": 50, "image_sizes": {"C1": [1000]}}, "image size of camera 'C1' is [1000]"),
    ({"fps": 50, "image_sizes": {}}, "dataset is {'fps': 50"),
])
def test_bad_dataset_in_layout(dataset, message):
    d = dict(Layout.of(15, (LEFT, RIGHT)).to_dict(), dataset=dataset)
    with pytest.raises(UserError) as e:
        Layout.from_dict(d, "run/layout.json")
    assert _one_line(e).startswith("run/layout.json: ") and message in str(e.value)


def test_bad_skeleton_in_a_prediction_file_through_the_cli(tmp_path, capsys):
    """`raypose plot --pred` on a file whose metadata's skeleton is no tree: exit 2, one line, no gif."""
    bad = dict(Layout.of(5, ((1,), (2,))).to_dict(), skeleton=dict(GOOD, parents=[-1, 0, 4, 0, 2]))
    track = {"S1": {"walk": [np.zeros((4, 5, 3), np.float32)]}}
    pred = save_npz(tmp_path / "pred.npz", positions_3d=track, uncertainty=track, keypoints_2d=track,
                    metadata={"layout": bad})
    out = tmp_path / "a.gif"
    assert main(["plot", "--pred", str(pred), "--animate", "S1/walk", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "metadata['layout']: skeleton: the parents form a cycle" in err
    assert not out.exists()


# ---- config keys and flags ----------------------------------------------------------------------

# Config().hash() and finalize(Config()).hash() as computed by HEAD's code (8ed63ea) before these keys
# existed: runs trained then must resume, so a config that leaves the new keys at "" hashes the same.
HEAD_DEFAULT_HASH, HEAD_FINAL_HASH = "f68aec5e0d088cb0", "7bd2e6bb96e80e82"


def test_new_keys_leave_old_hashes_alone():
    assert C.Config().hash() == HEAD_DEFAULT_HASH
    assert C.finalize(C.Config()).hash() == HEAD_FINAL_HASH
    for key, value in [("data.dataset", "h36m"), ("data.skeleton", "s.json"), ("data.cameras", "c.json")]:
        cfg = C.with_values(C.Config(), {key: value})
        assert cfg.hash() != HEAD_DEFAULT_HASH and C.differences(C.Config(), cfg)[0].startswith(key)
    toml = C.to_toml(C.Config())
    assert 'dataset = ""' in toml and C.loads(toml).hash() == HEAD_DEFAULT_HASH


def test_flags(tmp_path, capsys):
    args = build_parser().parse_args(["train", "--dataset", "h36m", "--skeleton", "s.npz", "--cameras", "c.json"])
    cfg = C.from_args(args)
    assert (cfg.data.dataset, cfg.data.skeleton, cfg.data.cameras) == ("h36m", "s.npz", "c.json")
    out = tmp_path / "run"
    assert main(["train", "--skeleton", "s.txt", "--out", str(out), "--local"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.skeleton (--skeleton): expected a .json or .npz file" in err
    assert not out.exists()


def test_bad_skeleton_file_through_train(tmp_path, capsys):
    """`raypose train --skeleton bad.json`: exit 2 and one line before any training starts, nothing written
    (data.skeleton reaches read_skeleton through raypose/datasets/registry.py's resolve)."""
    from raypose.data.synthetic import write_synthetic
    data = tmp_path / "npz"
    write_synthetic(data, frames=600)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(GOOD, parents=[-1, 0, 4, 0, 2])))
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--skeleton", str(bad), "--out", str(out), "--local",
                 "--iterations", "1", "--members", "1", "--epochs", "1", "--channels", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(
        f"{bad}: the parents form a cycle through joints [2, 4]; expected a tree rooted at joint 0 with every "
        "parent before its child")
    assert not out.exists()

"""Issue 12: no command deletes anything it did not create.

Every refusal is exit status 2 with one line on stderr, and every file under the test's
directory (inputs, earlier outputs, unrelated files) is still there byte for byte, with
nothing new beside it (no half output, no temporary sibling).
"""
import json
import os
import shutil
import stat

import pytest

import raypose.train.driver
from raypose.cli import main
from raypose.data import npz
from raypose.errors import UserError
from raypose.outputs import atomic_dir, check_replaceable

DEMO_TOML = os.path.join(os.path.dirname(__file__), "..", "raypose", "configs", "demo.toml")


def snapshot(root):
    """Every path under root: a file's bytes, a directory, or a link's target."""
    seen = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                seen[rel] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                seen[rel] = ("dir",)
            else:
                with open(path, "rb") as f:
                    seen[rel] = ("file", f.read())
    return seen


def refused(capsys, root, argv, *needles):
    """Run the CLI; it must exit 2 with one line holding every needle and leave root as it was."""
    before = snapshot(root)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert str(needle) in lines[0], (needle, lines[0])
    after = snapshot(root)
    assert after.keys() == before.keys(), (sorted(after.keys() - before.keys()),
                                          sorted(before.keys() - after.keys()))
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, changed
    return lines[0]


def ok(capsys, argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture
def npz_in(synth_dir, tmp_path):
    """tmp/par/in: the npz pair, with an unrelated file beside it in par."""
    par = tmp_path / "par"
    shutil.copytree(synth_dir, par / "in")
    (par / "notes.txt").write_text("mine, not raypose's\n")
    return par / "in"


# ---- prepare ------------------------------------------------------------------------------------

def test_prepare_out_equal_to_npz_dir_is_refused(npz_in, tmp_path, capsys):
    for extra in (["--overwrite"], []):
        refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", npz_in, *extra],
                npz_in, "is the input")


def test_prepare_out_holding_npz_dir_is_refused(npz_in, tmp_path, capsys):
    par = npz_in.parent
    refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", par, "--overwrite"],
            par, "holds the input")
    refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", tmp_path, "--overwrite"],
            "holds the input")


def test_prepare_compares_resolved_paths(npz_in, tmp_path, capsys):
    """A link to the input, a path with '..', or an npz file linked from inside --out."""
    alias = tmp_path / "alias"
    alias.symlink_to(npz_in, target_is_directory=True)
    refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", alias, "--overwrite"], "is the input")
    refused(capsys, tmp_path, ["prepare", "--npz-dir", alias, "--out", npz_in.parent / "in" / ".." / "in",
                               "--overwrite"], "is the input")
    # an earlier prepared directory that holds the 3D file the npz dir links to
    prepared = tmp_path / "prepared"
    ok(capsys, ["prepare", "--npz-dir", npz_in, "--out", prepared])
    linked = tmp_path / "linked"
    linked.mkdir()
    shutil.copy(npz_in / npz.FILE_2D.format("gt"), linked)
    shutil.move(npz_in / npz.FILE_3D, prepared / npz.FILE_3D)
    (linked / npz.FILE_3D).symlink_to(prepared / npz.FILE_3D)
    refused(capsys, tmp_path, ["prepare", "--npz-dir", linked, "--out", prepared, "--overwrite"],
            "holds the input")


def test_prepare_overwrite_replaces_only_a_prepared_directory(npz_in, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.txt").write_text("unrelated\n")
    refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", other, "--overwrite"],
            other, "not a prepared frame table", "not replaced")
    refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", other], other)
    # a run directory is not a prepared table either
    run = _fake_run(tmp_path / "run")
    refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", run, "--overwrite"],
            "not a prepared frame table")
    # new layout and the old one (metadata.json + frames/) are replaced
    new = tmp_path / "new"
    ok(capsys, ["prepare", "--npz-dir", npz_in, "--out", new, "--actions", "Walk"])
    refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", new], "not empty", "--overwrite")
    ok(capsys, ["prepare", "--npz-dir", npz_in, "--out", new, "--overwrite"])
    old = tmp_path / "old"
    (old / "frames").mkdir(parents=True)
    (old / "metadata.json").write_text("{}")
    (old / "frames" / "part-0.parquet").write_bytes(b"x")
    ok(capsys, ["prepare", "--npz-dir", npz_in, "--out", old, "--overwrite"])
    assert (old / "_raypose.json").is_file() and not (old / "frames").exists()
    assert sorted(os.listdir(npz_in)) == sorted(os.listdir(tmp_path / "par" / "in"))
    assert (tmp_path / "par" / "notes.txt").read_text() == "mine, not raypose's\n"
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p]


def test_prepare_out_is_a_file(npz_in, tmp_path, capsys):
    f = tmp_path / "out.parquet"
    f.write_bytes(b"someone's file")
    for extra in (["--overwrite"], []):
        refused(capsys, tmp_path, ["prepare", "--npz-dir", npz_in, "--out", f, *extra],
                f, "not a directory")


# ---- synth --------------------------------------------------------------------------------------

def test_synth_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "f"
    f.write_text("keep\n")
    for extra in (["--overwrite"], []):
        refused(capsys, tmp_path, ["synth", "--out", f, "--frames", "2000", *extra], f, "not a directory")


def test_synth_overwrite_only_over_npz_files(tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    (other / "data_3d_humaneva15.npz").write_bytes(b"old")
    (other / "readme.md").write_text("mine\n")
    refused(capsys, tmp_path, ["synth", "--out", other, "--frames", "2000", "--overwrite"],
            other, "not a synthetic npz directory")
    refused(capsys, tmp_path, ["synth", "--out", tmp_path, "--frames", "2000", "--overwrite"],
            "not a synthetic npz directory")

    out = tmp_path / "npz"
    ok(capsys, ["synth", "--out", out, "--frames", "2000", "--seed", "1"])
    first = snapshot(out)
    refused(capsys, tmp_path, ["synth", "--out", out, "--frames", "2000"], out, "not empty", "--overwrite")
    (out / "data_2d_humaneva15_coco.npz").write_bytes(b"a detector's keypoints")
    ok(capsys, ["synth", "--out", out, "--frames", "2000", "--seed", "2", "--overwrite"])
    assert (out / "data_2d_humaneva15_coco.npz").read_bytes() == b"a detector's keypoints"   # not ours: kept
    now = snapshot(out)
    assert now[npz.FILE_3D] != first[npz.FILE_3D]
    assert npz.load_humaneva(out).num_joints_2d == 15
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_synth_bad_arguments_touch_nothing(tmp_path, capsys):
    refused(capsys, tmp_path, ["synth", "--out", tmp_path / "new" / "npz", "--frames", "-5"], "frames=-5")


# ---- demo ---------------------------------------------------------------------------------------

def _fake_run(path, with_layout=True, with_checkpoints=True, config=None):
    """A run directory's files; its config the demo's (one an earlier demo wrote) unless `config` is given."""
    from raypose import config as C
    from raypose.commands.demo import demo_config
    path.mkdir(parents=True)
    (path / "config.toml").write_text(config if config is not None else C.to_toml(demo_config(path)))
    if with_layout:
        (path / "layout.json").write_text("{}")
    if with_checkpoints:
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / "iter1.json").write_text("{}")
    (path / "metrics.json").write_text('{"evaluation": {}}')
    return path


@pytest.fixture
def no_training(monkeypatch):
    """demo never trains in these tests: train records its call and returns a record."""
    calls = []

    def train(cfg, echo=print):
        calls.append((cfg.run.out, os.path.exists(cfg.run.out)))
        return {"ensemble": {"mpjpe_mm": 1.0, "p_mpjpe_mm": 1.0}, "member_p_mpjpe_mm": [2.0, 3.0],
                "members": 2, "iteration": 1}
    monkeypatch.setattr(raypose.train.driver, "train", train)
    return calls


def test_demo_bad_argument_keeps_the_run(tmp_path, capsys, no_training):
    run = _fake_run(tmp_path / "run")
    refused(capsys, tmp_path, ["demo", "--out", run, "--frames", "-5"], "-5")
    assert not no_training


@pytest.mark.parametrize("missing", ["layout", "both"])
def test_demo_replaces_only_a_run(tmp_path, capsys, no_training, missing):
    partial = _fake_run(tmp_path / "partial", with_layout=missing == "checkpoints",
                        with_checkpoints=missing == "layout")
    refused(capsys, tmp_path, ["demo", "--out", partial], partial, "not a raypose run")
    only_config = tmp_path / "only_config"
    only_config.mkdir()
    (only_config / "config.toml").write_text("")
    (only_config / "thesis.tex").write_text("years of work\n")
    refused(capsys, tmp_path, ["demo", "--out", only_config], only_config, "not a raypose run")
    f = tmp_path / "file"
    f.write_text("keep\n")
    refused(capsys, tmp_path, ["demo", "--out", f], f, "not a directory")
    assert not no_training


def test_demo_refuses_a_run_being_written(tmp_path, capsys, no_training):
    import json
    import socket
    run = _fake_run(tmp_path / "run")
    (run / "lease.json").write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid(),
                                                "started": 0, "renewed": 0, "token": "t"}))
    refused(capsys, tmp_path, ["demo", "--out", run], "another driver", f"pid {os.getpid()}")
    assert not no_training


def test_demo_refuses_a_run_it_did_not_write(tmp_path, capsys, no_training):
    """Issue 25 #2: a trained run of the user's is never deleted to make room for the demo."""
    from raypose import config as C
    from raypose.commands.demo import demo_config
    theirs = C.to_toml(C.with_values(demo_config(tmp_path / "mine"), {"train.members": 5, "data.path": "/data/he"}))
    mine = _fake_run(tmp_path / "mine", config=theirs)
    refused(capsys, tmp_path, ["demo", "--out", mine], f"--out {mine}: a run the demo did not write",
            "train.members 5 (the demo's: 2)", "expected a new or empty directory, or a run an earlier demo wrote")
    broken = _fake_run(tmp_path / "broken", config="")   # unreadable as any run's: not the demo's either
    refused(capsys, tmp_path, ["demo", "--out", broken], "a run the demo did not write", "config.toml")
    assert not no_training
    seeded = _fake_run(tmp_path / "seeded", config=C.to_toml(demo_config(tmp_path / "s", **{
        "data.synthetic_frames": 2000, "data.synthetic_seed": 4})))   # the demo's own flags: still the demo's
    ok(capsys, ["demo", "--out", seeded, "--frames", "2500"])
    assert no_training == [(str(seeded), False)]


def test_demo_replaces_a_run_stopped_before_its_first_checkpoint(tmp_path, capsys, no_training):
    run = _fake_run(tmp_path / "run", with_checkpoints=False)
    ok(capsys, ["demo", "--out", run])
    assert no_training == [(str(run), False)]


def test_demo_replaces_a_run(tmp_path, capsys, no_training):
    run = _fake_run(tmp_path / "run")
    (tmp_path / "beside.txt").write_text("stays\n")
    ok(capsys, ["demo", "--out", run])
    assert no_training == [(str(run), False)]     # the earlier run was removed before training
    assert (tmp_path / "beside.txt").read_text() == "stays\n"
    empty = tmp_path / "empty"
    empty.mkdir()
    ok(capsys, ["demo", "--out", empty])
    assert no_training[-1] == (str(empty), True)   # an empty directory is kept and written into


# ---- train --------------------------------------------------------------------------------------

def test_train_out_is_a_file(tmp_path, capsys):
    f = tmp_path / "run"
    f.write_text("not a run\n")
    refused(capsys, tmp_path, ["train", "--config", DEMO_TOML, "--out", f], f, "is a file")


def test_train_out_among_a_users_files_is_refused(synth_dir, tmp_path, capsys):
    """`--out` pointed at the data (or a home directory): no run is written among those files."""
    data = tmp_path / "data"
    shutil.copytree(synth_dir, data)
    refused(capsys, tmp_path, ["train", "--local", "--config", DEMO_TOML, "--data", data, "--out", data],
            data, "but no run")


def test_synth_never_overwrites_real_humaneva_files(synth_dir, tmp_path, capsys):
    """The real files have the synthetic ones' names; only raypose synth's own are replaced."""
    real = tmp_path / "humaneva"
    shutil.copytree(synth_dir, real)
    pos2d, meta = npz.load_2d(real / "data_2d_humaneva15_gt.npz")
    npz.save_2d(real / "data_2d_humaneva15_gt.npz", pos2d, {k: v for k, v in meta.items() if k != "synthetic"})
    refused(capsys, tmp_path, ["synth", "--out", real, "--overwrite"], real, "not a synthetic npz directory")


# ---- the rule itself ----------------------------------------------------------------------------

def test_check_replaceable(tmp_path):
    check_replaceable(tmp_path / "new", False, kind="prepared")
    check_replaceable(tmp_path, False)                       # empty
    (tmp_path / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        check_replaceable(tmp_path, True)                    # no kind: --overwrite replaces nothing
    with pytest.raises(UserError, match="not a raypose run"):
        check_replaceable(tmp_path, True, kind="run")
    with pytest.raises(UserError, match="is the input"):
        check_replaceable(tmp_path / "x", True, inputs=[tmp_path / "x"], kind="synthetic")
    with pytest.raises(UserError, match="holds the input"):
        check_replaceable(tmp_path, True, inputs=[tmp_path / "a" / "b.npz"])
    check_replaceable(tmp_path / "sub", True, inputs=[tmp_path])   # an output inside the input is fine
    os.remove(tmp_path / "x")
    (tmp_path / "_raypose.json").write_text("{}")
    check_replaceable(tmp_path, True, kind="prepared")


def test_check_replaceable_needs_a_folder_it_can_write_in(tmp_path):
    (tmp_path / "f.npz").write_text("")
    for out in (tmp_path / "f.npz" / "sub", tmp_path / "f.npz" / "a" / "b"):
        with pytest.raises(UserError, match=f"--out {out}: {tmp_path / 'f.npz'} is a file, not a folder; expected"):
            check_replaceable(out, False, kind="run")
    with pytest.raises(UserError, match=r"--out /proc/x/y: cannot write in /proc \(No such file or directory\); "
                                        "expected a writable folder"):
        check_replaceable("/proc/x/y", True, kind="export")
    assert os.listdir(tmp_path) == ["f.npz"]


def test_check_replaceable_keeps_a_former_exports_foreign_files(tmp_path):
    """--overwrite replaces a former export only if everything in it is listed in its summary."""
    (tmp_path / "a.bvh").write_text("")
    (tmp_path / "raypose_export.json").write_text(json.dumps({"files": ["a.bvh"]}))
    check_replaceable(tmp_path, True, kind="export")
    (tmp_path / "b.blend").write_text("")
    with pytest.raises(UserError, match="b.blend is not listed in its raypose_export.json, so it is not replaced"):
        check_replaceable(tmp_path, True, kind="export")
    os.remove(tmp_path / "b.blend")
    (tmp_path / "raypose_export.json").write_text("{")
    with pytest.raises(UserError, match="raypose_export.json is unreadable or lists no files"):
        check_replaceable(tmp_path, True, kind="export")


def test_import_members_out_inside_a_file_is_one_line(tmp_path, capsys):
    """Refused before the checkpoint is read (its bytes are not a checkpoint, and that is not what is said)."""
    (tmp_path / "m0.bin").write_bytes(b"not read")
    refused(capsys, tmp_path, ["import-members", tmp_path / "m0.bin", "--out", tmp_path / "m0.bin" / "run"],
            f"--out {tmp_path / 'm0.bin' / 'run'}: {tmp_path / 'm0.bin'} is a file, not a folder")


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_dir_gets_the_users_permissions(tmp_path, umask):
    """As a run `train` writes (0o777 & ~umask), not mkdtemp's private 0o700."""
    old = os.umask(umask)
    try:
        with atomic_dir(tmp_path / "a" / "out") as tmp:
            os.mkdir(os.path.join(tmp, "sub"))
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "out", tmp_path / "a" / "out" / "sub"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o777 & ~umask, path

"""`raypose predict` defends itself (issue 12): 2D that cannot be pixels of an image, non-finite
poses and unusable --out paths are one line and exit 2 with nothing written; outputs get the
user's usual permissions."""
import contextlib
import io
import itertools
import os
import stat
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raypose.cli import main
from raypose.data.npz import MAX_PIXELS, read_npz, save_2d, save_npz
from raypose.ensemble.ensemble import Ensemble

J = 15   # the tiny run's 2D and 3D joints (HumanEva)


@pytest.fixture(scope="module")
def run_dir(local_run):
    """The session's 2-member, 1-iteration local run (conftest.local_run)."""
    return local_run


def _pixels(frames=30, seed=0):
    """A plausible 2D track: joints inside a 640 x 480 image."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, (frames, J, 2)) * [640, 480]).astype(np.float32)


def _write(path, *cams):
    save_2d(path, {"S1": {"Walk 1": list(cams)}}, {})
    return path


def _predict(run_dir, inp, out, *extra):
    """(exit status, stdout, stderr) of `raypose predict`."""
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        code = main(["predict", "--run", str(run_dir), "--input", str(inp), "--out", str(out), *extra])
    return code, o.getvalue(), e.getvalue()


def _refused(result, needle, out=None):
    """Exit 2, one line naming `needle`, and no file `out` (if given) made."""
    code, _, err = result
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and needle in err, (code, err)
    assert out is None or not os.path.exists(out)


def test_plausible_input_gives_finite_poses(run_dir, tmp_path):
    off = _pixels(seed=1) * 1.5 - 100   # joints a little outside the frame are fine
    edge = _pixels(seed=2)
    edge[0, 0] = [MAX_PIXELS, -MAX_PIXELS]   # the bound itself is allowed
    inp = _write(tmp_path / "in.npz", _pixels(), off.astype(np.float64), edge)
    code, out, err = _predict(run_dir, inp, tmp_path / "p.npz")
    assert code == 0 and err == "" and "wrote" in out
    pos = read_npz(tmp_path / "p.npz")["positions_3d"]["S1"]["Walk 1"]
    assert [p.shape for p in pos] == [(30, J, 3)] * 3 and all(np.isfinite(p).all() for p in pos)
    inp16 = _write(tmp_path / "int16.npz", _pixels(5).astype(np.int16))
    assert _predict(run_dir, inp16, tmp_path / "p16.npz")[0] == 0


@pytest.mark.filterwarnings("error")   # no ComplexWarning either: refused before any cast
@pytest.mark.parametrize("name,make,needle", [
    ("complex", lambda kp: kp.astype(np.complex64), "complex"),
    ("complex_zero_imag", lambda kp: kp.astype(np.complex128), "complex"),
    ("inf", lambda kp: np.where(np.arange(J)[None, :, None] == 3, -np.inf, kp), "infinite"),
    ("float32_overflow", lambda kp: kp.astype(np.float64) * 1e37, "infinite"),
    ("float16_inf", lambda kp: np.full(kp.shape, np.inf, np.float16), "infinite"),
    ("times_1e20", lambda kp: kp * 1e20, "expected |value| <= 100000"),
    ("times_1e6", lambda kp: kp * 1e6, "expected |value| <= 100000"),
    ("one_joint_far", lambda kp: np.where(np.arange(J)[None, :, None] == 7, -2e5, kp), "2e+05"),
    ("int64_far", lambda kp: (kp * 1e4).astype(np.int64), "expected |value| <= 100000"),
    ("bool", lambda kp: kp > 100, "dtype bool"),
    ("str", lambda kp: kp.astype(str), "dtype <U"),
    ("object", lambda kp: kp.astype(object), "dtype object"),
])
def test_input_that_is_no_image_is_refused(run_dir, tmp_path, name, make, needle):
    inp = _write(tmp_path / f"{name}.npz", _pixels(), make(_pixels(seed=3)))
    _refused(_predict(run_dir, inp, tmp_path / "p.npz"), needle, tmp_path / "p.npz")


def test_missing_joints_are_filled_and_marked(run_dir, tmp_path, monkeypatch):
    """NaN is a missing joint: filled from its neighbours in time, marked in `filled`, its radius
    from a calibration that saw filled joints (a run calibrated before that flags it); a track
    with nothing usable is one line."""
    kp = _pixels(seed=3)
    kp[:, 3] = np.nan            # never seen: the body's centre
    kp[10:14, 5] = np.nan        # a gap of 4 frames: interpolated
    inp = _write(tmp_path / "gaps.npz", _pixels(), kp)
    code, _, err = _predict(run_dir, inp, tmp_path / "p.npz")
    assert code == 0 and err == ""
    d = read_npz(tmp_path / "p.npz")
    filled = d["filled"]["S1"]["Walk 1"]
    assert filled[0].shape == (30, J) and not filled[0].any()
    assert filled[1][:, 3].all() and filled[1][10:14, 5].all() and filled[1].sum() == 30 + 4
    assert np.isfinite(d["positions_3d"]["S1"]["Walk 1"][1]).all()
    meta = d["metadata"]
    assert meta["input"]["tracks"]["S1/Walk 1/C2"]["filled_share"] == pytest.approx(34 / (30 * J))
    assert not any("filled" in w for w in meta["uncertainty_calibration"]["why"])   # calibrated on gaps
    load = Ensemble.load

    def calibrated_before_gaps(*args, **kwargs):
        ensemble = load(*args, **kwargs)
        ensemble.calibration.fitted_on_gaps = False
        return ensemble
    monkeypatch.setattr(Ensemble, "load", calibrated_before_gaps)
    assert _predict(run_dir, inp, tmp_path / "old.npz")[0] == 0
    why = read_npz(tmp_path / "old.npz")["metadata"]["uncertainty_calibration"]["why"]
    assert any("predates filled 2D" in w for w in why)
    _refused(_predict(run_dir, _write(tmp_path / "none.npz", np.full((30, J, 2), np.nan, np.float32)),
                      tmp_path / "q.npz"), "no usable keypoint", tmp_path / "q.npz")


def test_non_finite_poses_are_refused(run_dir, tmp_path, monkeypatch):
    estimate = Ensemble.estimate

    def nan_pose(self, *args, **kwargs):
        preds, ens, unc, views = estimate(self, *args, **kwargs)
        ens[1, 2, 0] = np.nan
        return preds, ens, unc, views
    monkeypatch.setattr(Ensemble, "estimate", nan_pose)
    inp = _write(tmp_path / "in.npz", _pixels())
    _refused(_predict(run_dir, inp, tmp_path / "p.npz"), "NaN or infinite", tmp_path / "p.npz")
    _refused(_predict(run_dir, inp, tmp_path / "f.npz", "--fit-2d"), "NaN or infinite", tmp_path / "f.npz")


def _unwritable(tmp_path):
    """A folder this process cannot create files in (chmod is no bar to root: /sys then)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    for d in (ro, "/sys"):
        try:
            open(os.path.join(d, "probe"), "x").close()
        except OSError:
            return d
        os.unlink(os.path.join(d, "probe"))
    pytest.skip("no unwritable folder here")


def test_out_paths_are_checked_before_loading(run_dir, tmp_path, monkeypatch):
    inp = _write(tmp_path / "in.npz", _pixels())
    (tmp_path / "file").write_text("x")
    (tmp_path / "old.npz").write_bytes(b"old")
    ro = _unwritable(tmp_path)

    def no_loading(*args, **kwargs):
        raise AssertionError("the ensemble was loaded before --out was checked")
    monkeypatch.setattr(Ensemble, "load", no_loading)
    try:
        cases = [
            (tmp_path, "is a directory"),
            (str(tmp_path / "new") + os.sep, "names no file"),
            (tmp_path / "file" / "p.npz", "is a file, not a folder"),
            (tmp_path / "file" / "deeper" / "p.npz", "is a file, not a folder"),
            (tmp_path / "old.npz", "--overwrite"),
            (inp, "is the --input file; expected a path apart from --input"),
            (os.path.join(ro, "p.npz"), "cannot write in"),
            (os.path.join(ro, "sub", "p.npz"), "cannot write in"),
        ]
        for out, needle in cases:
            existed = os.path.exists(out)
            _refused(_predict(run_dir, inp, out), needle)
            assert os.path.exists(out) == existed, out
        _refused(_predict(run_dir, inp, inp, "--overwrite"), "is the --input file")
        assert sorted(os.listdir(tmp_path)) == ["file", "in.npz", "old.npz", "ro"]   # nothing new
        assert (tmp_path / "old.npz").read_bytes() == b"old" and (tmp_path / "file").read_text() == "x"
        assert not os.path.exists(tmp_path / "new") and not os.path.exists(os.path.join(ro, "sub"))
    finally:
        if ro != "/sys":
            os.chmod(ro, 0o700)
    monkeypatch.undo()
    code, _, err = _predict(run_dir, inp, tmp_path / "old.npz", "--overwrite")
    assert code == 0 and err == "" and "positions_3d" in read_npz(tmp_path / "old.npz")
    code, _, err = _predict(run_dir, inp, tmp_path / "a" / "b" / "p.npz")   # missing folders are made
    assert code == 0 and (tmp_path / "a" / "b" / "p.npz").is_file()
    assert sorted(os.listdir(tmp_path / "a" / "b")) == ["p.npz"]   # no temporaries left


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_outputs_get_the_users_permissions(run_dir, tmp_path, umask):
    inp = _write(tmp_path / "in.npz", _pixels())
    old = os.umask(umask)
    try:
        assert _predict(run_dir, inp, tmp_path / "p.npz")[0] == 0
        save_npz(tmp_path / "s.npz", x=np.zeros(3))   # synth's writer
        save_2d(tmp_path / "t.npz", {}, {})
    finally:
        os.umask(old)
    for name in ("p.npz", "s.npz", "t.npz"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~umask, name
    assert os.umask(old) == old   # and the process's umask is back as it was
    os.umask(old)


DTYPES = [np.float16, np.float32, np.float64, np.int16, np.int32, np.int64, np.complex64, np.bool_,
          object, str]


@st.composite
def inputs(draw):
    joints = draw(st.one_of(st.just(J), st.integers(0, 20)))
    frames = draw(st.lists(st.integers(0, 40), min_size=1, max_size=3))   # one list item per camera
    dtype = draw(st.sampled_from(DTYPES))
    magnitude = 10.0 ** draw(st.floats(-3, 25))
    specials = draw(st.sampled_from([None, None, None, np.nan, np.inf, -np.inf]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    return joints, frames, dtype, magnitude, specials, seed


def _track(rng, frames, joints, dtype, magnitude, special):
    kp = rng.uniform(-1, 1, (frames, joints, 2)) * magnitude
    if special is not None and kp.size:
        kp.flat[rng.integers(0, kp.size, rng.integers(1, 4))] = special
    with np.errstate(invalid="ignore", over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ComplexWarning, casts of NaN to int
        return kp.astype(dtype)


def _acceptable(kp):
    """What predict must accept: real numbers, no infinity as float32, within MAX_PIXELS; NaN is a
    missing joint, filled in from the rest, so a track with frames needs one joint-frame that is not."""
    if kp.dtype.kind not in "iuf":
        return False
    with np.errstate(invalid="ignore", over="ignore"):
        f = kp.astype(np.float32)
    seen = f[~np.isnan(f)]
    return bool(not np.isinf(f).any() and (not f.size or (seen.size and np.abs(seen).max() <= MAX_PIXELS)))


_counter = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_predict_on_random_input_is_finite_or_one_line(run_dir, tmp_path_factory, case):
    joints, frames, dtype, magnitude, special, seed = case
    rng = np.random.default_rng(seed)
    d = tmp_path_factory.getbasetemp() / "random"
    d.mkdir(exist_ok=True)
    n = next(_counter)
    inp, out = d / f"in{n}.npz", d / f"out{n}.npz"
    cams = [_track(rng, t, joints, dtype, magnitude, special) for t in frames]
    _write(inp, *cams)
    code, _, err = _predict(run_dir, inp, out)
    ok = joints == J and any(frames) and all(_acceptable(kp) for kp in cams)
    if code == 0:
        assert ok and err == "", (case, err)
        d3 = read_npz(out)
        pos, unc = d3["positions_3d"]["S1"]["Walk 1"], d3["uncertainty"]["S1"]["Walk 1"]
        assert [p.shape for p in pos] == [(t, J, 3) for t in frames]
        assert [u.shape for u in unc] == [(t, J) for t in frames]
        assert all(np.isfinite(p).all() for p in pos) and all(np.isfinite(u).all() for u in unc)
    else:
        assert code == 2 and not ok, (case, err)
        assert err.count("\n") == 1 and err.startswith("error: ") and not out.exists(), (case, err)

"""`raypose plot --pred POSES.npz --animate SUBJECT/ACTION`: a prediction drawn without ground truth
(issue 15 item 8), and the 2D it needs, which `raypose predict` writes as `keypoints_2d`."""
import numpy as np
import pytest

from raypose.cli import main
from raypose.commands import plot as figures
from raypose.data.npz import load_2d, read_npz, save_2d, save_npz

Image = pytest.importorskip("PIL.Image")

T = 24                      # frames per track: GIFs of a second or so
WALK = ("Validate/S1", "Walking 1 chunk0")
HOLES = {4: slice(5, 12), 10: slice(14, 20)}   # joint -> frames missing (left wrist, left ankle)
WHOLE = 16                                      # a frame with every joint missing


def _input(synth_dir, tmp_path, name, scale=1.0, holes=False):
    """The synthetic 2D of one walk (3 cameras, T frames, x `scale`), with gaps if `holes`, and a
    Jog whose first camera has 0 frames."""
    pos, _ = load_2d(synth_dir / "data_2d_humaneva15_gt.npz")
    cams = [scale * c[:T].astype(np.float32) for c in pos[WALK[0]][WALK[1]]]
    if holes:
        for c in cams:
            for j, frames in HOLES.items():
                c[frames, j] = np.nan
            c[WHOLE] = np.nan
    jog = [c[:T] for c in pos[WALK[0]]["Jog 1 chunk0"]]
    jog[0] = jog[0][:0]
    path = tmp_path / name
    save_2d(path, {WALK[0]: {WALK[1]: cams, "Jog 1 chunk0": jog}}, {"layout_name": "humaneva15"})
    return path, cams


@pytest.fixture(scope="module")
def preds(local_run, synth_dir, tmp_path_factory):
    """Two real predictions: clean 2D at 640x480 (no trajectory: the size is given), and 2D with
    gaps at 1280x960 with --focal (a trajectory)."""
    tmp = tmp_path_factory.mktemp("plot_pred")
    clean, clean_2d = _input(synth_dir, tmp, "clean.npz")
    gaps, gaps_2d = _input(synth_dir, tmp, "gaps.npz", scale=2.0, holes=True)
    out = {"clean": tmp / "clean_pred.npz", "gaps": tmp / "gaps_pred.npz", "dir": tmp}
    assert main(["predict", "--run", str(local_run), "--input", str(clean), "--out", str(out["clean"]),
                 "--image-size", "640", "480"]) == 0
    assert main(["predict", "--run", str(local_run), "--input", str(gaps), "--out", str(out["gaps"]),
                 "--image-size", "1280", "960", "--focal", "1.1"]) == 0
    out["clean_2d"], out["gaps_2d"] = clean_2d, gaps_2d
    return out


def _frames(path):
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def _magenta(frame):
    """Pixels of the filled-joint rings' colour ('m': 191, 0, 191)."""
    f = frame.astype(int)
    return int(((f[..., 0] > 150) & (f[..., 1] < 60) & (f[..., 2] > 150)).sum())


def test_predict_writes_the_2d_the_members_saw(preds):
    """keypoints_2d is the input where observed and the linear interpolation in time where filled,
    in the input's own pixels (1280x960 here), float32; a 0-frame track has 0 rows."""
    d = read_npz(preds["gaps"])
    assert d["metadata"]["input"]["tracks"][f"{WALK[0]}/{WALK[1]}/C1"]["image_size"] == [1280.0, 960.0]
    assert d["keypoints_2d"][WALK[0]]["Jog 1 chunk0"][0].shape == (0, 15, 2)
    frames = np.arange(T)
    for c, given in enumerate(preds["gaps_2d"]):
        kp, filled = d["keypoints_2d"][WALK[0]][WALK[1]][c], d["filled"][WALK[0]][WALK[1]][c]
        assert kp.dtype == np.float32 and kp.shape == (T, 15, 2)
        np.testing.assert_array_equal(filled, np.isnan(given).any(-1))
        assert filled.sum() == 7 + 6 + 15 - 1                   # the holes and frame 16 (the ankle's once)
        np.testing.assert_allclose(kp[~filled], given[~filled], atol=1e-3)
        for j in range(15):
            seen = ~filled[:, j]
            for x in range(2):
                line = np.interp(frames, frames[seen], given[seen, j, x])
                np.testing.assert_allclose(kp[filled[:, j], j, x], line[filled[:, j]], atol=1e-3)
    assert max(np.abs(kp).max() for kp in d["keypoints_2d"][WALK[0]][WALK[1]]) > 700   # not 640x480's pixels


def test_plot_pred_animates_a_track(preds, capsys):
    """Every frame drawn, frames that differ; filled joints ringed; the trajectory's top view widens
    the figure; an existing --out is kept without --overwrite and replaced with it."""
    gif = preds["dir"] / "gaps.gif"
    gif.write_bytes(b"mine")
    cmd = ["plot", "--pred", str(preds["gaps"]), "--animate", "/".join(WALK), "--out", str(gif)]
    assert main(cmd) == 2 and "file exists" in capsys.readouterr().err and gif.read_bytes() == b"mine"
    assert main(cmd + ["--overwrite"]) == 0 and f"wrote {gif}" in capsys.readouterr().out
    frames = _frames(gif)
    assert len(frames) == T and not np.array_equal(frames[0], frames[-1])
    assert _magenta(frames[WHOLE]) > _magenta(frames[0]) + 300       # 2 x 15 rings vs the legend's
    assert _magenta(frames[8]) > _magenta(frames[0]) + 20           # the wrist's rings
    clean = preds["dir"] / "clean.gif"
    assert main(["plot", "--pred", str(preds["clean"]), "--animate", "Validate/S1/Walking", "--camera", "C2",
                 "--out", str(clean)]) == 0
    plain = _frames(clean)
    assert len(plain) == T and _magenta(plain[WHOLE]) == 0
    assert frames[0].shape[1] > plain[0].shape[1] + 200                # the top view of the root's path


def test_joint_colour_is_the_radius_else_the_spread(preds):
    d = figures._read_prediction(preds["clean"])
    assert d["metadata"]["quantiles"] == [0.5, 0.9, 0.95] and d["skeleton"].num_joints == 15
    colour, label = figures._joint_colour(d, *WALK, 1, "f")
    np.testing.assert_array_equal(colour, d["radius"][WALK[0]][WALK[1]][1][..., 1])
    assert "error radius at p = 0.9" in label and "(mm)" in label
    d["metadata"]["quantiles"] = [0.95, 0.99]
    d["radius"][WALK[0]][WALK[1]][1] = d["radius"][WALK[0]][WALK[1]][1][..., :2]
    assert "p = 0.95" in figures._joint_colour(d, *WALK, 1, "f")[1]   # none <= 0.9: the lowest
    del d["radius"]
    colour, label = figures._joint_colour(d, *WALK, 1, "f")
    np.testing.assert_array_equal(colour, d["uncertainty"][WALK[0]][WALK[1]][1])
    assert "spread" in label and "uncertainty" in label


def _refused(capsys, argv, *words):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err
    return err


def test_plot_pred_bad_input_is_one_line_and_writes_nothing(preds, synth_dir, capsys):
    gif = preds["dir"] / "bad.gif"
    pred = str(preds["clean"])
    base = ["plot", "--pred", pred, "--out", str(gif)]
    _refused(capsys, base + ["--animate", "Validate/S9/Walking 1 chunk0"], "no such SUBJECT/ACTION",
             "'Validate/S1/Walking 1 chunk0'")
    _refused(capsys, base + ["--animate", "/".join(WALK), "--camera", "C7"], "--camera C7", "C1, C2, C3")
    _refused(capsys, base + ["--animate", "Validate/S1/Jog 1 chunk0", "--camera", "C1"], "0 frames")
    _refused(capsys, base, "needs --animate")
    _refused(capsys, base + ["--animate", "/".join(WALK), "--iteration", "1"], "--iteration")
    _refused(capsys, ["plot", "--pred", pred, "--run", pred, "--animate", "/".join(WALK)], "not allowed with")
    _refused(capsys, ["plot", "--pred", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--animate", "/".join(WALK),
                      "--out", str(gif)], "no positions_3d", "expected a prediction file")
    d = read_npz(pred)
    del d["keypoints_2d"]
    old = preds["dir"] / "old_pred.npz"
    save_npz(old, **d)
    _refused(capsys, ["plot", "--pred", str(old), "--animate", "/".join(WALK), "--out", str(gif)],
             "no keypoints_2d", "predict again")
    assert not gif.exists()

"""raypose.plots: every figure is a readable PNG, the animation a GIF with one image per frame."""
import os

import matplotlib.image
import numpy as np
import pytest

from raypose import plots
from raypose.errors import UserError
from raypose.skeleton import NUM_JOINTS, PARENTS

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_w=300, min_h=200):
    assert os.path.isfile(path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_h and img.shape[1] >= min_w
    assert img[..., :3].std() > 0.01                      # not a blank canvas
    return img


def gif_frames(path):
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        assert im.format == "GIF"
        return im.n_frames, im.size


# ----------------------------------------------------------------------------- synthetic inputs

def study(n=5):
    sizes = list(range(1, n + 1))
    m = 40 - 6 * (1 - np.exp(-np.arange(n) / 2))
    sd = 2 / np.sqrt(sizes)
    sd[-1] = 0
    return {name: {"sizes": sizes, "mpjpe_mean": list(m + k), "mpjpe_std": list(sd),
                   "p_mpjpe_mean": list(0.7 * m + k), "p_mpjpe_std": list(0.7 * sd)}
            for k, name in enumerate(("mean", "weighted"))}


def curve():
    its = [1, 2, 3, 5]
    v = np.array([120.0, 70, 50, 42])
    return {"iteration": its,
            "aggregates": {a: {"mpjpe": list(v - k), "p_mpjpe": list(0.7 * v - k)}
                           for k, a in enumerate(("mean", "median", "weighted"))},
            "members": {"mpjpe": [list(v + 3), list(v + 5)], "p_mpjpe": [list(0.7 * v + 2)] * 2}}


def per_joint():
    err = np.linspace(20, 60, NUM_JOINTS)
    err[0] = 0
    return {"spread_mm": list(err / 3), "error_mm": list(err)}


def sparsification():
    from raypose.calibration import sparsification as sp
    rng = np.random.default_rng(0)
    e = rng.gamma(3, 10, 500)
    return sp(e * rng.lognormal(0, 0.5, 500), e)


def table(missing=("Validate/S3", "Jog")):
    rows = []
    for i, s in enumerate(("Validate/S1", "Validate/S2", "Validate/S3")):
        for j, a in enumerate(("Walking", "Jog", "Box")):
            if (s, a) != missing:
                rows.append({"subject": s, "action": a, "frames": 100, "mpjpe": 30.0 + i + 5 * j,
                             "p_mpjpe": 20.0 + i + 4 * j})
    return rows


def walking_clip(frames=24):
    """A moving 15-joint skeleton: camera-frame root-relative metres and its 2D projection."""
    t = np.arange(frames)[:, None]
    base = np.zeros((NUM_JOINTS, 3))
    up = {1: 0.5, 14: 0.72, 2: 0.48, 5: 0.48, 3: 0.2, 6: 0.2, 4: -0.05, 7: -0.05,
          8: -0.03, 11: -0.03, 9: -0.45, 12: -0.45, 10: -0.88, 13: -0.88}
    for j, h in up.items():
        base[j, 1] = -h                                     # camera y points down
    base[[2, 3, 4, 8, 9, 10], 0] = -0.18
    base[[5, 6, 7, 11, 12, 13], 0] = 0.18
    pose = np.repeat(base[None], frames, 0)
    swing = 0.25 * np.sin(2 * np.pi * t / frames)
    pose[:, [4, 10], 2] += swing
    pose[:, [7, 13], 2] -= swing
    kp = 320 + 200 * pose[..., :2] / (4 + pose[..., 2:3])
    return kp.astype(np.float32), pose.astype(np.float32)


# ----------------------------------------------------------------------------- figures

def test_ensemble_size(tmp_path):
    assert_png(plots.plot_ensemble_size(study(), str(tmp_path / "e.png")))


def test_ensemble_size_single_member(tmp_path):
    assert_png(plots.plot_ensemble_size(study(1), str(tmp_path / "e1.png")))


def test_iterations(tmp_path):
    assert_png(plots.plot_iterations(curve(), str(tmp_path / "it.png")))
    no_members = {k: v for k, v in curve().items() if k != "members"}
    assert_png(plots.plot_iterations(no_members, str(tmp_path / "it2.png")))


def test_per_joint(tmp_path):
    pj = per_joint()
    assert_png(plots.plot_per_joint(pj["spread_mm"], pj["error_mm"], str(tmp_path / "pj.png")))


def test_sparsification(tmp_path):
    assert_png(plots.plot_sparsification(sparsification(), str(tmp_path / "sp.png")))
    sp = sparsification()
    sp["random"] = [sp["random"]] * len(sp["fractions"])
    del sp["ause_normalised"]
    assert_png(plots.plot_sparsification(sp, str(tmp_path / "sp2.png")))


def test_heatmap_with_a_missing_cell(tmp_path):
    out = tmp_path / "sub" / "heat.png"                    # parent folders are created
    assert_png(plots.plot_heatmap(table(), str(out), metric="mpjpe"))


def test_heatmap_all_equal_values(tmp_path):
    rows = [{"subject": "S1", "action": "Walking", "frames": 10, "p_mpjpe": 25.0}]
    assert_png(plots.plot_heatmap(rows, str(tmp_path / "one.png")), min_w=200, min_h=150)


def test_save_all_writes_the_five_figures(tmp_path):
    ev = {"ensemble_size": study(), "iterations": curve(), "per_joint": per_joint(),
          "sparsification": sparsification(), "table": table()}
    paths = plots.save_all(ev, str(tmp_path / "plots"))
    assert sorted(os.path.basename(p) for p in paths) == [
        "ensemble_size.png", "heatmap_p_mpjpe.png", "iterations.png", "per_joint.png",
        "sparsification.png"]
    for p in paths:
        assert_png(p)
    only = plots.save_all({"table": table()}, str(tmp_path / "partial"))
    assert [os.path.basename(p) for p in only] == ["heatmap_p_mpjpe.png"]


# ----------------------------------------------------------------------------- animation

def test_skeleton_limits_contain_every_point_with_equal_spans():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.4, (30, NUM_JOINTS, 3)) + [0, 0, 1]
    b = rng.normal(0, 0.6, (30, NUM_JOINTS, 3))
    lo, hi = plots.skeleton_limits(a, None, b)
    pts = np.concatenate([a.reshape(-1, 3), b.reshape(-1, 3)])
    assert (pts > lo).all() and (pts < hi).all()
    assert np.allclose(hi - lo, (hi - lo)[0])               # a cube: equal aspect
    span = (pts.max(0) - pts.min(0)).max()
    assert (hi - lo)[0] == pytest.approx(span * 1.2)        # 10% margin on each side


def test_upright_view_puts_the_head_on_top():
    _, pose = walking_clip(2)
    up = plots._upright(pose)
    assert (up[:, 14, 2] > up[:, 0, 2]).all() and (up[:, 0, 2] > up[:, 10, 2]).all()


def test_bone_path_has_one_segment_per_bone():
    idx = plots._bone_path([j for j in range(NUM_JOINTS) if PARENTS[j] >= 0])
    x, _, _ = plots._path_coords(np.arange(NUM_JOINTS * 3.0).reshape(NUM_JOINTS, 3), idx)
    assert np.isnan(x).sum() == NUM_JOINTS - 1 and len(x) == 3 * (NUM_JOINTS - 1)


def test_animate_gif_has_every_frame(tmp_path):
    kp, pose = walking_clip(24)
    rng = np.random.default_rng(0)
    pred = pose + rng.normal(0, 0.02, pose.shape).astype(np.float32)
    spread = np.abs(rng.normal(0.02, 0.01, pose.shape[:2]))
    out = plots.animate(kp, pred, str(tmp_path / "a.gif"), gt3d=pose, spread=spread, title="t")
    n, size = gif_frames(out)
    assert n == 24 and size[0] > 500 and size[1] > 300


def test_animate_step_17_keypoints_and_no_truth(tmp_path):
    kp, pose = walking_clip(30)
    kp17 = np.concatenate([kp, kp[:, :2]], axis=1)
    out = plots.animate(kp17, pose, str(tmp_path / "b.gif"), step=4, fps=15)
    assert gif_frames(out)[0] == 8                          # frames 0, 4, ..., 28


def test_animate_caps_the_frame_count(tmp_path):
    kp, pose = walking_clip(50)
    out = plots.animate(kp, pose, str(tmp_path / "c.gif"), max_frames=20)
    assert gif_frames(out)[0] == 17                         # step 3


def test_animate_rejects_bad_input(tmp_path):
    kp, pose = walking_clip(5)
    with pytest.raises(UserError, match="only GIF"):
        plots.animate(kp, pose, str(tmp_path / "a.mp4"))
    with pytest.raises(UserError, match="kp2d_px"):
        plots.animate(kp[:3], pose, str(tmp_path / "a.gif"))
    with pytest.raises(UserError, match="spread"):
        plots.animate(kp, pose, str(tmp_path / "a.gif"), spread=np.zeros((5, 3)))

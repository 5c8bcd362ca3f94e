"""raypose.viz.animation: the skeleton animation is a GIF with one image per frame drawn."""
import numpy as np
import pytest

from raypose.datasets.skeleton import NUM_JOINTS, PARENTS
from raypose.errors import UserError
from raypose.viz import animation


def gif_frames(path):
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        assert im.format == "GIF"
        return im.n_frames, im.size


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


def test_skeleton_limits_contain_every_point_with_equal_spans():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 0.4, (30, NUM_JOINTS, 3)) + [0, 0, 1]
    b = rng.normal(0, 0.6, (30, NUM_JOINTS, 3))
    lo, hi = animation.skeleton_limits(a, None, b)
    pts = np.concatenate([a.reshape(-1, 3), b.reshape(-1, 3)])
    assert (pts > lo).all() and (pts < hi).all()
    assert np.allclose(hi - lo, (hi - lo)[0])               # a cube: equal aspect
    span = (pts.max(0) - pts.min(0)).max()
    assert (hi - lo)[0] == pytest.approx(span * 1.2)        # 10% margin on each side


def test_upright_view_puts_the_head_on_top():
    _, pose = walking_clip(2)
    up = animation._upright(pose)
    assert (up[:, 14, 2] > up[:, 0, 2]).all() and (up[:, 0, 2] > up[:, 10, 2]).all()


def test_bone_path_has_one_segment_per_bone():
    idx = animation._bone_path([j for j in range(NUM_JOINTS) if PARENTS[j] >= 0])
    x, _, _ = animation._path_coords(np.arange(NUM_JOINTS * 3.0).reshape(NUM_JOINTS, 3), idx)
    assert np.isnan(x).sum() == NUM_JOINTS - 1 and len(x) == 3 * (NUM_JOINTS - 1)


def test_animate_gif_has_every_frame(tmp_path):
    kp, pose = walking_clip(24)
    rng = np.random.default_rng(0)
    pred = pose + rng.normal(0, 0.02, pose.shape).astype(np.float32)
    spread = np.abs(rng.normal(0.02, 0.01, pose.shape[:2]))
    out = animation.animate(kp, pred, str(tmp_path / "a.gif"), gt3d=pose, spread=spread, title="t")
    n, size = gif_frames(out)
    assert n == 24 and size[0] > 500 and size[1] > 300


def test_animate_step_17_keypoints_and_no_truth(tmp_path):
    kp, pose = walking_clip(30)
    kp17 = np.concatenate([kp, kp[:, :2]], axis=1)
    out = animation.animate(kp17, pose, str(tmp_path / "b.gif"), step=4, fps=15)
    assert gif_frames(out)[0] == 8                          # frames 0, 4, ..., 28


def test_animate_caps_the_frame_count(tmp_path):
    kp, pose = walking_clip(50)
    out = animation.animate(kp, pose, str(tmp_path / "c.gif"), max_frames=20)
    assert gif_frames(out)[0] == 17                         # step 3


def test_animate_rejects_bad_input(tmp_path):
    kp, pose = walking_clip(5)
    with pytest.raises(UserError, match="only GIF"):
        animation.animate(kp, pose, str(tmp_path / "a.mp4"))
    with pytest.raises(UserError, match="kp2d_px"):
        animation.animate(kp[:3], pose, str(tmp_path / "a.gif"))
    with pytest.raises(UserError, match="spread"):
        animation.animate(kp, pose, str(tmp_path / "a.gif"), spread=np.zeros((5, 3)))


def test_animate_rejects_bad_shapes_and_steps(tmp_path):
    kp, pose = walking_clip(5)
    out = str(tmp_path / "a.gif")
    with pytest.raises(UserError, match=r"pred3d has shape \(5, 14, 3\), expected \(T, 15, 3\)"):
        animation.animate(kp, pose[:, :14], out)
    with pytest.raises(UserError, match="gt3d has shape"):
        animation.animate(kp, pose, out, gt3d=pose[:4])
    with pytest.raises(UserError, match="no frames"):
        animation.animate(kp[:0], pose[:0], out)
    with pytest.raises(UserError, match="step 0 must be a positive integer"):
        animation.animate(kp, pose, out, step=0)
    assert not (tmp_path / "a.gif").exists()


def test_animate_draws_another_skeleton(tmp_path):
    """A 17-joint skeleton given as parents/left/right: two extra joints hang off the head."""
    kp, pose = walking_clip(6)
    parents = [*PARENTS.tolist(), 14, 14]
    pose17 = np.concatenate([pose, pose[:, [14, 14]] + [[-0.05, -0.05, 0], [0.05, -0.05, 0]]], axis=1)
    kp17 = np.concatenate([kp, kp[:, [14, 14]] + [[-5.0, -5.0], [5.0, -5.0]]], axis=1)
    left, right = [2, 3, 4, 8, 9, 10, 15], [5, 6, 7, 11, 12, 13, 16]
    out = animation.animate(kp17, pose17, str(tmp_path / "s17.gif"), gt3d=pose17,
                            spread=np.full((6, 17), 0.01), parents=parents, left=left, right=right)
    assert gif_frames(out)[0] == 6
    with pytest.raises(UserError, match=r"expected \(T, 17, 3\)"):
        animation.animate(kp, pose, str(tmp_path / "x.gif"), parents=parents)


def test_side_groups_cover_every_bone_once():
    groups, everything = animation._bone_groups(PARENTS, animation.LEFT, animation.RIGHT)
    per_side = sum((g >= 0).sum() // 2 for g in groups.values())
    assert per_side == (everything >= 0).sum() // 2 == NUM_JOINTS - 1


def test_animate_rings_filled_2d_points_and_adds_the_root_path(tmp_path):
    """Filled joints of a 17-point 2D (rings in the 2D panel only: they are not the 3D's joints)
    and a trajectory (a top view on the right: a wider figure); their shapes are checked."""
    kp, pose = walking_clip(12)
    kp17 = np.concatenate([kp, kp[:, :2]], axis=1)
    filled = np.zeros((12, 17), bool)
    filled[3:7, [4, 16]] = True
    root = np.stack([np.linspace(-1, 1, 12), np.zeros(12), np.linspace(3, 4, 12)], axis=1)
    out = animation.animate(kp17, pose, str(tmp_path / "f.gif"), filled=filled, trajectory=root, step=3,
                            image_size=(1280, 720), spread_label="something (mm)")
    n, size = gif_frames(out)
    plain = animation.animate(kp17, pose, str(tmp_path / "p.gif"), step=3)
    assert n == 4 and size[0] > gif_frames(plain)[1][0] + 200 and size[1] == gif_frames(plain)[1][1]
    with pytest.raises(UserError, match=r"filled has shape \(12, 15\), expected \(12, 17\)"):
        animation.animate(kp17, pose, str(tmp_path / "x.gif"), filled=filled[:, :15])
    with pytest.raises(UserError, match=r"trajectory has shape \(11, 3\), expected \(12, 3\)"):
        animation.animate(kp17, pose, str(tmp_path / "x.gif"), trajectory=root[:11])
    assert not (tmp_path / "x.gif").exists()

"""COCO-17 -> HumanEva-15: hand-computed joints, NaN and confidences, the layout registry, and
the synthetic COCO keypoints the mapping is measured on."""
import numpy as np
import pytest

from raypose.cli import main
from raypose.data import motion, npz, synthetic
from raypose.datasets import h36m
from raypose.datasets.keypoints import COCO, H36M, HUMANEVA15, LAYOUTS, coco_to_humaneva, mapping
from raypose.datasets.skeleton import flip_permutation, mirror
from raypose.errors import UserError

NAN = np.nan


def coco_frame():
    """COCO keypoint j at (10 j, 100 + j): every mapped joint is easy to work out by hand."""
    j = np.arange(17, dtype=np.float64)
    return np.stack([10 * j, 100 + j], -1)


# HumanEva joint <- COCO keypoint for the limbs
LIMBS = {2: 5, 3: 7, 4: 9, 5: 6, 6: 8, 7: 10, 8: 11, 9: 13, 10: 15, 11: 12, 12: 14, 13: 16}


def test_layouts():
    assert set(LAYOUTS) == {"coco", "humaneva15", "h36m"}
    assert COCO.num_joints == 17 and HUMANEVA15.num_joints == 15 and H36M.num_joints == 17
    assert H36M.names == h36m.SKELETON.joint_names and H36M.names[0] == "hip" and H36M.names[10] == "head"
    assert H36M.symmetry == ((4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16))
    assert COCO.symmetry == ((1, 3, 5, 7, 9, 11, 13, 15), (2, 4, 6, 8, 10, 12, 14, 16))
    assert HUMANEVA15.symmetry == ((2, 3, 4, 8, 9, 10), (5, 6, 7, 11, 12, 13))
    for lay in LAYOUTS.values():
        for left, right in zip(*lay.symmetry):   # left and right are the same joint, mirrored
            assert lay.names[left] == "l_" + lay.names[right][2:]
    assert COCO.names[0] == "nose" and COCO.names[16] == "r_ankle" and HUMANEVA15.names[14] == "head"


def test_hand_computed_frame():
    out, conf = coco_to_humaneva(coco_frame()[None])
    assert out.shape == (1, 15, 2) and conf is None
    for he, co in LIMBS.items():
        np.testing.assert_array_equal(out[0, he], [10 * co, 100 + co])
    np.testing.assert_allclose(out[0, 0], [115, 111.5])   # pelvis: hips 11 and 12
    np.testing.assert_allclose(out[0, 1], [55, 105.5])    # thorax: shoulders 5 and 6
    np.testing.assert_allclose(out[0, 14], [20, 102])     # head: mean of 0..4
    # any leading shape, dtype kept (float32 in, float32 out)
    single, _ = coco_to_humaneva(coco_frame().astype(np.float32))
    assert single.shape == (15, 2) and single.dtype == np.float32
    np.testing.assert_allclose(single, out[0])


def test_nan_propagation():
    kp = np.stack([coco_frame()] * 3)
    kp[0, 11] = NAN           # left hip: pelvis missing, left hip missing, the rest as before
    kp[0, 9, 1] = NAN         # left wrist's y: the wrist goes through as it is
    kp[1, 0] = NAN            # nose missing, and the left ear's x: the head is the mean of 1, 2, 4
    kp[1, 3, 0] = NAN
    kp[2, :5] = NAN           # no face point: no head; everything else is there
    out, _ = coco_to_humaneva(kp)
    assert np.isnan(out[0, 0]).all() and np.isnan(out[0, 8]).all()
    assert np.isnan(out[0, 4, 1]) and out[0, 4, 0] == 90
    assert np.isfinite(np.delete(out[0], [0, 4, 8], axis=0)).all()
    np.testing.assert_allclose(out[1, 14], [(10 + 20 + 40) / 3, (101 + 102 + 104) / 3])
    assert np.isfinite(out[1]).all()
    assert np.isnan(out[2, 14]).all() and np.isfinite(out[2, :14]).all()


def test_confidences():
    kp = np.stack([coco_frame()] * 3)
    c = np.array([0.3, 0.9, 0.8, 0.7, 0.6, 0.95, 0.5, 0.9, 0.9, 0.9, 0.9, 0.4, 0.85, 0.9, 0.9, 0.9, 0.9])
    conf = np.stack([c] * 3)
    kp[1, 0] = NAN            # the nose (the least sure face point) is not in the head's mean
    kp[2, :5] = NAN
    _, out = coco_to_humaneva(kp, conf)
    assert out.shape == (3, 15)
    for he, co in LIMBS.items():
        np.testing.assert_array_equal(out[:, he], c[co])
    np.testing.assert_allclose(out[:, 0], 0.4)                # min(left hip, right hip)
    np.testing.assert_allclose(out[:, 1], 0.5)                # min(shoulders)
    np.testing.assert_allclose(out[:, 14], [0.3, 0.6, 0.0])   # min of the face points used; 0: none


def test_bad_shapes():
    with pytest.raises(UserError, match="expected \\(frames, 17, 2\\)"):
        coco_to_humaneva(np.zeros((4, 15, 2)))
    with pytest.raises(UserError, match="confidences"):
        coco_to_humaneva(np.zeros((4, 17, 2)), np.zeros((4, 15)))


def test_mapping_commutes_with_mirroring():
    """Flipping COCO then mapping = mapping then flipping HumanEva: the left/right pairs agree."""
    kp = np.random.default_rng(0).normal(size=(5, 17, 2))
    coco_perm = flip_permutation(17, *COCO.symmetry)
    he_perm = flip_permutation(15, *HUMANEVA15.symmetry)
    a, _ = coco_to_humaneva(mirror(kp, coco_perm))
    b = mirror(coco_to_humaneva(kp)[0], he_perm)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_mapping_lookup():
    kp, conf = np.zeros((2, 17, 2)), np.ones((2, 17))
    same = mapping("coco", 17, 17, "coco")
    assert same(kp, conf) == (kp, conf)
    with pytest.raises(UserError, match="the run's 2D layout is unknown"):   # may be H36M-17: not assumed COCO
        mapping("coco", 17, 17)
    assert mapping(None, 15, 15)(kp) == (kp, None)
    assert mapping("humaneva15", 15, 15) is not None
    assert mapping("coco", 17, 15) is coco_to_humaneva
    assert mapping(None, 17, 15) is None          # 17 unnamed joints: not necessarily COCO
    assert mapping("h36m", 17, 15) is None
    assert mapping("humaneva15", 15, 17) is None
    with pytest.raises(UserError, match="layout_name: 'coco' has 17 joints"):
        mapping("coco", 15, 15)


def test_mapping_compares_names_where_both_are_known():
    """Equal joint counts are not enough: COCO-17 given to an H36M-17 run is not its own layout."""
    kp, conf = np.zeros((2, 17, 2)), np.ones((2, 17))
    assert mapping("coco", 17, 17, "h36m") is None
    assert mapping("h36m", 17, 17, "coco") is None
    assert mapping("mpii_like", 17, 17, "h36m") is None            # a named layout raypose does not know
    assert mapping("h36m", 17, 17, "h36m")(kp, conf) == (kp, conf)
    assert mapping(None, 17, 17, "h36m")(kp, conf) == (kp, conf)   # unnamed, the run's count: the run's own
    assert mapping("h36m", 17, 17, None)(kp, conf) == (kp, conf)   # a run that never recorded its name
    assert mapping("coco", 17, 15, "humaneva15") is coco_to_humaneva
    assert mapping("coco", 17, 15, "h36m") is None
    assert mapping("h36m", 17, 15, "humaneva15") is None
    assert mapping("humaneva15", 15, 15, "humaneva15") is not None
    assert mapping("my_rig", 20, 20, "my_rig") is not None         # same custom name, same count
    assert mapping("my_rig", 20, 21, "my_rig") is None
    with pytest.raises(UserError, match="layout_name: 'h36m' has 17 joints but the keypoints have 15"):
        mapping("h36m", 15, 15, "h36m")


# ---- the synthetic COCO keypoints ---------------------------------------------------------------

@pytest.fixture(scope="module")
def both():
    return synthetic.generate(frames=2000, seed=4), synthetic.generate(frames=2000, seed=4, layout="coco")


def test_synthetic_coco_layout(both):
    (p2, p3, meta), (c2, c3, cmeta) = both
    assert meta["layout_name"] == "humaneva15"
    assert cmeta == dict(meta, layout_name="coco", num_joints=17,
                         keypoints_symmetry=[[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]])
    for s in p3:
        for a in p3[s]:
            np.testing.assert_array_equal(c3[s][a], p3[s][a])   # the 3D stays HumanEva's
            for native, coco in zip(p2[s][a], c2[s][a]):
                assert coco.dtype == np.float32 and coco.shape == (len(native), 17, 2)
                for he, co in LIMBS.items():
                    np.testing.assert_array_equal(coco[:, co], native[:, he])
                mapped, _ = coco_to_humaneva(coco)
                # derived joints land near the native ones: a few pixels on a ~200 px person
                err = np.linalg.norm(mapped - native, axis=-1)
                assert err[:, [0, 1]].max() < 8 and err[:, 14].max() < 15, (s, a)


def test_synthetic_face_geometry(both):
    (_, p3, _), _ = both
    x = p3["Train/S1"]["Walking 1 chunk0"].astype(np.float64)
    face = motion.face_points(x)
    head = x[:, 14]
    np.testing.assert_allclose(np.linalg.norm(face - head[:, None], axis=-1),
                               np.broadcast_to(np.linalg.norm(motion.FACE_OFFSETS, axis=-1), face.shape[:2]))
    velocity = np.gradient(x[:, 0, :2], axis=0)
    ahead = ((face[:, 0, :2] - head[:, :2]) * velocity).sum(-1)
    assert (ahead > 0).mean() > 0.9                             # the nose leads the walk
    up = x[:, 14] - x[:, 1]                                     # along the neck: the face tilts with it
    height = (face * up[:, None]).sum(-1) / np.linalg.norm(up, axis=-1)[:, None]
    assert (height[:, [1, 2]] > height[:, [0]]).all()           # eyes above the nose
    assert (height[:, [3, 4]] < height[:, [1, 2]]).all()        # ears below the eyes
    left = x[:, 2] - x[:, 5]
    assert (((face[:, 3] - face[:, 4]) * left).sum(-1) > 0).all()   # the left ear on the left
    assert (((face[:, 1] - face[:, 2]) * left).sum(-1) > 0).all()


def test_synthetic_bad_layout():
    with pytest.raises(UserError, match="layout='openpose'"):
        synthetic.generate(layout="openpose")


def test_synth_cli_coco(tmp_path, capsys):
    out = tmp_path / "npz"
    assert main(["synth", "--out", str(out), "--frames", "2000", "--seed", "4", "--layout", "coco"]) == 0
    data = npz.load_humaneva(out)
    assert data.num_joints_2d == 17 and data.metadata["layout_name"] == "coco"
    assert data.symmetry == ([1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16])
    _, _, meta = synthetic.generate(frames=2000, seed=4, layout="coco")
    assert data.metadata == meta
    assert main(["synth", "--out", str(tmp_path / "x"), "--layout", "openpose"]) == 2
    assert "invalid choice" in capsys.readouterr().err

"""Metrics against known answers and a plain per-frame reference implementation."""
import numpy as np
import pytest

from raypose.evaluation.metrics import METRICS, mpjpe, mpjve, n_mpjpe, p_mpjpe, per_joint_error, procrustes_align


def _rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _poses(rng, t=20, j=15):
    return rng.normal(scale=0.3, size=(t, j, 3))


def _loop_p_mpjpe(pred, gt):
    """Textbook per-frame Umeyama, written independently of the vectorised version."""
    errs = []
    for p, g in zip(pred, gt):
        pc, gc = p - p.mean(0), g - g.mean(0)
        u, s, vt = np.linalg.svd(pc.T @ gc)
        d = np.sign(np.linalg.det(u @ vt))
        dm = np.diag([1.0, 1.0, d])
        r = u @ dm @ vt                       # p @ r best matches g
        scale = np.trace(np.diag(s) @ dm) / (pc ** 2).sum()
        aligned = scale * pc @ r + g.mean(0)
        errs.append(np.linalg.norm(aligned - g, axis=-1))
    return float(np.mean(errs))


def test_constant_offset_is_exactly_10mm():
    gt = _poses(np.random.default_rng(0))
    pred = gt + np.array([0.006, 0.008, 0.0])
    assert mpjpe(pred, gt) == pytest.approx(0.010, rel=1e-9)
    assert per_joint_error(pred, gt).shape == gt.shape[:-1]
    assert mpjpe(pred.astype(np.float32), gt) == pytest.approx(0.010, rel=1e-6)


def test_similarity_copy_aligns_to_zero_but_mirror_does_not():
    rng = np.random.default_rng(1)
    gt = _poses(rng)
    pred = 1.3 * gt @ _rotation(rng).T + np.array([0.5, -0.2, 3.0])
    assert mpjpe(pred, gt) > 0.1
    assert p_mpjpe(pred, gt) < 1e-6
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-9)
    mirrored = gt * np.array([-1.0, 1.0, 1.0])          # a reflection: det = -1
    assert p_mpjpe(mirrored, gt) > 0.05                  # random pose: far from symmetric
    # a mirrored pose rotated and scaled is still not reachable by a proper rotation
    assert p_mpjpe(1.3 * mirrored @ _rotation(rng).T, gt) == pytest.approx(p_mpjpe(mirrored, gt))


def test_n_mpjpe_undoes_scale_and_p_mpjpe_bounded_by_mpjpe():
    rng = np.random.default_rng(2)
    gt = _poses(rng)
    assert n_mpjpe(0.7 * gt, gt) < 1e-12
    assert mpjpe(0.7 * gt, gt) > 0.05
    for _ in range(5):
        pred, gt = _poses(rng), _poses(rng)
        assert p_mpjpe(pred, gt) <= mpjpe(pred, gt)
        assert n_mpjpe(pred, gt) <= mpjpe(pred, gt) + 1e-12   # scale 1 is a candidate


def test_p_mpjpe_matches_per_frame_loop():
    rng = np.random.default_rng(3)
    gt = _poses(rng, t=50)
    pred = gt @ _rotation(rng).T * 0.9 + rng.normal(scale=0.05, size=gt.shape)
    pred[::7] = pred[::7] * np.array([1.0, -1.0, 1.0])       # some frames need the reflection fix
    assert p_mpjpe(pred, gt) == pytest.approx(_loop_p_mpjpe(pred, gt), rel=1e-9, abs=1e-12)
    # leading batch dims are per-frame too
    b = procrustes_align(pred.reshape(5, 10, 15, 3), gt.reshape(5, 10, 15, 3))
    np.testing.assert_allclose(b.reshape(pred.shape), procrustes_align(pred, gt), atol=1e-12)


def test_mpjve():
    rng = np.random.default_rng(4)
    gt = _poses(rng, t=30)
    assert mpjve(gt + 0.05, gt) == pytest.approx(0.0, abs=1e-12)
    drift = np.arange(30)[:, None, None] * np.array([0.003, 0.004, 0.0])  # 5 mm per frame
    assert mpjve(gt + drift, gt) == pytest.approx(0.005, rel=1e-9)
    assert np.isnan(mpjve(gt[:1], gt[:1]))


def test_zero_predictions_are_finite():
    gt = _poses(np.random.default_rng(5))
    zero = np.zeros_like(gt)
    for f in (mpjpe, p_mpjpe, n_mpjpe, mpjve):
        assert np.isfinite(f(zero, gt)), f.__name__
    assert np.all(np.isfinite(procrustes_align(zero, gt)))
    assert np.isfinite(p_mpjpe(gt, zero)) and np.isfinite(p_mpjpe(zero, zero))
    with pytest.raises(ValueError):
        mpjpe(gt[:, :14], gt)


def test_metrics_names_its_protocols_and_needs_neither_pandas_nor_torch():
    import subprocess
    import sys

    import raypose.evaluation.metrics as M
    assert all(callable(getattr(M, m)) for m in METRICS)
    code = ("import sys, raypose.evaluation.metrics; "
            "assert not {'pandas', 'torch'} & set(sys.modules), sorted({'pandas', 'torch'} & set(sys.modules))")
    subprocess.run([sys.executable, "-c", code], check=True)

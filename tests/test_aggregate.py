"""Aggregates and the calibration of the members' spread, on cases with known answers."""
import numpy as np
import pytest

from raypose.ensemble.aggregate import AGGREGATES, aggregate, frame_spread, geometric_median, spread
from raypose.errors import UserError
from raypose.evaluation.calibration import calibration_report, sparsification, spearman, spearman_per_joint
from raypose.evaluation.metrics import p_mpjpe


def members(k=5, n=400, shared=0.02, own=0.015, seed=0):
    """Members that share part of their error (as trained members do) plus their own noise."""
    rng = np.random.default_rng(seed)
    gt = (rng.normal(size=(n, 15, 3)) * 0.3).astype(np.float32)
    gt[:, 0] = 0
    preds = gt + rng.normal(size=gt.shape) * shared + rng.normal(size=(k, n, 15, 3)) * own
    preds[..., 0, :] = 0
    return gt, preds.astype(np.float32)


def test_agreeing_members_give_their_pose():
    _, preds = members()
    same = np.repeat(preds[:1], 5, axis=0)
    for m in AGGREGATES:
        np.testing.assert_allclose(aggregate(same, m), preds[0], atol=1e-5, err_msg=m)
        assert np.all(aggregate(preds, m)[:, 0] == 0)
        assert aggregate(preds, m).shape == preds.shape[1:]


def test_mean_median_trimmed_by_hand():
    p = np.zeros((5, 1, 2, 3), np.float32)
    p[:, 0, 1, 0] = [0.0, 0.1, 0.2, 0.3, 5.0]          # one wild member on joint 1
    assert aggregate(p, "mean")[0, 1, 0] == pytest.approx(1.12)
    assert aggregate(p, "median")[0, 1, 0] == pytest.approx(0.2)
    assert aggregate(p, "trimmed")[0, 1, 0] == pytest.approx(0.15)   # drops the 5.0
    assert aggregate(p[:4], "median")[0, 1, 0] == pytest.approx(0.15)
    with pytest.raises(UserError, match="mode"):
        aggregate(p, "mode")


def test_geometric_median_minimises_summed_distance():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(7, 1, 1, 3))
    z = geometric_median(pts, iterations=500, tol=1e-12)[0, 0]
    cost = lambda c: np.linalg.norm(pts[:, 0, 0] - c, axis=-1).sum()
    assert cost(z) <= cost(np.median(pts[:, 0, 0], axis=0)) and cost(z) <= cost(pts[:, 0, 0].mean(0))
    for _ in range(200):                                # no nearby point does better
        assert cost(z) <= cost(z + rng.normal(size=3) * 1e-3) + 1e-12


def test_one_corrupted_member_of_five():
    gt, preds = members(n=2000)
    clean = p_mpjpe(aggregate(preds, "mean"), gt)
    bad = preds.copy()
    bad[0] = np.random.default_rng(9).normal(size=bad[0].shape)      # random weights: metres off
    bad[0][:, 0] = 0
    assert p_mpjpe(aggregate(bad, "mean"), gt) > 1.5 * clean
    for m in ("median", "trimmed", "geomedian", "weighted"):
        assert p_mpjpe(aggregate(bad, m), gt) <= 1.10 * clean, m


def test_spread_values():
    p = np.zeros((2, 1, 15, 3), np.float32)
    p[0, 0, 3] = [0.01, 0, 0]
    p[1, 0, 3] = [-0.01, 0, 0]
    s = spread(p)
    assert s[0, 3] == pytest.approx(0.01) and s[0, 0] == 0 and s[0, 5] == 0
    assert frame_spread(s)[0] == pytest.approx(0.01 / 14)
    assert np.all(spread(p[:1]) == 0)


def test_spearman_known_cases():
    x = np.arange(10.0)
    assert spearman(x, x ** 3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)    # ties share ranks
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(0.9486833, abs=1e-6)
    assert np.isnan(spearman(np.ones(5), x[:5]))


def test_sparsification_oracle_and_random():
    rng = np.random.default_rng(0)
    err = rng.gamma(2.0, 10.0, 1000)
    perfect = sparsification(err, err)
    assert perfect["ause"] == pytest.approx(0, abs=1e-9)
    np.testing.assert_allclose(perfect["curve"], perfect["oracle"])
    assert perfect["curve"][0] == pytest.approx(err.mean())
    rand = sparsification(rng.random(1000), err)
    assert rand["ause"] > 1.0
    assert np.all(np.diff(perfect["oracle"]) <= 1e-9)                    # removing the worst helps


def test_calibration_report_on_correlated_spread():
    rng = np.random.default_rng(1)
    err = rng.gamma(2.0, 0.01, (500, 15))
    err[:, 0] = 0
    spr = err * rng.uniform(0.5, 1.5, err.shape)
    rep = calibration_report(spr, err)
    assert rep["spearman_per_joint"][0] is None
    assert all(r > 0.5 for r in rep["spearman_per_joint"][1:])
    assert rep["spearman"] > 0.5 and rep["spearman_frame"] > 0.5
    assert 0 <= rep["ause"] < sparsification(rng.random(500), err[:, 1:].mean(1))["ause_normalised"]
    np.testing.assert_allclose(spearman_per_joint(spr, err)[1:], rep["spearman_per_joint"][1:])

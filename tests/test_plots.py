"""raypose.viz.plots: every figure is a readable PNG."""
import os

import matplotlib.image
import numpy as np

from raypose.datasets.skeleton import NUM_JOINTS
from raypose.viz import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_w=300, min_h=200):
    assert os.path.isfile(path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_h and img.shape[1] >= min_w
    assert img[..., :3].std() > 0.01                      # not a blank canvas
    return img


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
    from raypose.evaluation.calibration import sparsification as sp
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

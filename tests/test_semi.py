"""Semi-supervised ensembles: no 3D leaks from unlabelled chunks, gating by spread, resumable pseudo-labels."""
import shutil

import numpy as np
import pytest
from runs import tiny_config

from raypose import config as C
from raypose.cli import main
from raypose.data import npz, splits
from raypose.run import Run
from raypose.train.driver import train
from raypose.train.semi import select


def semi_config(out, data, **kw):
    return tiny_config(out, **{"data.path": str(data), "semi.mode": "gated", "semi.labelled_fraction": 0.5,
                               "semi.warmup": 1, "train.iterations": 2, "run.local": True,
                               "run.cpus_per_member": 1, **kw})


def unlabelled_chunks(data_dir, cfg):
    d = npz.load_humaneva(data_dir)
    keys = [(s, a) for s in d.positions_2d for a in d.positions_2d[s]]
    train_keys, _ = splits.select(keys, cfg.data.split, cfg.data.actions)
    return splits.labelled_split(train_keys, cfg.semi.labelled_fraction, cfg.train.seed)[1]


def test_unlabelled_3d_never_reaches_training(synth_copy, tmp_path):
    cfg = semi_config(tmp_path / "a", synth_copy)
    first = train(cfg, echo=lambda s: None)
    assert first["semi"]["pseudo"] > 0, "gating selected nothing: the test would prove little"
    hidden = unlabelled_chunks(synth_copy, cfg)
    assert hidden
    # another data set: the unlabelled chunks' 3D replaced by nonsense, everything else equal
    other = tmp_path / "other"
    shutil.copytree(synth_copy, other)
    content = npz.read_npz(other / "data_3d_humaneva15.npz")
    rng = np.random.default_rng(1)
    for s, a in hidden:
        content["positions_3d"][s][a] = rng.normal(size=content["positions_3d"][s][a].shape).astype(np.float32)
    npz.save_npz(other / "data_3d_humaneva15.npz", **content)
    second = train(semi_config(tmp_path / "b", other), echo=lambda s: None)
    a, b = Run(tmp_path / "a"), Run(tmp_path / "b")
    for i in (1, 2):
        assert a.record(i)["files"] == b.record(i)["files"]     # bit-for-bit the same training
    assert "pseudo_iter2.npz" in second["files"]


def test_gating_selects_by_spread():
    rng = np.random.default_rng(0)
    n, k = 200, 5
    truth = rng.normal(size=(n, 15, 3)).astype(np.float32)
    truth[:, 0] = 0
    noise = np.where(np.arange(n) % 2 == 0, 0.005, 0.08)[None, :, None, None]   # even: members agree
    preds = truth + rng.normal(size=(k, n, 15, 3)) * noise
    preds[..., 0, :] = 0
    labelled = np.zeros(n, bool)
    labelled[::4] = True            # labelled windows are all low-spread ones
    cfg = C.SemiConfig(mode="gated", warmup=0, threshold_scale=1.5)
    idx, pose, w, info = select(cfg, 1, preds, labelled, seed=0)
    assert len(idx) > 0 and not labelled[idx].any()
    assert np.all(idx % 2 == 0)                                   # only the confident windows
    assert len(idx) >= 0.8 * np.sum((np.arange(n) % 2 == 0) & ~labelled)
    np.testing.assert_allclose(pose, preds[:, idx].mean(0), atol=1e-6)
    assert np.all((w > 0) & (w <= 1)) and info["pseudo"] == len(idx) and info["threshold_mm"] > 0
    sched = C.SemiConfig(mode="schedule", warmup=2, per_iteration=10)
    assert len(select(sched, 1, preds, labelled, 0)[0]) == 0      # still warming up
    assert len(select(sched, 2, preds, labelled, 0)[0]) == 10
    assert len(select(sched, 4, preds, labelled, 0)[0]) == 30     # (j + 1) * K
    assert len(select(C.SemiConfig(mode="off"), 5, preds, labelled, 0)[0]) == 0


def test_resume_reproduces_pseudo_labels(synth_dir, tmp_path):
    cfg = semi_config(tmp_path / "s", synth_dir, **{"semi.mode": "schedule", "semi.per_iteration": 200})
    straight = train(cfg, echo=lambda s: None)
    # the same run crashed in iteration 2 (an injected fault): some of its member files were
    # written, its record never was
    crash = C.with_values(cfg, {"run.out": str(tmp_path / "r"), "debug.fail_member_at": "0:2"})
    with pytest.raises(RuntimeError, match="injected crash"):
        train(crash, echo=lambda s: None)
    assert Run(tmp_path / "r").iterations() == [1]
    for name in straight["files"]:
        if "iter2" in name and name.endswith(".ckpt"):
            shutil.copy(tmp_path / "s" / "checkpoints" / name, tmp_path / "r" / "checkpoints" / name)
    resumed = train(C.with_values(cfg, {"run.out": str(tmp_path / "r")}), echo=lambda s: None)
    assert resumed["files"] == straight["files"]          # members and pseudo-labels, bit for bit
    run = Run(tmp_path / "r")
    assert run.load_npz("checkpoints/pseudo_iter1.npz", 1)["index"].size == 200   # (j + 1) * K
    assert run.record(2)["semi"]["pseudo"] == 400


@pytest.mark.parametrize("argv,needle", [
    (["--semi", "gated", "--labelled-fraction", "-0.1"], "labelled_fraction"),
    (["--semi", "gated", "--labelled-fraction", "1.5"], "labelled_fraction"),
    (["--semi", "sometimes"], "semi.mode"),
])
def test_bad_semi_values(argv, needle, tmp_path, capsys):
    code = main(["train", "--local", "--data", "synthetic", "--out", str(tmp_path / "x")] + argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "x").exists()

"""What a trained run gives users: predictions, evaluation tables and pictures."""
import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
from runs import tiny_config

from raypose.cli import main
from raypose.data.npz import load_2d, read_npz, save_2d
from raypose.data.synthetic import FOCAL_PX
from raypose.data.windows import make_windows
from raypose.datasets.cameras import normalize_screen
from raypose.ensemble.ensemble import Ensemble
from raypose.model.geometry import _translation
from raypose.run import Run
from raypose.train.driver import train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-member run, trained in this process (local mode, no Ray) for 2 iterations."""
    out = tmp_path_factory.mktemp("outputs") / "run"
    train(tiny_config(out, **{"train.members": 3, "train.epochs": 2, "run.local": True,
                              "model.channels": 32}), echo=lambda s: None)
    return out


def test_predict_writes_the_contract(run_dir, synth_dir, tmp_path, capsys):
    out = tmp_path / "pred.npz"
    assert main(["predict", "--run", str(run_dir), "--input", str(synth_dir / "data_2d_humaneva15_gt.npz"),
                 "--out", str(out), "--aggregate", "mean"]) == 0
    d = read_npz(out)
    pos2d, _ = load_2d(synth_dir / "data_2d_humaneva15_gt.npz")
    assert set(d["positions_3d"]) == set(pos2d) == set(d["uncertainty"])
    meta = d["metadata"]
    assert meta["ensemble_size"] == 3 and meta["iteration"] == 2 and meta["aggregation"] == "mean"
    seq = d["positions_3d"]["Train/S2"]["Jog 1 chunk0"]
    unc = d["uncertainty"]["Train/S2"]["Jog 1 chunk0"]
    kp = pos2d["Train/S2"]["Jog 1 chunk0"]
    assert len(seq) == 3 and seq[1].shape == (len(kp[1]), 15, 3) and seq[1].dtype == np.float32
    assert unc[1].shape == (len(kp[1]), 15) and unc[1].dtype == np.float32
    assert np.all(seq[1][:, 0] == 0) and np.all(unc[1][:, 0] == 0)
    kp2 = d["keypoints_2d"]["Train/S2"]["Jog 1 chunk0"][1]   # the 2D the members saw, in the input's pixels
    assert kp2.dtype == np.float32 and np.allclose(kp2, kp[1], atol=1e-3)
    # the same numbers by hand: members over the windows, mean, RMS distance from the mean
    ensemble = Ensemble.load(Run.open(run_dir))
    assert (ensemble.layout.left_2d, ensemble.layout.right_2d) == ((2, 3, 4, 8, 9, 10), (5, 6, 7, 11, 12, 13))
    w = make_windows([(("s", "a", "C2"), normalize_screen(kp[1]), None)], 27)
    preds = ensemble.predict(w, True)
    np.testing.assert_allclose(seq[1], preds.mean(0), atol=1e-6)
    rms = np.sqrt(((preds - preds.mean(0)) ** 2).sum(-1).mean(0))
    np.testing.assert_allclose(unc[1], rms, atol=1e-6)
    assert unc[1][:, 1:].min() > 0                       # three different members do disagree
    # the default aggregate, an earlier iteration
    assert main(["predict", "--run", str(run_dir), "--input", str(synth_dir / "data_2d_humaneva15_gt.npz"),
                 "--out", str(tmp_path / "p1.npz"), "--iteration", "1"]) == 0
    meta1 = read_npz(tmp_path / "p1.npz")["metadata"]
    assert meta1["iteration"] == 1 and meta1["aggregation"] == "weighted"   # evaluate's default too
    assert meta1["layout"]["joints_2d"] == 15 and meta1["layout"]["skeleton"]["name"] == "humaneva15"


def test_predict_writes_the_root_trajectory(run_dir, synth_dir, tmp_path):
    """With the run's fitted focal lengths (its own cameras), `trajectory` is the root in camera
    coordinates: near the synthetic people's true one even for these tiny members."""
    from raypose.datasets.cameras import world_to_camera
    inp = str(synth_dir / "data_2d_humaneva15_gt.npz")
    assert main(["predict", "--run", str(run_dir), "--input", inp, "--out", str(tmp_path / "p.npz")]) == 0
    d = read_npz(tmp_path / "p.npz")
    assert d["metadata"]["trajectory"]["written"] and "cameras.json" in d["metadata"]["trajectory"]["focal_from"]
    world = read_npz(synth_dir / "data_3d_humaneva15.npz")["positions_3d"]["Validate/S2"]["Jog 1 chunk0"]
    rel = []
    for c, root in enumerate(d["trajectory"]["Validate/S2"]["Jog 1 chunk0"]):
        gt = world_to_camera(world[:, 0], "Validate/S2", c)
        assert root.shape == (len(gt), 3) and root.dtype == np.float32 and np.all(root[:, 2] > 1)
        rel.append(np.linalg.norm(root - gt, axis=-1) / np.linalg.norm(gt, axis=-1))
    assert np.mean(np.concatenate(rel)) < 0.35
    # another camera (COCO-mapped detections): no focal length is known unless given
    pos2d = load_2d(inp)[0]["Validate/S2"]["Jog 1 chunk0"][0]
    save_2d(tmp_path / "cam.npz", {"U": {"a": [pos2d]}}, {"layout_name": "humaneva15"})
    assert main(["predict", "--run", str(run_dir), "--input", str(tmp_path / "cam.npz"), "--out",
                 str(tmp_path / "n.npz"), "--image-size", "640", "480"]) == 0
    n = read_npz(tmp_path / "n.npz")
    assert "trajectory" not in n and "--focal" in n["metadata"]["trajectory"]["why"]
    assert main(["predict", "--run", str(run_dir), "--input", str(tmp_path / "cam.npz"), "--out",
                 str(tmp_path / "f.npz"), "--focal", "1.5625"]) == 0
    f = read_npz(tmp_path / "f.npz")
    assert f["metadata"]["trajectory"]["focal_from"] == "--focal"
    assert f["trajectory"]["U"]["a"][0].shape == (len(pos2d), 3)


def test_predict_writes_calibrated_radii(run_dir, synth_dir, tmp_path, capsys):
    """radius (T, J, Q) in metres for metadata["quantiles"]: 0 at the root, growing with q, from the
    run's own calibration at that iteration; other quantiles on request; one line for bad ones."""
    inp = str(synth_dir / "data_2d_humaneva15_gt.npz")
    assert main(["predict", "--run", str(run_dir), "--input", inp, "--out", str(tmp_path / "p.npz")]) == 0
    d = read_npz(tmp_path / "p.npz")
    meta = d["metadata"]
    assert meta["quantiles"] == [0.5, 0.9, 0.95]
    cal = meta["uncertainty_calibration"]
    assert cal["trusted"] is True and cal["why"] == [] and cal["joint_frames"] > 100
    assert cal["variants"][0] == "clean" and "detector-like" in cal["variants"]
    assert cal["variants"][-1].startswith("gaps")   # filled-in 2D calibrated: its radii trusted
    r = d["radius"]["Validate/S1"]["Walking 1 chunk0"][0]
    t = len(d["positions_3d"]["Validate/S1"]["Walking 1 chunk0"][0])
    assert r.shape == (t, 15, 3) and r.dtype == np.float32
    assert np.all(r[:, 0] == 0) and np.all(r[:, 1:, 0] > 0) and np.all(np.diff(r[:, 1:], axis=-1) > 0)
    # the same radii by hand from the run's record at this iteration
    run = Run.open(run_dir)
    ens = Ensemble.load(run)
    kp = load_2d(inp)[0]["Validate/S1"]["Walking 1 chunk0"][0]
    w = make_windows([(("s", "a", "C1"), normalize_screen(kp), None)], 27)
    _, _, _, views = ens.estimate(w)   # the spread of every member's input and mirrored view
    np.testing.assert_allclose(r, ens.calibration.radius(w, views, (0.5, 0.9, 0.95)), rtol=1e-5)
    assert run.record(2)["calibration"]["score_quantiles"] != run.record(1)["calibration"]["score_quantiles"]
    assert main(["predict", "--run", str(run_dir), "--input", inp, "--out", str(tmp_path / "q.npz"),
                 "--quantiles", "0.05,0.5,0.99"]) == 0
    q = read_npz(tmp_path / "q.npz")
    assert q["metadata"]["quantiles"] == [0.05, 0.5, 0.99]
    np.testing.assert_allclose(q["radius"]["Validate/S1"]["Walking 1 chunk0"][0][..., 1], r[..., 0], rtol=1e-6)
    for bad in ("0.5,1", "x", "", "0"):
        code = main(["predict", "--run", str(run_dir), "--input", inp, "--out", str(tmp_path / "o.npz"),
                     "--quantiles", bad])
        err = capsys.readouterr().err
        assert code == 2 and "--quantiles" in err and err.count("\n") == 1 and not (tmp_path / "o.npz").exists()
    # radii around another aggregate, or after the 2D fit, are flagged
    assert main(["predict", "--run", str(run_dir), "--input", inp, "--out", str(tmp_path / "m.npz"),
                 "--aggregate", "median", "--fit-2d"]) == 0
    why = read_npz(tmp_path / "m.npz")["metadata"]["uncertainty_calibration"]
    assert why["trusted"] is False and "median" in why["why"][0] and "--fit-2d" in why["why"][1]
    # a track far rougher than anything calibrated on is named; the clean one beside it is not
    pos2d, meta2d = load_2d(inp)
    clean = pos2d["Validate/S1"]["Walking 1 chunk0"][0]
    rough = clean + np.random.default_rng(0).normal(0, 60, clean.shape).astype(np.float32)
    save_2d(tmp_path / "rough.npz", {"U/S1": {"clean": [clean]}, "U/S2": {"rough": [rough]}}, meta2d)
    assert main(["predict", "--run", str(run_dir), "--input", str(tmp_path / "rough.npz"),
                 "--out", str(tmp_path / "r.npz")]) == 0
    why = read_npz(tmp_path / "r.npz")["metadata"]["uncertainty_calibration"]
    assert why["trusted"] is False and "U/S2/rough camera C1" in why["why"][-1] and "U/S1" not in why["why"][-1]


def test_predict_fit_2d_puts_joints_on_the_input_rays(run_dir, synth_dir, tmp_path):
    src = synth_dir / "data_2d_humaneva15_gt.npz"
    raw, fitted, fixed = (tmp_path / f"{n}.npz" for n in ("raw", "fit", "fixed"))
    assert main(["predict", "--run", str(run_dir), "--input", str(src), "--out", str(raw)]) == 0
    assert main(["predict", "--run", str(run_dir), "--input", str(src), "--out", str(fitted), "--fit-2d"]) == 0
    assert main(["predict", "--run", str(run_dir), "--input", str(src), "--out", str(fixed), "--fit-2d",
                 "--focal", "3.0"]) == 0
    pos2d, _ = load_2d(src)
    kp = normalize_screen(pos2d["Train/S2"]["Jog 1 chunk0"][2])
    r, f, x = (read_npz(p) for p in (raw, fitted, fixed))
    focals = json.loads((run_dir / "cameras.json").read_text())["focal"]
    assert f["metadata"]["fit_2d_focal"] == [focals[c] for c in ("C1", "C2", "C3")]
    assert x["metadata"]["fit_2d_focal"] == [3.0] * 3 and r["metadata"]["fit_2d_focal"] is None

    def residual(pose, focal):   # mean distance of the reprojected joints from the input 2D
        return _translation(pose, kp, np.full((len(pose), 1, 1), focal))[1].mean()
    p_raw, p_fit = (d["positions_3d"]["Train/S2"]["Jog 1 chunk0"][2] for d in (r, f))
    assert residual(p_fit, focals["C3"]) < 1e-4 < 0.1 * residual(p_raw, focals["C3"])
    np.testing.assert_allclose(p_fit[..., 2], p_raw[..., 2], atol=1e-5)   # depth is the members'
    np.testing.assert_array_equal(f["uncertainty"]["Train/S2"]["Jog 1 chunk0"][2],
                                  r["uncertainty"]["Train/S2"]["Jog 1 chunk0"][2])


def test_predict_keeps_a_track_without_frames(run_dir, synth_dir, tmp_path):
    pos2d, meta = load_2d(synth_dir / "data_2d_humaneva15_gt.npz")
    cams = pos2d["Train/S1"]["Box 1 chunk0"]
    save_2d(tmp_path / "gap.npz", {"X/S1": {"A 1": [cams[0], cams[1][:0], cams[2]]}}, meta)
    assert main(["predict", "--run", str(run_dir), "--input", str(tmp_path / "gap.npz"),
                 "--out", str(tmp_path / "p.npz"), "--fit-2d"]) == 0
    seq = read_npz(tmp_path / "p.npz")["positions_3d"]["X/S1"]["A 1"]
    assert [len(p) for p in seq] == [len(cams[0]), 0, len(cams[2])]
    full = tmp_path / "full.npz"   # the other tracks come out as without the gap
    save_2d(tmp_path / "all.npz", {"X/S1": {"A 1": list(cams)}}, meta)
    assert main(["predict", "--run", str(run_dir), "--input", str(tmp_path / "all.npz"), "--out", str(full),
                 "--fit-2d"]) == 0
    ref = read_npz(full)["positions_3d"]["X/S1"]["A 1"]
    np.testing.assert_allclose(seq[2], ref[2], atol=1e-6)
    np.testing.assert_allclose(seq[0], ref[0], atol=1e-6)


def test_predict_bad_input(run_dir, synth_dir, tmp_path, capsys):
    pos2d, meta = load_2d(synth_dir / "data_2d_humaneva15_gt.npz")
    bad = {"X/S1": {"A 1": [c[:, :12] for c in pos2d["Train/S1"]["Box 1 chunk0"]]}}
    save_2d(tmp_path / "bad.npz", bad, meta)
    cases = [
        (["--input", str(tmp_path / "bad.npz")], "12 joints"),
        (["--input", str(tmp_path / "none.npz")], "not found"),
        (["--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--iteration", "7"], "--iteration 7"),
        (["--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--aggregate", "mode"], "mode"),
        (["--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--fit-2d", "--focal", "0"], "--focal 0"),
        (["--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--fit-2d", "--focal", "inf"], "--focal inf"),
        (["--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--focal", "-1"], "--focal -1"),
    ]
    for extra, needle in cases:
        code = main(["predict", "--run", str(run_dir), "--out", str(tmp_path / "o.npz")] + extra)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and needle in err, (extra, err)
        assert not (tmp_path / "o.npz").exists()
    code = main(["predict", "--run", str(tmp_path), "--input", "x", "--out", str(tmp_path / "o.npz")])
    assert code == 2 and "config.toml" in capsys.readouterr().err
    bare = tmp_path / "bare"                 # a run without focal lengths: --fit-2d needs --focal
    shutil.copytree(run_dir, bare)
    (bare / "cameras.json").unlink()
    code = main(["predict", "--run", str(bare), "--input", str(synth_dir / "data_2d_humaneva15_gt.npz"),
                 "--out", str(tmp_path / "o.npz"), "--fit-2d"])
    err = capsys.readouterr().err
    assert code == 2 and "cameras.json: not found" in err and "--focal" in err and err.count("\n") == 1
    assert not (tmp_path / "o.npz").exists()


def test_evaluate_tables_and_studies(run_dir, capsys):
    assert main(["evaluate", "--run", str(run_dir), "--aggregate", "weighted"]) == 0
    out = capsys.readouterr().out
    assert "| p_mpjpe |" in out and "Validate/S1" in out and "member 2:" in out
    assert "gain over the mean member" in out and "spread x" in out
    ev = json.loads((run_dir / "metrics.json").read_text())["evaluation"]
    assert ev["aggregate"] == "weighted" and ev["members"] == 3
    assert {r["action"] for r in ev["table"]} <= {"Walking", "Jog", "Box"}
    assert set(ev["aggregates"]) == {"mean", "median", "trimmed", "geomedian", "weighted"}
    sizes = ev["ensemble_size"]["mean"]
    assert sizes["sizes"] == [1, 2, 3] and sizes["p_mpjpe_std"][-1] == 0   # one subset of all 3
    # the full ensemble's row equals the aggregate over all frames
    assert sizes["p_mpjpe_mean"][-1] == pytest.approx(ev["aggregates"]["mean"]["p_mpjpe"])
    assert len(ev["per_joint"]["spread_mm"]) == 15 and ev["per_joint"]["spread_mm"][0] == 0
    assert ev["calibration"]["spearman_per_joint"][0] is None
    assert ev["iterations"]["iteration"] == [1, 2]
    assert ev["noise"]["noisy_spread_mm"] > 0
    # the run fitted the synthetic cameras' focal length (500 px of 640) on its training windows
    fit = ev["fit_2d"]
    assert set(fit["focal"]) == {"C1", "C2", "C3", "*"} and "fitted to the input 2D" in out
    for f in fit["focal"].values():
        assert f == pytest.approx(2 * FOCAL_PX / 640, rel=0.03)
    # the synthetic 2D is exact, so the tiny members' x, y errors come off; 2D noise moves the
    # fitted joints with it (all frames on both sides)
    assert fit["summary"]["p_mpjpe"] < 0.9 * ev["summary"]["p_mpjpe"], (fit["summary"], ev["summary"])
    assert fit["all_frames"]["p_mpjpe"] < 0.9 * ev["aggregates"]["weighted"]["p_mpjpe"]
    assert ev["noise"]["fit_2d_error_mm"]["p_mpjpe"] > fit["all_frames"]["p_mpjpe"]
    assert "# Evaluation" in (run_dir / "evaluation.md").read_text()
    assert "curve" in json.loads((run_dir / "metrics.json").read_text())   # training's part kept
    # the radii, clean and under every corruption, and the raw spread read as a Gaussian
    u = ev["uncertainty"]
    assert u["calibrated"] and set(u["conditions"]) == {"clean", "gaussian 2px", "gaussian 6px", "gaussian 10px",
                                                        "detector-like", "gaps 10%"}
    for c in [*u["conditions"].values(), u["spread_as_gaussian"]]:
        assert len(c["coverage"]) == len(c["levels"]) == 19 + 3 and 0 <= c["qce"] <= 1
        assert set(c["coverage_at"]) == {"0.5", "0.9", "0.95"} and np.all(np.diff(c["coverage"][:19]) >= 0)
    clean, noisy = u["conditions"]["clean"], u["conditions"]["gaussian 10px"]
    assert set(clean["per_subject"]) == {"Validate/S1", "Validate/S2", "Validate/S3"} and np.isfinite(clean["nll"])
    assert list(u["order"]) == ["clean", "gaussian 2px", "gaussian 6px", "gaussian 10px", "detector-like", "gaps 10%"]
    gaps = u["conditions"]["gaps 10%"]                                    # filled-in joints scored apart
    assert 0.05 < gaps["filled"]["joint_frames"] / gaps["observed"]["joint_frames"] < 0.15
    assert "filled" not in clean and "filled joints: coverage 0.5" in out
    assert noisy["spearman"] > 0 and noisy["mean_radius_mm"]["0.95"] > noisy["mean_radius_mm"]["0.5"] > 0
    assert "radii, clean: coverage 0.5" in out and "radii, detector-like" in out


def test_plots_and_animation(run_dir, tmp_path, capsys):
    assert main(["plot", "--run", str(run_dir)]) == 0
    names = sorted(os.listdir(run_dir / "plots"))
    assert names == ["ensemble_size.png", "heatmap_p_mpjpe.png", "iterations.png", "per_joint.png",
                     "reliability.png", "sparsification.png"]
    for name in names:
        assert (run_dir / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    gif = tmp_path / "walk.gif"
    assert main(["plot", "--run", str(run_dir), "--animate", "Validate/S2/Walking", "--camera", "C3",
                 "--out", str(gif)]) == 0
    from PIL import Image
    frames = Image.open(gif).n_frames
    assert frames > 10
    again = ["plot", "--run", str(run_dir), "--animate", "Validate/S2/Walking", "--camera", "C3", "--out", str(gif)]
    assert main(again) == 2 and "file exists" in capsys.readouterr().err   # predict's rule for --out
    assert main(again + ["--overwrite"]) == 0
    code = main(["plot", "--run", str(run_dir), "--animate", "Validate/S9/Walking", "--out", str(tmp_path / "s9.gif")])
    assert code == 2 and "no such subject/action" in capsys.readouterr().err


def test_predict_flips_with_the_runs_own_2d_layout(synth_copy, tmp_path):
    """Bug: predict took left/right from the input file and fell back to HumanEva's lists, so a
    run trained on 17 COCO keypoints mirrored wrongly for input without metadata."""
    from raypose.data import npz
    from raypose.datasets.skeleton import COCO_LEFT, COCO_RIGHT
    pos2d, meta = npz.load_2d(synth_copy / "data_2d_humaneva15_gt.npz")
    for actions in pos2d.values():
        for a, cams in actions.items():
            actions[a] = [np.concatenate([kp, kp[:, :2]], axis=1) for kp in cams]
    npz.save_2d(synth_copy / "data_2d_humaneva15_coco.npz", pos2d,
                dict(meta, num_joints=17, keypoints_symmetry=[COCO_LEFT, COCO_RIGHT], layout_name="coco"))
    out = tmp_path / "coco"
    train(tiny_config(out, **{"data.path": str(synth_copy), "data.keypoints": "coco", "train.iterations": 1,
                              "run.local": True, "train.members": 2}), echo=lambda s: None)
    layout = json.loads((out / "layout.json").read_text())
    assert layout["joints_2d"] == 17 and layout["left_2d"] == COCO_LEFT
    track = pos2d["Train/S1"]["Walking 1 chunk0"][0]
    npz.save_npz(tmp_path / "bare.npz", positions_2d={"S": {"A": [track]}})   # no metadata at all
    assert main(["predict", "--run", str(out), "--input", str(tmp_path / "bare.npz"),
                 "--out", str(tmp_path / "p.npz"), "--aggregate", "mean"]) == 0
    got = read_npz(tmp_path / "p.npz")["positions_3d"]["S"]["A"][0]
    ensemble = Ensemble.load(Run.open(out))
    w = make_windows([(("S", "A", "C1"), normalize_screen(track), None)], 27)
    np.testing.assert_allclose(got, ensemble.predict(w, True).mean(0), atol=1e-6)
    wrong = dataclasses.replace(ensemble.layout, left_2d=(2, 3, 4, 8, 9, 10), right_2d=(5, 6, 7, 11, 12, 13))
    assert np.abs(got - Ensemble(ensemble.models, wrong).predict(w, True).mean(0)).max() > 1e-4


@pytest.mark.parametrize("damage", ["missing member", "malformed record", "record not a dict", "bad layout"])
def test_damaged_run_directory_is_one_line(run_dir, synth_dir, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "metrics.json").unlink()   # plot draws a stored evaluation without loading members
    ck = run / "checkpoints"
    if damage == "missing member":
        (ck / "3_members_ensemble1_iter2.ckpt").unlink()
    elif damage == "malformed record":
        (ck / "iter2.json").write_text('{"files": ')
    elif damage == "record not a dict":
        (ck / "iter2.json").write_text("[1, 2]")
    else:
        (run / "layout.json").write_text('{"joints_2d": 15}')
    for argv in (["predict", "--input", str(synth_dir / "data_2d_humaneva15_gt.npz"), "--out", str(tmp_path / "o.npz")],
                 ["evaluate", "--no-curve"], ["plot"]):
        code = main([argv[0], "--run", str(run), *argv[1:]])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, (damage, argv, err)
        assert str(run) in err, (damage, err)
    assert not (tmp_path / "o.npz").exists()

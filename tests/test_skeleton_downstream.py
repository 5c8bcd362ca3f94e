"""Issue 16: everything downstream of the data takes the skeleton and the dataset from the run's
layout. A 17-joint Human3.6M-like skeleton (built here, not raypose.datasets.h36m's) goes through the
geometric fits, the flip, the corruptions and radii, the tables, the plots, the animation, and,
through the CLI, predict and evaluate of runs built here from untrained members."""
import types

import numpy as np
import pytest
import torch
from runs import tiny_config

from raypose import config as C
from raypose.cli import main
from raypose.data.npz import read_npz, save_2d
from raypose.data.windows import make_windows
from raypose.datasets.keypoints import HUMANEVA15
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import Skeleton, bone_lengths, mirror
from raypose.ensemble import corrupt
from raypose.ensemble import uncertainty as U
from raypose.ensemble.ensemble import Ensemble, model_args
from raypose.errors import UserError
from raypose.evaluation import report
from raypose.interop import tracks
from raypose.model.geometry import ALL_CAMERAS, fit_bones, fit_windows, subject_bones
from raypose.model.temporal import TemporalModel
from raypose.run import Run, member_name, torch_bytes
from raypose.train import semi
from raypose.train.member import TrainSet
from raypose.viz import plots
from raypose.viz.animation import animate

NAMES = ("hip", "r_hip", "r_knee", "r_foot", "l_hip", "l_knee", "l_foot", "spine", "thorax", "neck", "head",
         "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist")
SK = Skeleton("h36m-like", NAMES, (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15),
              (4, 5, 6, 11, 12, 13), (1, 2, 3, 14, 15, 16))
J = SK.num_joints
SIZES = {"C1": [1000, 1002], "C2": [1000, 1000]}   # Human3.6M's: one width, two heights
DATASET = {"name": "mocap17", "fps": 50, "image_sizes": SIZES}
LAYOUT = Layout.of(J, (SK.left, SK.right), SK, DATASET)
FOCAL = 2.0   # normalised units


def _poses(rng, frames, lengths):
    """(T, J, 3) camera-frame metres: every bone of `lengths` turning smoothly, the root 4 m away."""
    t = np.arange(frames)[:, None, None] / 50.0
    rest = rng.normal(0, 1, (1, J, 3))
    swing = 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 1.2, (1, J, 1)) * t + rng.uniform(0, 6, (1, J, 3)))
    d = rest + swing
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    p = np.zeros((frames, J, 3))
    p[:, 0] = [rng.uniform(-0.3, 0.3), rng.uniform(-0.2, 0.2), 4.0]
    for j in range(1, J):
        p[:, j] = p[:, SK.parents[j]] + lengths[j - 1] * d[:, j]
    return p


def _windows(seed=0, frames=60, rf=9):
    """Windows of two subjects x two cameras of smooth random tracks: normalised 2D projected with
    FOCAL, root-relative 3D; each subject's bones fixed. Returns (windows, {subject: bones})."""
    rng = np.random.default_rng(seed)
    bones = {s: rng.uniform(0.1, 0.45, J - 1) for s in ("S1", "S2")}
    seqs = []
    for s in bones:
        for cam in ("C1", "C2"):
            p = _poses(rng, frames, bones[s])
            seqs.append(((s, "Walking 1", cam), (FOCAL * p[..., :2] / p[..., 2:]).astype(np.float32),
                         (p - p[:, :1]).astype(np.float32)))
    return make_windows(seqs, rf), bones


def test_geometric_fits_and_pseudo_labels_on_a_17_joint_skeleton():
    w, bones = _windows()
    subjects = w.key_per_target(0)
    ref = subject_bones(w.targets, w.labelled, subjects, SK.parents)
    assert ref.shape == (len(w), J - 1)
    np.testing.assert_allclose(ref[subjects == "S2"], np.broadcast_to(bones["S2"], ref[subjects == "S2"].shape),
                               atol=1e-5)
    with pytest.raises(ValueError, match="17 joints for a skeleton of 15"):
        subject_bones(w.targets, w.labelled, subjects)   # HumanEva's parents: refused, not silently wrong
    rng = np.random.default_rng(1)
    shrunk = 0.8 * w.targets + rng.normal(0, 0.01, w.targets.shape).astype(np.float32)
    fitted = fit_bones(shrunk, ref, SK.parents)
    np.testing.assert_allclose(bone_lengths(fitted, SK.parents), ref, rtol=1e-4)
    assert np.abs(fitted - w.targets).mean() < np.abs(shrunk - w.targets).mean()
    # every joint put back on its input's ray: the truth stays, a guess moves towards it
    np.testing.assert_allclose(fit_windows(w.targets, w, {ALL_CAMERAS: FOCAL}), w.targets, atol=1e-4)
    guess = w.targets + rng.normal(0, 0.03, w.targets.shape).astype(np.float32)
    guess[:, 0] = 0
    moved = fit_windows(guess, w, {ALL_CAMERAS: FOCAL})
    assert np.abs(moved - w.targets).mean() < 0.5 * np.abs(guess - w.targets).mean()
    # gated pseudo-labels get their subject's bones on this skeleton
    labelled = w.key_per_target(2) == "C1"
    preds = np.stack([0.85 * w.targets + rng.normal(0, 0.004, w.targets.shape) for _ in range(3)]).astype(np.float32)
    cfg = C.SemiConfig(mode="gated", warmup=0, fit_2d=False, fit_bones=True)
    idx, pose, _, info = semi.select(cfg, 1, preds, labelled, 0, bones=ref, parents=SK.parents)
    assert info["pseudo"] > 10 and pose.shape[1:] == (J, 3)
    np.testing.assert_allclose(bone_lengths(pose, SK.parents), ref[idx], rtol=1e-4)


def test_flip_uses_the_skeletons_own_permutation():
    """Training twins are mirrored with the skeleton's permutation, and flip averaging makes an
    ensemble's pose of mirrored 2D the mirror of its pose (exactly, whatever the weights)."""
    w, _ = _windows(frames=30)
    perm = SK.flip_permutation()
    assert list(perm[[1, 4, 11, 14]]) == [4, 1, 14, 11]
    data = TrainSet(w, True, LAYOUT)
    twins = data.batch(np.arange(data.n, 2 * data.n))[1]   # mirrored as they are drawn
    np.testing.assert_array_equal(twins.numpy(), mirror(w.targets, perm))
    torch.manual_seed(0)
    model = TemporalModel(J, widths=(3, 3), channels=16)
    assert model.num_joints_out == J   # 17 in, 17 out: no HumanEva default
    ens = Ensemble([model.eval()], LAYOUT)
    flipped = make_windows([(k, mirror(w.sequence(s)[0][4:-4], perm), None) for s, k in enumerate(w.keys)], 9)
    a, b = ens.predict(w)[0], ens.predict(flipped)[0]
    assert a.shape == (len(w), J, 3)
    np.testing.assert_allclose(b, mirror(a, perm), atol=1e-5)


def test_corruptions_and_radii_in_the_datasets_pixels():
    w, _ = _windows()
    assert corrupt.image_width(LAYOUT) == 1000 and corrupt.image_width(Layout.of(15, HUMANEVA15.symmetry)) == 640
    noisy = corrupt.apply(w, "gaussian", 10.0, LAYOUT, seed=3)
    sd = float(np.std(noisy.inputs - w.inputs))
    assert abs(sd - 10 * 2 / 1000) < 0.1 * 10 * 2 / 1000   # 10 px of a 1000-pixel image, not of 640
    det = corrupt.apply(w, "detector", None, LAYOUT, seed=4)
    gaps = corrupt.apply(w, "gaps", 0.2, LAYOUT, seed=5)
    assert det.inputs.shape == w.inputs.shape and gaps.gaps.shape == w.inputs.shape[:2]
    variants = U.variants(w, LAYOUT)
    rng = np.random.default_rng(0)
    views = [np.stack([v.targets[None] + rng.normal(0, 0.01 * (1 + i), (2, *v.targets.shape)) for _ in range(3)])
             for i, (_, v) in enumerate(variants)]
    feats = U.features(variants[0][1], U.view_spread(views[0], views[0].mean((0, 1))))
    assert feats.shape == (len(w), J, len(U.FEATURES)) and np.isfinite(feats).all()
    cal = U.fit_from_predictions(views, variants)
    radius = cal.radius(w, U.view_spread(views[0], views[0].mean((0, 1))))
    assert cal.joints == J and radius.shape == (len(w), J, len(U.QUANTILES))
    assert (radius[:, 0] == 0).all() and (radius[:, 1:, 1] > radius[:, 1:, 0]).all()


def test_tables_and_plots_follow_the_dataset_and_the_skeleton(tmp_path):
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 0.2, (10, J, 3))
    records = [("S9", a, "C1", gt + 0.01 * k, gt) for k, a in enumerate(
        ["Walking 1", "Zumba", "Directions", "Eating 2", "Aerobics"])]
    table = report.evaluate_sequences(records)
    cols = list(report.summary_table(table, order=report.action_order("h36m")).columns)
    assert cols == ["Directions", "Eating", "Walking", "Aerobics", "Zumba", "Avg"]   # unknown actions after
    assert list(report.summary_table(table, order=report.action_order("mocap17")).columns)[:2] == ["Aerobics",
                                                                                                  "Directions"]
    spread, error = rng.uniform(5, 20, J), rng.uniform(20, 60, J)
    spread[0] = error[0] = 0
    records = table.to_dict("records")
    paths = plots.save_all({"per_joint": {"spread_mm": spread, "error_mm": error, "joint_names": NAMES},
                            "table": records, "action_order": list(report.action_order("h36m"))}, str(tmp_path))
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["per_joint.png", "heatmap_p_mpjpe.png"]
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in paths)
    with pytest.raises(ValueError, match="15 joint names for 17 errors"):   # HumanEva's names: refused
        plots.plot_per_joint(spread, error, str(tmp_path / "x.png"), HUMANEVA15.names)


def test_animation_draws_the_17_joints_in_the_datasets_image(tmp_path):
    p = _poses(np.random.default_rng(2), 8, np.full(J - 1, 0.25))
    kp = 500 * p[..., :2] / p[..., 2:] + [500, 501]
    rel = p - p[:, :1]
    out = animate(kp, rel, str(tmp_path / "a.gif"), gt3d=rel, spread=np.full((8, J), 0.02), parents=SK.parents,
                  left=SK.left, right=SK.right, image_size=(1000, 1002))
    from PIL import Image
    with Image.open(out) as im:
        assert im.n_frames == 8
    with pytest.raises(UserError, match=r"expected \(T, 15, 3\)"):   # no skeleton given: HumanEva's 15
        animate(kp, rel, str(tmp_path / "b.gif"))


def test_image_size_of_a_track_from_the_runs_layout():
    def size(camera, layout=LAYOUT, name=None):
        return tracks.image_size(types.SimpleNamespace(image_size=None, camera=camera), layout, name, "t")
    assert size("C1") == ((1000.0, 1002.0), "the training data's")
    with pytest.raises(UserError, match="camera 'cam0' is none of the training data's cameras"):
        size("cam0")   # C1 and C2 differ in height: no guess
    one = Layout.of(J, (SK.left, SK.right), SK, {**DATASET, "image_sizes": {"C1": [1000, 1000]}})
    assert size("cam0", one)[0] == (1000.0, 1000.0)
    assert size("anything", Layout.of(15, HUMANEVA15.symmetry), "humaneva15")[0] == (640.0, 480.0)
    with pytest.raises(UserError, match="no image size in the file"):
        size("C1", name="coco")


def _hand_built_run(out, layout, members=2):
    """A run of untrained members (iteration 1) on the tiny synthetic config: what Ensemble.load,
    predict and evaluate read, written as training writes it."""
    cfg = tiny_config(out, **{"train.members": members, "train.iterations": 1})
    run = Run(str(out))
    run.describe(cfg, layout)
    files = {}
    for k in range(members):
        torch.manual_seed(k)
        args = model_args(cfg.model, layout)
        weights = {"model": TemporalModel(**args).state_dict(), "model_args": args, "index": k}
        files[member_name(members, k, 1)] = run.write_bytes(f"checkpoints/{member_name(members, k, 1)}",
                                                            torch_bytes(weights))
    run.write_json("checkpoints/iter1.json", {"iteration": 1, "members": members, "config_hash": cfg.hash(),
                                              "files": files, "time": 0.0})
    return out


def test_predict_and_plot_a_17_joint_run_through_the_cli(tmp_path, capsys):
    run = _hand_built_run(tmp_path / "run", LAYOUT)
    p = _poses(np.random.default_rng(3), 16, np.full(J - 1, 0.25))
    kp = (500 * p[..., :2] / p[..., 2:] + [500, 501]).astype(np.float32)
    save_2d(tmp_path / "in.npz", {"S9": {"Walking 1": [kp]}}, {})   # no image size, no layout name
    out = tmp_path / "pred.npz"
    assert main(["predict", "--run", str(run), "--input", str(tmp_path / "in.npz"), "--out", str(out),
                 "--aggregate", "mean"]) == 0
    d = read_npz(out)
    meta = d["metadata"]
    assert d["positions_3d"]["S9"]["Walking 1"][0].shape == (16, J, 3)
    assert meta["fps"] == 50 and meta["layout"]["skeleton"]["parents"] == list(SK.parents)
    track = meta["input"]["tracks"]["S9/Walking 1/C1"]
    assert track["image_size"] == [1000, 1002] and track["image_size_from"] == "the training data's"
    np.testing.assert_allclose(d["keypoints_2d"]["S9"]["Walking 1"][0], kp, atol=1e-3)
    gif = tmp_path / "p.gif"
    assert main(["plot", "--pred", str(out), "--animate", "S9/Walking 1", "--out", str(gif)]) == 0
    from PIL import Image
    with Image.open(gif) as im:
        assert im.n_frames == 16


def test_evaluate_refuses_3d_of_another_skeleton(tmp_path, capsys):
    """A run whose 2D is HumanEva's 15 joints but whose 3D skeleton has 17, evaluated on HumanEva
    data (15 3D joints): one line, exit 2, nothing written."""
    run = _hand_built_run(tmp_path / "run", Layout.of(15, HUMANEVA15.symmetry, SK), members=1)
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--no-curve"]) == 2
    err = capsys.readouterr().err.strip()
    assert "its 3D has 15 joints; expected 17, the run's skeleton 'h36m-like' (layout.json)" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (run / "metrics.json").exists() and not (run / "evaluation.md").exists()

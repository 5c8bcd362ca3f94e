"""What users bring to `raypose predict` (issue 15): other image sizes, VideoPose3D's in-the-wild
file, COCO keypoint results with a frame order and gaps, mapped onto the run's 15 joints."""
import json

import numpy as np
import pytest

from raypose.cli import main
from raypose.data.npz import read_npz, save_2d
from raypose.run import Run

J = 15
# HumanEva joint each COCO-17 point is taken from in these tests: the face points from the head
COCO_FROM = [14, 14, 14, 14, 14, 2, 5, 3, 6, 4, 7, 8, 11, 9, 12, 10, 13]


@pytest.fixture(scope="module")
def run_dir(local_run):
    """The session's 2-member, 1-iteration local run (conftest.local_run)."""
    return local_run


def _track(frames=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform([200, 100], [440, 380], (1, J, 2))
    return (base + np.cumsum(rng.normal(0, 1, (frames, J, 2)), 0)).astype(np.float32)


def _predict(run_dir, inp, out, *extra):
    return main(["predict", "--run", str(run_dir), "--input", str(inp), "--out", str(out), *extra])


def test_another_resolution_gives_the_same_3d(run_dir, tmp_path):
    """1920x1440 is 640x480 scaled x3: the same view, the same normalised 2D, the same 3D."""
    kp = _track()
    save_2d(tmp_path / "vga.npz", {"S1": {"walk": [kp]}}, {})
    save_2d(tmp_path / "big.npz", {"S1": {"walk": [3 * kp]}}, {})
    save_2d(tmp_path / "custom.npz", {"clip.mp4": {"custom": [3 * kp]}},
            {"layout_name": "humaneva15", "num_joints": J, "video_metadata": {"clip.mp4": {"w": 1920, "h": 1440}}})
    assert _predict(run_dir, tmp_path / "vga.npz", tmp_path / "a.npz") == 0
    assert _predict(run_dir, tmp_path / "big.npz", tmp_path / "b.npz", "--image-size", "1920", "1440") == 0
    assert _predict(run_dir, tmp_path / "custom.npz", tmp_path / "c.npz") == 0
    a, b, c = (read_npz(tmp_path / f"{x}.npz") for x in "abc")
    np.testing.assert_allclose(b["positions_3d"]["S1"]["walk"][0], a["positions_3d"]["S1"]["walk"][0], atol=1e-5)
    np.testing.assert_allclose(c["positions_3d"]["clip.mp4"]["custom"][0], a["positions_3d"]["S1"]["walk"][0],
                               atol=1e-5)
    np.testing.assert_allclose(c["radius"]["clip.mp4"]["custom"][0], a["radius"]["S1"]["walk"][0], rtol=1e-4)
    assert a["metadata"]["input"]["tracks"]["S1/walk/C1"]["image_size"] == [640, 480]
    assert a["metadata"]["input"]["tracks"]["S1/walk/C1"]["image_size_from"] == "the training data's"
    assert c["metadata"]["input"]["tracks"]["clip.mp4/custom/C1"]["image_size"] == [1920, 1440]


def test_another_focal_length_is_zoomed_to_the_runs(run_dir, tmp_path):
    """A camera with half the run's focal length sees the same 3D at half the size about the image
    centre: with --focal the 2D is zoomed back, so it predicts what the run's camera would (the
    same 3D, the same trajectory) with --fov-correction; without it, it does not."""
    f_run = Run.open(run_dir).focals()["*"]
    kp = _track()
    centre = np.float32([320, 240])
    save_2d(tmp_path / "run_cam.npz", {"S1": {"walk": [kp]}}, {})
    save_2d(tmp_path / "wide.npz", {"S1": {"walk": [centre + (kp - centre) / 2]}}, {})
    assert _predict(run_dir, tmp_path / "run_cam.npz", tmp_path / "a.npz", "--focal", str(f_run)) == 0
    assert _predict(run_dir, tmp_path / "wide.npz", tmp_path / "b.npz", "--focal", str(f_run / 2),
                    "--fov-correction") == 0
    assert _predict(run_dir, tmp_path / "wide.npz", tmp_path / "c.npz", "--focal", str(f_run / 2)) == 0
    a, b, c = (read_npz(tmp_path / f"{x}.npz") for x in "abc")
    pa, pb, pc = (d["positions_3d"]["S1"]["walk"][0] for d in (a, b, c))
    np.testing.assert_allclose(pb, pa, atol=1e-5)
    np.testing.assert_allclose(b["trajectory"]["S1"]["walk"][0], a["trajectory"]["S1"]["walk"][0], rtol=1e-4)
    assert np.abs(pc - pa).max() > 1e-3                                    # uncorrected: another input
    assert b["metadata"]["input"]["fov_correction"] == {"applied": True, "focal": f_run / 2, "run_focal": f_run,
                                                        "zoom": pytest.approx(2.0)}
    assert c["metadata"]["input"]["fov_correction"] == {"applied": False, "why": "no --fov-correction"}


def _coco_json(path, kp, skip=(), score=0.9):
    """COCO keypoint results, image ids 1..T, one person per image (none on the skipped ones),
    plus a worse detection on image 1 that must lose to the better one."""
    dets = []
    for t, frame in enumerate(kp[:, COCO_FROM]):
        if t + 1 in skip:
            continue
        flat = np.concatenate([frame, np.full((17, 1), score)], 1).ravel().tolist()
        dets.append({"image_id": t + 1, "category_id": 1, "keypoints": flat, "score": 0.95})
    dets.append({"image_id": 1, "category_id": 1, "keypoints": [0.0] * 51, "score": 0.1})
    path.write_text(json.dumps(dets))
    return path


def test_coco_detections_into_a_humaneva_run(run_dir, tmp_path, capsys):
    kp = _track(seed=1)
    inp = _coco_json(tmp_path / "clip.json", kp, skip=(7,))
    (tmp_path / "frames.txt").write_text("\n".join(str(i) for i in range(1, 41)))
    assert _predict(run_dir, inp, tmp_path / "p.npz", "--frames", str(tmp_path / "frames.txt"),
                    "--fill-missing-frames") == 2
    err = capsys.readouterr().err
    assert "no image size" in err and "--image-size" in err and err.count("\n") == 1
    assert not (tmp_path / "p.npz").exists()
    assert _predict(run_dir, inp, tmp_path / "p.npz", "--frames", str(tmp_path / "frames.txt"),
                    "--image-size", "640", "480") == 2
    err = capsys.readouterr().err
    assert "1 of 40 frames have no person detection (image ids 7)" in err and "--fill-missing-frames" in err
    assert err.count("\n") == 1 and not (tmp_path / "p.npz").exists()
    assert _predict(run_dir, inp, tmp_path / "p.npz", "--frames", str(tmp_path / "frames.txt"),
                    "--image-size", "640", "480", "--fill-missing-frames") == 0
    d = read_npz(tmp_path / "p.npz")
    pose, filled = d["positions_3d"]["clip"]["coco"][0], d["filled"]["clip"]["coco"][0]
    assert pose.shape == (40, J, 3) and np.isfinite(pose).all()
    assert filled[6].all() and filled.sum() == J        # image 7 had no detection: a whole frame filled
    meta = d["metadata"]
    assert meta["input"]["mapped"].startswith("coco") and meta["input"]["input_joints"] == 17
    assert any("mapped" in w for w in meta["uncertainty_calibration"]["why"])
    assert "trajectory" not in d and "--focal" in meta["trajectory"]["why"]   # another camera: focal unknown
    # without the frame order the ids present are the frames: 39 of them, nothing filled
    assert _predict(run_dir, inp, tmp_path / "q.npz", "--image-size", "640", "480") == 0
    q = read_npz(tmp_path / "q.npz")
    assert q["positions_3d"]["clip"]["coco"][0].shape == (39, J, 3) and not q["filled"]["clip"]["coco"][0].any()
    # low confidences are gaps too
    low = _coco_json(tmp_path / "low.json", kp, score=0.1)
    assert _predict(run_dir, low, tmp_path / "r.npz", "--image-size", "640", "480") == 2
    assert "no usable keypoint" in capsys.readouterr().err
    assert _predict(run_dir, low, tmp_path / "r.npz", "--image-size", "640", "480",
                    "--confidence-threshold", "0.05") == 0


def test_2d_no_mapping_exists_for_is_one_line(run_dir, tmp_path, capsys):
    save_2d(tmp_path / "x.npz", {"S1": {"a": [np.zeros((5, 12, 2), np.float32)]}}, {"layout_name": "mine"})
    assert _predict(run_dir, tmp_path / "x.npz", tmp_path / "o.npz", "--image-size", "640", "480") == 2
    err = capsys.readouterr().err
    assert "12 joints" in err and "no mapping" in err and err.count("\n") == 1 and not (tmp_path / "o.npz").exists()

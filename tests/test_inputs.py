"""Users' 2D for `predict` in three formats (HumanEva npz, VideoPose3D custom npz, COCO results
JSON) reads into the same tracks; every malformed file is one line naming the path or key."""
import json

import numpy as np
import pytest

from raypose.data.npz import MAX_PIXELS, load_2d, save_2d, save_npz
from raypose.errors import UserError
from raypose.interop.inputs import COCO_SYMMETRY, read_2d, read_frame_order

HUMANEVA_META = {"layout_name": "humaneva15", "num_joints": 15,
                 "keypoints_symmetry": [[2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13]]}


def _pixels(frames, joints, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0, 1, (frames, joints, 2)) * [640, 480]).astype(np.float32)


def _humaneva(path, cams=3, meta=HUMANEVA_META):
    pos = {"Validate/S1": {"Walking 1": [_pixels(20, 15, c) for c in range(cams)]},
           "Validate/S2": {"Jog 1": [_pixels(12, 15, 10 + c) for c in range(cams)]}}
    save_2d(path, pos, meta)
    return pos


def _custom(path, videos):
    """The file VideoPose3D's prepare_data_2d_custom.py writes: one 'custom' camera per video."""
    pos = {name: {"custom": [_pixels(frames, 17, i)]} for i, (name, (frames, _)) in enumerate(videos.items())}
    meta = {"layout_name": "coco", "num_joints": 17, "keypoints_symmetry": [list(s) for s in COCO_SYMMETRY],
            "video_metadata": {name: {"w": w_h[0], "h": w_h[1]} for name, (_, w_h) in videos.items()}}
    save_2d(path, pos, meta)
    return pos


def _det(image_id, seed, score=0.9, category_id=1):
    rng = np.random.default_rng(seed)
    xyv = np.concatenate([rng.uniform(0, 500, (17, 2)), rng.uniform(0, 1, (17, 1))], axis=1)
    return {"image_id": image_id, "category_id": category_id, "keypoints": xyv.ravel().tolist(), "score": score}


def _json(path, entries):
    path.write_text(json.dumps(entries))
    return path


def _refused(path, *args, match, **kwargs):
    """read_2d raises one UserError line containing `match`; returns the message."""
    with pytest.raises(UserError) as e:
        read_2d(path, *args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and match in msg, msg
    return msg


# -------------------------------------------------------------------------------------------- npz

def test_humaneva_npz_round_trips_without_an_image_size(tmp_path):
    path = tmp_path / "data_2d_humaneva15_gt.npz"
    pos = _humaneva(path)
    got = read_2d(path)
    assert (got.layout_name, got.num_joints) == ("humaneva15", 15)
    assert got.symmetry == ([2, 3, 4, 8, 9, 10], [5, 6, 7, 11, 12, 13])
    assert [(t.subject, t.action, t.camera) for t in got.tracks] == [
        ("Validate/S1", "Walking 1", "C1"), ("Validate/S1", "Walking 1", "C2"), ("Validate/S1", "Walking 1", "C3"),
        ("Validate/S2", "Jog 1", "C1"), ("Validate/S2", "Jog 1", "C2"), ("Validate/S2", "Jog 1", "C3")]
    for t in got.tracks:
        assert t.keypoints.dtype == np.float32
        np.testing.assert_array_equal(t.keypoints, pos[t.subject][t.action][int(t.camera[1:]) - 1])
        assert t.image_size is None and t.confidence is None
    assert "6 track(s) of 15 joints" in got.description
    assert all(t.image_size == (640.0, 480.0) for t in read_2d(path, image_size=(640, 480)).tracks)


def test_more_cameras_than_humaneva_are_named_on(tmp_path):
    path = tmp_path / "rig.npz"
    save_2d(path, {"S1": {"a": [_pixels(5, 15, c) for c in range(5)]}}, {})
    got = read_2d(path)
    assert [t.camera for t in got.tracks] == ["C1", "C2", "C3", "C4", "C5"]
    assert got.layout_name is None and got.symmetry is None and got.num_joints == 15


def test_custom_npz_sizes_per_video_and_image_size_overrides(tmp_path):
    path = tmp_path / "data_2d_custom_myvideos.npz"
    pos = _custom(path, {"clip_a": (30, (1920, 1080)), "clip_b": (10, (1280, 720))})
    got = read_2d(path)
    assert (got.layout_name, got.num_joints, got.symmetry) == ("coco", 17, COCO_SYMMETRY)
    by_video = {t.subject: t for t in got.tracks}
    assert [(t.action, t.camera) for t in got.tracks] == [("custom", "C1")] * 2
    assert by_video["clip_a"].image_size == (1920.0, 1080.0)
    assert by_video["clip_b"].image_size == (1280.0, 720.0)
    np.testing.assert_array_equal(by_video["clip_b"].keypoints, pos["clip_b"]["custom"][0])
    assert by_video["clip_a"].keypoints.shape == (30, 17, 2)
    overridden = read_2d(path, image_size=[1000, 500.5])
    assert [t.image_size for t in overridden.tracks] == [(1000.0, 500.5)] * 2


def test_nan_joints_come_through_and_load_2d_still_refuses_them(tmp_path):
    path = tmp_path / "gappy.npz"
    kp = _pixels(8, 15)
    kp[3, 4] = np.nan              # a missing joint
    kp[5, 6, 0] = np.nan           # half a joint is a missing joint
    save_2d(path, {"S1": {"Walking 1": [kp]}}, HUMANEVA_META)
    out = read_2d(path).tracks[0].keypoints
    assert np.isnan(out[3, 4]).all() and np.isnan(out[5, 6]).all()
    assert np.isnan(out).any(axis=-1).sum() == 2
    np.testing.assert_array_equal(out[0], kp[0])
    with pytest.raises(UserError, match="NaN or infinite"):       # training/predict input unchanged
        load_2d(path)


def test_nan_does_not_hide_a_coordinate_beyond_the_image(tmp_path):
    path = tmp_path / "far.npz"
    kp = _pixels(4, 15)
    kp[0, 0] = np.nan
    kp[2, 1, 1] = 2 * MAX_PIXELS
    save_2d(path, {"S1": {"a": [kp]}}, {})
    _refused(path, match="positions_2d['S1']['a'][0]: a coordinate of 2e+05")


@pytest.mark.parametrize("bad, match", [
    (np.full((4, 15, 2), np.inf, np.float32), "infinite coordinates"),
    (np.full((4, 15, 2), "x"), "expected integer or float coordinates"),
    (np.zeros((4, 15, 3), np.float32), "expected an array (frames, joints, 2)"),
    (np.zeros((3, 0, 2), np.float32), "expected at least one joint"),
])
def test_npz_refuses_bad_arrays_naming_the_key(tmp_path, bad, match):
    path = tmp_path / "bad.npz"
    save_2d(path, {"S1": {"Walking 1": [_pixels(4, 15), bad]}}, {})
    msg = _refused(path, match=match)
    assert f"{path}: positions_2d['S1']['Walking 1'][1]" in msg


def test_npz_refuses_joint_counts_that_differ_between_tracks(tmp_path):
    path = tmp_path / "mixed.npz"
    save_2d(path, {"S1": {"a": [_pixels(4, 15)]}, "S2": {"b": [_pixels(4, 17)]}}, {})
    _refused(path, match="positions_2d['S2']['b'][0]: 17 joints, but other tracks have 15")


@pytest.mark.parametrize("meta, match", [
    ({"num_joints": 17}, "metadata['num_joints'] is 17 but the tracks have 15 joints"),
    ({"keypoints_symmetry": [[1, 2], [3, 99]]}, "metadata['keypoints_symmetry']"),
    ({"video_metadata": {"S1": {"w": 640}}}, "metadata['video_metadata']['S1']"),
    ({"video_metadata": {"S1": {"w": 640, "h": -1}}}, "metadata['video_metadata']['S1']: 640 x -1"),
])
def test_npz_refuses_inconsistent_metadata(tmp_path, meta, match):
    path = tmp_path / "meta.npz"
    save_2d(path, {"S1": {"a": [_pixels(4, 15)]}}, meta)
    _refused(path, match=match)


def test_refuses_a_bad_image_size(tmp_path):
    path = tmp_path / "ok.npz"
    _humaneva(path)
    _refused(path, image_size=(0, 480), match="--image-size: 0 x 480")
    _refused(path, image_size=(640,), match="--image-size")


# ------------------------------------------------------------------------------------------- COCO

def test_coco_keeps_the_best_detection_per_image_in_id_order(tmp_path):
    low, high, other = _det(7, 1, score=0.4), _det(7, 2, score=0.95), _det(3, 3, score=0.5)
    path = _json(tmp_path / "dets.json", [low, _det(3, 9, category_id=2), other, high])
    got = read_2d(path)
    assert (got.layout_name, got.num_joints, got.symmetry) == ("coco", 17, COCO_SYMMETRY)
    (t,) = got.tracks
    assert (t.subject, t.action, t.camera, t.image_size) == ("dets", "coco", "C1", None)
    assert t.keypoints.shape == (2, 17, 2) and t.confidence.shape == (2, 17)
    for frame, det in enumerate((other, high)):        # image 3 before image 7; the 0.95 detection of 7
        xyv = np.reshape(det["keypoints"], (17, 3)).astype(np.float32)
        np.testing.assert_array_equal(t.keypoints[frame], xyv[:, :2])
        np.testing.assert_array_equal(t.confidence[frame], xyv[:, 2])
    assert read_2d(path, image_size=(1920, 1080)).tracks[0].image_size == (1920.0, 1080.0)


def test_coco_ids_sort_numerically(tmp_path):
    path = _json(tmp_path / "d.json", [_det(10, 0), _det(9, 1), _det(100, 2)])
    kp = read_2d(path).tracks[0].keypoints
    for frame, seed in enumerate((1, 0, 2)):
        np.testing.assert_array_equal(kp[frame], _pixels_of(_det(0, seed)))


def _pixels_of(det):
    return np.reshape(det["keypoints"], (17, 3))[:, :2].astype(np.float32)


def test_coco_frame_order_puts_gaps_where_an_image_has_no_detection(tmp_path):
    path = _json(tmp_path / "d.json", [_det("b", 0), _det("a", 1), _det("z", 2), {**_det("c", 3), "category_id": 3}])
    order = tmp_path / "frames.txt"
    order.write_text("a\nmissing\n\nb\nc\n")
    frames = read_frame_order(order)
    assert frames == ["a", "missing", "b", "c"]
    with pytest.raises(UserError, match=r"2 of 4 frames have no person detection \(image ids 'missing', 'c'\)"):
        read_2d(path, frames=frames)                  # by default a person in every frame; a car is none
    frames = frames[:3]
    t = read_2d(path, frames=frames, fill_missing_frames=True).tracks[0]
    assert t.keypoints.shape == (3, 17, 2)
    np.testing.assert_array_equal(t.keypoints[0], _pixels_of(_det("a", 1)))
    assert np.isnan(t.keypoints[1]).all() and np.isnan(t.confidence[1]).all()
    np.testing.assert_array_equal(t.keypoints[2], _pixels_of(_det("b", 0)))
    described = read_2d(path, frames=frames, fill_missing_frames=True).description
    assert "3 frames (1 without a person, filled in)" in described and "1 images with a person not in" in described
    quoted = _json(tmp_path / "q.json", [{**_det("a", 1), "category_id": "1"}])   # a quoted id is still a person
    assert read_2d(quoted).tracks[0].keypoints.shape == (1, 17, 2)
    with pytest.raises(UserError, match=r"category_id: \[1\]; expected an integer category id"):
        read_2d(_json(tmp_path / "bad.json", [{**_det("a", 1), "category_id": [1]}]))


def test_frame_order_ids_parse_as_ints_in_text_and_json(tmp_path):
    txt, js = tmp_path / "f.txt", tmp_path / "f.json"
    txt.write_text(" 12\n3\nframe_7\n")
    js.write_text(json.dumps([12, "3", "x"]))
    assert read_frame_order(txt) == [12, 3, "frame_7"]
    assert read_frame_order(js) == [12, 3, "x"]
    path = _json(tmp_path / "d.json", [_det("3", 0), _det(12, 1)])   # string and int ids meet
    kp = read_2d(path, frames=read_frame_order(txt), fill_missing_frames=True).tracks[0].keypoints
    np.testing.assert_array_equal(kp[0], _pixels_of(_det(0, 1)))
    np.testing.assert_array_equal(kp[1], _pixels_of(_det(0, 0)))
    assert np.isnan(kp[2]).all()


@pytest.mark.parametrize("text, match", [("", "no image ids"), ("1\n1\n", "appears twice"), ("[1, {}]", "[1]")])
def test_frame_order_refuses_bad_files(tmp_path, text, match):
    path = tmp_path / "frames.txt"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        read_frame_order(path)
    assert str(path) in str(e.value) and match in str(e.value) and "\n" not in str(e.value)


def test_coco_nan_joints_come_through(tmp_path):
    det = _det(1, 0)
    det["keypoints"][3] = float("nan")     # joint 1's x
    path = tmp_path / "d.json"
    path.write_text(json.dumps([det]))     # json writes NaN, as Python detectors do
    kp = read_2d(path).tracks[0].keypoints
    assert np.isnan(kp[0, 1]).all() and not np.isnan(kp[0, [0, 2]]).any()


def test_coco_content_is_recognised_without_the_extension(tmp_path):
    path = _json(tmp_path / "dets.results", [_det(1, 0)])
    assert read_2d(path).tracks[0].subject == "dets"


@pytest.mark.parametrize("content, match", [
    ("{not json", "not JSON"),
    (json.dumps({"annotations": []}), "a JSON dict; expected a COCO keypoint-results list"),
    (json.dumps([{"category_id": 1, "keypoints": [0] * 51}]), "[0]: no image_id"),
    (json.dumps([{"image_id": 1, "keypoints": [0] * 50}]), "[0].keypoints: 50 values, not a multiple of 3"),
    (json.dumps([{"image_id": 1, "keypoints": [0] * 54}]), "[0].keypoints: 54 values; expected 51"),
    (json.dumps([{"image_id": 1, "keypoints": [0] * 50 + ["x"]}]), "[0].keypoints: expected a list of numbers"),
    (json.dumps([{"image_id": 1, "keypoints": [1e300] * 51}]), "[0].keypoints: infinite coordinates"),
    (json.dumps([{"image_id": 1, "keypoints": [2e5] * 51}]), "[0].keypoints: a coordinate of 2e+05"),
    (json.dumps([]), "no person detection"),
    (json.dumps([_det(1, 0, category_id=3)]), "no person detection (category_id 1) among 1 entries"),
])
def test_coco_refuses_malformed_files(tmp_path, content, match):
    path = tmp_path / "dets.json"
    path.write_text(content)
    assert _refused(path, match=match).startswith(str(path))


def test_coco_refuses_a_frame_order_matching_no_detection(tmp_path):
    path = _json(tmp_path / "d.json", [_det(1, 0), _det(2, 1)])
    _refused(path, frames=[5, 6], match="none of the 2 frame ids (first [5, 6]) is an image_id")


# ------------------------------------------------------------------------------------------ other

@pytest.mark.parametrize("make, match", [
    (lambda p: p / "nothing.npz", "file not found"),
    (lambda p: p, "a directory"),
    (lambda p: (p / "poses.csv").write_text("x,y\n1,2\n") and p / "poses.csv", "unknown 2D format (extension '.csv')"),
    (lambda p: save_npz(p / "three_d.npz", positions_3d={"S1": {"a": np.zeros((2, 15, 3))}}) and p / "three_d.npz",
     "no positions_2d (found ['positions_3d'])"),
    (lambda p: (p / "broken.npz").write_bytes(b"not a zip") and p / "broken.npz", "not an npz file"),
])
def test_other_inputs_name_the_path_and_the_formats(tmp_path, make, match):
    path = make(tmp_path)
    msg = _refused(path, match=match)
    assert msg.startswith(str(path))
    if "not an npz" not in match:
        assert "VideoPose3D .npz with positions_2d, or a COCO keypoint-results .json" in msg


def test_a_frame_order_with_an_npz_is_refused(tmp_path):
    path = tmp_path / "ok.npz"
    _humaneva(path, cams=1)
    _refused(path, frames=[1, 2], match="a frame order applies to COCO keypoint-results JSON")

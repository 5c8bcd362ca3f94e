"""The 2D keypoints users bring to `raypose predict`, read from any supported format into one form.

Users' 2D comes from VideoPose3D's npz files (the HumanEva data sets, or its in-the-wild
`prepare_data_2d_custom.py` output) or from a detector's COCO keypoint-results JSON. Each becomes
a list of `Track`s in pixels, NaN where a joint is missing, so that gap filling, normalisation
and the run's layout check work the same whatever the source.
"""
import json
import math
import os
import re
import zipfile
from dataclasses import dataclass

import numpy as np

from raypose.data.npz import MAX_PIXELS, _check_array, _nested, camera_arrays
from raypose.datasets.skeleton import check_symmetry
from raypose.errors import UserError
from raypose.npzfile import read_npz

FORMATS = ("a VideoPose3D .npz with positions_2d, or a COCO keypoint-results .json "
           "(a list of {image_id, category_id, keypoints, score})")
COCO_JOINTS = 17
COCO_SYMMETRY = ([1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16])


@dataclass
class Track:
    """One person seen by one camera: (T, J, 2) float32 pixels, NaN where a joint is missing."""
    subject: str
    action: str
    camera: str
    keypoints: np.ndarray
    confidence: np.ndarray | None = None      # (T, J) float32, the detector's score per joint
    image_size: tuple[float, float] | None = None   # (w, h) pixels; None when neither file nor user says
    image_size_from: str | None = None        # where image_size came from (--image-size, the file's metadata)
    frame_ids: list | None = None             # COCO: the image id of each frame, in order
    frame_order: str | None = None            # COCO: how the frames were ordered


@dataclass
class UserInput:
    """All tracks of one input file, with what the file says about its joints."""
    tracks: list[Track]
    layout_name: str | None
    num_joints: int
    symmetry: tuple[list, list] | None        # (left, right) joint indices
    description: str


def read_2d(path, image_size=None, frames=None, fill_missing_frames=False):
    """The tracks of `path`: npz by zip content or extension, COCO results by JSON content or extension.

    `image_size` (the user's --image-size W H) overrides any size in the file; `frames` (image
    ids, see `read_frame_order`) orders a COCO file's frames. A COCO frame without a person is
    refused unless `fill_missing_frames` (then it is a gap, filled in from its neighbours).
    """
    path = os.fspath(path)
    size = _image_size(image_size)
    if os.path.isdir(path):
        raise UserError(f"{path}: a directory; expected {FORMATS}")
    if not os.path.isfile(path):
        raise UserError(f"{path}: file not found; expected {FORMATS}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz" or zipfile.is_zipfile(path):
        if frames is not None:
            raise UserError(f"{path}: a frame order applies to COCO keypoint-results JSON; expected none "
                            "with an npz (its frames are already in order)")
        return _read_npz(path, size)
    if ext == ".json" or _starts_like_json(path):
        return _read_coco(path, size, frames, fill_missing_frames)
    raise UserError(f"{path}: unknown 2D format (extension {ext or 'none'!r}); expected {FORMATS}")


def read_frame_order(path):
    """Image ids in frame order, from a text file (one per line) or a JSON list; ints where they parse."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: file not found; expected image ids in frame order, one per line or a JSON list")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: unreadable ({type(e).__name__}: {e}); expected a UTF-8 text file of "
                        "image ids") from None
    if text.lstrip().startswith("["):
        try:
            ids = json.loads(text)
        except (ValueError, RecursionError) as e:
            raise UserError(f"{path}: not JSON ({e}); expected a JSON list of image ids or one id per line") from None
    else:
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(ids, list) or not ids:
        raise UserError(f"{path}: no image ids; expected image ids in frame order, one per line or a JSON list")
    return _frame_order([_frame_id(v, f"{path}[{i}]") for i, v in enumerate(ids)], path)


def _starts_like_json(path):
    try:
        with open(path, "rb") as f:
            head = f.read(64).lstrip()
    except OSError as e:
        raise UserError(f"{path}: unreadable ({e.strerror}); expected {FORMATS}") from None
    return head[:1] in (b"[", b"{")


def _image_size(size):
    """--image-size W H as (float w, float h), or None."""
    if size is None:
        return None
    try:
        w, h = (float(v) for v in size)
    except (TypeError, ValueError):
        raise UserError(f"--image-size: {size!r}; expected two numbers W H in pixels") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise UserError(f"--image-size: {w:g} x {h:g}; expected two positive numbers W H in pixels")
    return w, h


def _missing_as_nan(kp):
    """A joint with either coordinate NaN is missing: both become NaN."""
    kp = np.array(kp, dtype=np.float32)
    kp[np.isnan(kp).any(axis=-1)] = np.nan
    return kp


def _track_array(arr, where):
    out = _check_array(arr, where, 2, max_abs=MAX_PIXELS, allow_nan=True)
    if out.shape[1] == 0:   # a camera without frames is kept (its output has 0 rows); without joints it is nothing
        raise UserError(f"{where}: shape {out.shape}; expected at least one joint")
    return _missing_as_nan(out)


# ---------------------------------------------------------------------------------------------- npz

def _read_npz(path, size):
    content = read_npz(path)
    if "positions_2d" not in content:
        raise UserError(f"{path}: no positions_2d (found {sorted(content)}); expected {FORMATS}")
    pos2d = content["positions_2d"]
    _nested(pos2d, f"{path}: positions_2d", "list of per-camera (frames, joints, 2) arrays")
    meta = content.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    videos = meta.get("video_metadata")
    if not isinstance(videos, (dict, type(None))) or not isinstance(meta.get("layout_name"), (str, type(None))):
        key = "video_metadata" if not isinstance(videos, (dict, type(None))) else "layout_name"
        raise UserError(f"{path}: metadata[{key!r}] is {str(meta[key])[:80]}; expected "
                        + ("{video: {'w': W, 'h': H}}" if key == "video_metadata" else "a 2D layout name"))
    videos = videos or {}
    sizes = {s: _video_size(videos.get(s), f"{path}: metadata['video_metadata'][{s!r}]") for s in pos2d}
    tracks = [Track(str(subject), str(action), f"C{c + 1}", kp, None, size or sizes[subject],
                    "--image-size" if size else f"the file's metadata['video_metadata'][{subject!r}]"
                    if sizes[subject] else None)
              for subject, action, c, kp in camera_arrays(pos2d, path, _track_array)]
    joints = tracks[0].keypoints.shape[1]
    if "num_joints" in meta and _int(meta["num_joints"]) != joints:
        raise UserError(f"{path}: metadata['num_joints'] is {meta['num_joints']!r} but the tracks have "
                        f"{joints} joints; expected them to agree")
    layout = meta.get("layout_name") or None
    symmetry = _symmetry(meta.get("keypoints_symmetry"), joints, f"{path}: metadata['keypoints_symmetry']")
    return UserInput(tracks, layout, joints, symmetry,
                     f"{path}: VideoPose3D npz, {len(tracks)} track(s) of {joints} joints"
                     + (f" ({layout})" if layout else ""))


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _video_size(video, where):
    """{"w": W, "h": H} of VideoPose3D's custom metadata as (w, h), or None when absent."""
    if video is None:
        return None
    try:
        w, h = float(video["w"]), float(video["h"])
    except (TypeError, KeyError, ValueError, IndexError):
        raise UserError(f"{where}: {video!r}; expected {{'w': width, 'h': height}} in pixels") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise UserError(f"{where}: {w:g} x {h:g}; expected a positive width and height in pixels")
    return w, h


def _symmetry(sym, joints, where):
    """(left, right) joint index lists, or None when the file has none."""
    return None if sym is None else check_symmetry(sym, joints, where)


# ----------------------------------------------------------------------------------------------- COCO

_INT_ID = re.compile(r"[+-]?[0-9]+")


def _frame_id(v, where):
    """An image id as int where it parses as one, else as a stripped string."""
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise UserError(f"{where}: image id {v!r}; expected an integer or a string")
    if isinstance(v, str):
        v = v.strip()
        return int(v) if _INT_ID.fullmatch(v) else v
    return v


def _frame_order(ids, where):
    seen = set()
    for i in ids:
        if i in seen:
            raise UserError(f"{where}: image id {i!r} appears twice in the frame order; expected each once")
        seen.add(i)
    return ids


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _score(entry, where):
    score = entry.get("score")
    if score is None:
        return -math.inf
    if not _number(score):
        raise UserError(f"{where}: score {score!r}; expected a number")
    return -math.inf if math.isnan(score) else float(score)


PERSON = 1   # COCO's category id for people


def _category(v, where):
    """A category id as int (some writers quote it)."""
    if isinstance(v, str) and _INT_ID.fullmatch(v.strip()):
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise UserError(f"{where}: {v!r}; expected an integer category id ({PERSON} for a person)")
    return v


def _best_detections(entries, path):
    """image id -> ((17, 3) x, y, v, score) of its highest-scoring person detection."""
    best = {}
    for i, entry in enumerate(entries):
        where = f"{path}[{i}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: a JSON {type(entry).__name__}; expected an object "
                            "{image_id, category_id, keypoints, score}")
        if "image_id" not in entry:
            raise UserError(f"{where}: no image_id; expected every detection to name its image")
        if _category(entry.get("category_id", 1), f"{where}.category_id") != PERSON:
            continue                                    # not a person
        image = _frame_id(entry["image_id"], f"{where}.image_id")
        kps = entry.get("keypoints")
        if not isinstance(kps, list) or not all(_number(v) for v in kps):
            raise UserError(f"{where}.keypoints: expected a list of numbers x1, y1, v1, ... x17, y17, v17")
        if len(kps) != 3 * COCO_JOINTS:
            detail = "" if len(kps) % 3 == 0 else ", not a multiple of 3 (x, y, v per joint)"
            raise UserError(f"{where}.keypoints: {len(kps)} values{detail}; expected {3 * COCO_JOINTS} "
                            f"(x, y, v for the {COCO_JOINTS} COCO joints)")
        try:
            values = np.reshape(np.array(kps, dtype=np.float64), (COCO_JOINTS, 3))
        except OverflowError:
            raise UserError(f"{where}.keypoints: a number too large for a float; expected pixels") from None
        _check_array(values[None, :, :2], f"{where}.keypoints", 2, max_abs=MAX_PIXELS, allow_nan=True)
        _check_array(values[None, :, 2:], f"{where}.keypoints (v scores)", 1, allow_nan=True)
        score = _score(entry, f"{where}.score")
        if image not in best or score > best[image][1]:
            best[image] = (values, score)
    if not best:
        raise UserError(f"{path}: no person detection (category_id 1) among {len(entries)} entries; "
                        "expected at least one")
    return best


def _sorted_ids(ids, where="image ids"):
    """(ids in frame order, the rule): numbers by value; names by name, with the numbers in them by value
    (frame_2.jpg before frame_10.jpg); numbers mixed with names are the user's one line."""
    ids = list(ids)
    if all(isinstance(i, int) for i in ids):
        return sorted(ids), "image ids sorted by value"
    numbers = [i for i in ids if isinstance(i, int)]
    if numbers:
        name = next(i for i in ids if not isinstance(i, int))
        raise UserError(f"{where}: image ids mix numbers ({numbers[0]}) and names ({name!r}), which have no one "
                        "order; expected ids of one kind, or --frames FILE giving the frame order")
    return sorted(ids, key=_natural), "image ids sorted by name, the numbers in them by value"


def _natural(name):
    parts = re.split(r"([0-9]+)", name)
    return [int(p) if k % 2 else p for k, p in enumerate(parts)], name


def _read_coco(path, size, frames, fill_missing_frames=False):
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
    except (ValueError, RecursionError) as e:       # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"{path}: not JSON ({type(e).__name__}: {e}); expected {FORMATS}") from None
    except OSError as e:
        raise UserError(f"{path}: unreadable ({e.strerror}); expected {FORMATS}") from None
    if not isinstance(entries, list):
        raise UserError(f"{path}: a JSON {type(entries).__name__}; expected a COCO keypoint-results list of "
                        "{image_id, category_id, keypoints, score}")
    best = _best_detections(entries, path)
    if frames is None:
        order, rule = _sorted_ids(best, path)
    else:
        rule = "--frames"
        order = _frame_order([_frame_id(v, f"{path}: frame order[{i}]") for i, v in enumerate(frames)],
                             f"{path}: frame order")
        if not any(i in best for i in order):
            raise UserError(f"{path}: none of the {len(order)} frame ids (first {order[:3]!r}) is an image_id of "
                            f"its detections (first {list(best)[:3]!r}); expected the same ids")
    missing = [image for image in order if image not in best]
    if missing and not fill_missing_frames:
        raise UserError(f"{path}: {len(missing)} of {len(order)} frames have no person detection (image ids "
                        f"{', '.join(map(repr, missing[:5]))}{', ...' if len(missing) > 5 else ''}); expected a "
                        "person in every frame, or --fill-missing-frames to fill them in from their neighbours")
    values = np.full((len(order), COCO_JOINTS, 3), np.nan, dtype=np.float32)   # a frame without detection: NaN
    for t, image in enumerate(order):
        if image in best:
            values[t] = best[image][0]
    kp, confidence = _missing_as_nan(values[..., :2]), np.ascontiguousarray(values[..., 2])
    unused = len(set(best) - set(order))
    track = Track(os.path.splitext(os.path.basename(path))[0], "coco", "C1", kp, confidence, size,
                  "--image-size" if size else None, list(order), rule)
    return UserInput([track], "coco", COCO_JOINTS, (list(COCO_SYMMETRY[0]), list(COCO_SYMMETRY[1])),
                     f"{path}: COCO keypoint results, {len(order)} frames ({len(missing)} without a person, "
                     f"filled in) of {COCO_JOINTS} joints"
                     + (f"; {unused} images with a person not in the frame order, left out" if unused else ""))

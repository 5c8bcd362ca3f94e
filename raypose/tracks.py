"""A user's 2D tracks made ready for a run's members: mapped onto the run's 2D layout, gaps
filled from their neighbours in time, normalised by their own image size.

What was done to each track goes into the prediction's metadata, so a user can see which joints
were mapped or filled, and at which image size the pixels were read.
"""
from dataclasses import dataclass, field

import numpy as np

from .cameras import IMAGE_HEIGHT, IMAGE_WIDTH, normalize_screen
from .errors import UserError
from .gaps import fill_gaps, gap_summary
from .keypoints import mapping

DATASET_LAYOUTS = (None, "humaneva15")   # 2D in the training data's own layout: its image size is known
CONFIDENCE_THRESHOLD = 0.3


@dataclass
class Ready:
    """The tracks in the input's order, as `make_windows` takes them, with what was done to them."""
    keys: list = field(default_factory=list)         # (subject, action, camera)
    sequences: list = field(default_factory=list)    # (key, normalised (T, J, 2), None)
    filled: list = field(default_factory=list)       # (T, J) bool per track: joints filled in
    gaps: list = field(default_factory=list)         # (T, J) per track: frames to the joint's nearest observation
    info: dict = field(default_factory=dict)


def image_size(track, layout_name, where):
    """(w, h) of the images a track's pixels are in: the flag's or the file's, else the training
    data's own where the 2D is in its layout (HumanEva: 640x480); else the user's one line."""
    if track.image_size is not None:
        return tuple(float(v) for v in track.image_size), "given"
    if layout_name in DATASET_LAYOUTS:
        return (float(IMAGE_WIDTH), float(IMAGE_HEIGHT)), "the training data's"
    raise UserError(f"{where}: no image size in the file (layout {layout_name!r}); expected --image-size W H, "
                    "the pixel size of the images the keypoints were detected in")


def prepare(user, layout, input_path, threshold=CONFIDENCE_THRESHOLD, zoom=1.0):
    """`Ready` tracks of a `data.inputs.UserInput` for a run of `layout`, normalised 2D zoomed by
    `zoom` about the image centre (predict's field-of-view correction); one line for 2D the run
    cannot take, a track with no usable joint, or a missing image size."""
    to_run = mapping(user.layout_name, user.num_joints, layout.joints_2d)
    if to_run is None:
        raise UserError(f"{input_path}: 2D in layout {user.layout_name or 'unnamed'} with {user.num_joints} joints, "
                        f"and no mapping onto the {layout.joints_2d} joints the run was trained on (layout.json); "
                        "expected the run's own layout or COCO-17 keypoints for a 15-joint run")
    mapped = user.num_joints != layout.joints_2d
    ready = Ready(info={"input_layout": user.layout_name, "input_joints": user.num_joints,
                        "mapped": f"{user.layout_name} -> the run's {layout.joints_2d} joints" if mapped else None,
                        "confidence_threshold": threshold, "tracks": {}})
    for t in user.tracks:
        key = (t.subject, t.action, t.camera)
        where = f"{input_path}: {t.subject}/{t.action} camera {t.camera}"
        size, source = image_size(t, user.layout_name, where)
        kp, conf = to_run(t.keypoints, t.confidence)
        kp, mask, distance = fill_gaps(kp, conf, threshold, where) if len(kp) else (kp, np.zeros(kp.shape[:2], bool),
                                                                                   np.zeros(kp.shape[:2], int))
        ready.keys.append(key)
        ready.sequences.append((key, normalize_screen(kp, *size) * np.float32(zoom), None))
        ready.filled.append(mask)
        ready.gaps.append(distance)
        ready.info["tracks"][f"{t.subject}/{t.action}/{t.camera}"] = {
            "image_size": list(size), "image_size_from": source, **gap_summary(mask, distance)}
    if not any(len(kp) for _, kp, _ in ready.sequences):
        raise UserError(f"{input_path}: every track has 0 frames; expected at least one frame")
    return ready

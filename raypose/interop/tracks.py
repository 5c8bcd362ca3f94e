"""A user's 2D tracks made ready for a run's members: mapped onto the run's 2D layout, gaps
filled from their neighbours in time, normalised by their own image size.

What was done to each track goes into the prediction's metadata, so a user can see which joints
were mapped or filled, and at which image size the pixels were read.
"""
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from raypose.data.gaps import fill_gaps, gap_summary
from raypose.datasets.cameras import normalize_screen
from raypose.datasets.keypoints import COCO, layout_of, mapping
from raypose.errors import UserError

CONFIDENCE_THRESHOLD = 0.3


@dataclass
class Ready:
    """A user's tracks in the input's order, checked (their layout maps onto the run's, every one has
    an image size); their 2D is made ready one track at a time (`each`), so that predict never holds
    a second full-size copy of the input."""
    keys: list = field(default_factory=list)         # (subject, action, camera)
    info: dict = field(default_factory=dict)         # what was done; per track once it is done
    todo: deque = field(default_factory=deque)       # (Track, (w, h)) still to make ready
    to_run: object = None                            # the layout mapping (keypoints.mapping)
    threshold: float = CONFIDENCE_THRESHOLD
    zoom: float = 1.0
    where: str = ""

    def each(self):
        """Per track, in order: (key, normalised (T, J, 2) 2D zoomed about the image centre, (T, J)
        filled in, (T, J) frames to each joint's nearest observation, (w, h)). The user's arrays are
        let go as their track is taken: the input is read whole (its format is one pickle), but
        then shrinks while the output grows."""
        while self.todo:
            t, size = self.todo.popleft()
            key = (t.subject, t.action, t.camera)
            where = f"{self.where}: {t.subject}/{t.action} camera {t.camera}"
            kp, conf = self.to_run(t.keypoints, t.confidence)
            t.keypoints = t.confidence = None
            if len(kp):
                kp, mask, distance = fill_gaps(kp, conf, self.threshold, where)
            else:
                mask, distance = np.zeros(kp.shape[:2], bool), np.zeros(kp.shape[:2], int)
            self.info["tracks"]["/".join(key)].update(gap_summary(mask, distance))
            yield key, normalize_screen(kp, *size) * np.float32(self.zoom), mask, distance, size


def dataset_layouts(layout):
    """The 2D layout names (None: unnamed) of 2D in the run's training data's own layout, whose
    image size is then known: the run's 2D layout, else its dataset's name (HumanEva's before).
    Never COCO's: every detector's output is named so (a COCO JSON always is), from any video,
    even where the run was trained on COCO-ordered detections of its dataset."""
    own = layout.name_2d or layout.dataset_name
    return (None,) + ((own,) if own != COCO.name else ())


def image_size(track, layout, layout_name, where):
    """(w, h) of the images a track's pixels are in: the flag's or the file's, else the training
    data's own (`Layout.image_size` of the track's camera, or the one size all its cameras share;
    HumanEva: 640x480) where the 2D is in the run's own layout; else the user's one line."""
    if track.image_size is not None:
        return tuple(float(v) for v in track.image_size), track.image_size_from or "given"
    expected = "expected --image-size W H, the pixel size of the images the keypoints were detected in"
    if layout_name not in dataset_layouts(layout):
        raise UserError(f"{where}: no image size in the file (layout {layout_name!r}); {expected}")
    known = None if layout.dataset is None else layout.dataset["image_sizes"]
    if known is None or track.camera in known:
        size = layout.image_size(track.camera)
    elif len({tuple(v) for v in known.values()}) == 1:
        size = next(iter(known.values()))
    else:
        raise UserError(f"{where}: no image size in the file, and camera {track.camera!r} is none of the training "
                        f"data's cameras ({', '.join(sorted(known)) or 'none recorded'}) of one image size; {expected}")
    return tuple(float(v) for v in size), "the training data's"


def prepare(user, layout, input_path, threshold=CONFIDENCE_THRESHOLD, zoom=1.0):
    """`Ready` tracks of a `data.inputs.UserInput` for a run of `layout`, normalised 2D zoomed by
    `zoom` about the image centre (predict's field-of-view correction); one line for 2D the run
    cannot take, a missing image size, or a file whose tracks all have 0 frames: all checked before
    any track is made ready (a track with no usable joint is found when its turn comes)."""
    run_2d = layout.name_2d or layout_of(layout.joints_2d, layout.left_2d, layout.right_2d)
    to_run = mapping(user.layout_name, user.num_joints, layout.joints_2d, run_2d, input_path)
    if to_run is None:
        raise UserError(f"{input_path}: 2D in layout {user.layout_name or 'unnamed'} with {user.num_joints} joints, "
                        f"and no mapping onto the {layout.joints_2d} joints the run was trained on (layout.json); "
                        "expected the run's own layout or COCO-17 keypoints for a HumanEva-15 run")
    mapped = user.num_joints != layout.joints_2d
    ready = Ready(info={"input_layout": user.layout_name, "input_joints": user.num_joints,
                        "mapped": f"{user.layout_name} -> the run's {layout.joints_2d} joints" if mapped else None,
                        "confidence_threshold": threshold, "tracks": {}},
                  to_run=to_run, threshold=threshold, zoom=zoom, where=str(input_path))
    for t in user.tracks:
        where = f"{input_path}: {t.subject}/{t.action} camera {t.camera}"
        size, source = image_size(t, layout, user.layout_name, where)
        ready.keys.append((t.subject, t.action, t.camera))
        ready.todo.append((t, size))
        ready.info["tracks"][f"{t.subject}/{t.action}/{t.camera}"] = {
            "image_size": list(size), "image_size_from": source,
            **({"image_ids": t.frame_ids, "frame_order": t.frame_order} if t.frame_ids is not None else {})}
    if not any(len(t.keypoints) for t in user.tracks):
        raise UserError(f"{input_path}: every track has 0 frames; expected at least one frame")
    return ready

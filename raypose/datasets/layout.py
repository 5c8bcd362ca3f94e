"""What a run needs to read its inputs back: the 2D joints and their symmetry, the 3D skeleton,
and the dataset's frame rate and image sizes.

Saved with the run as `layout.json` (as nanoGPT saves `model_args`), so `predict` checks a
user's 2D against what the members were trained on instead of guessing from the input file.
A layout.json from before datasets other than HumanEva has no `dataset`: it reads as HumanEva.
"""
import json
import math
from dataclasses import dataclass, field

import numpy as np

from raypose.datasets.cameras import FPS as HUMANEVA_FPS
from raypose.datasets.cameras import IMAGE_HEIGHT, IMAGE_WIDTH
from raypose.datasets.skeleton import HUMANEVA, Skeleton, check_symmetry, flip_permutation
from raypose.errors import UserError


@dataclass(frozen=True)
class Layout:
    joints_2d: int
    left_2d: tuple
    right_2d: tuple
    skeleton: Skeleton = HUMANEVA
    # {"name", "fps", "image_sizes": {camera name: [w, h]}, ...}; None: HumanEva (runs from before datasets)
    dataset: dict | None = field(default=None, hash=False)
    name_2d: str | None = None     # the 2D layout's name (keypoints.LAYOUTS) where known

    @property
    def joints_3d(self):
        return self.skeleton.num_joints

    def flip_2d(self):
        """The 2D joint order after a horizontal flip."""
        return flip_permutation(self.joints_2d, self.left_2d, self.right_2d)

    @property
    def same_joints(self):
        """Whether the 2D joints are the 3D skeleton's, in its order (2D fits need that)."""
        return self.joints_2d == self.skeleton.num_joints

    @property
    def fps(self):
        return HUMANEVA_FPS if self.dataset is None else self.dataset["fps"]

    @property
    def dataset_name(self):
        return "humaneva15" if self.dataset is None else self.dataset["name"]

    def image_size(self, camera_name):
        """(w, h) in pixels of the training data's images from that camera."""
        if self.dataset is None:
            return IMAGE_WIDTH, IMAGE_HEIGHT
        sizes = self.dataset["image_sizes"]
        if camera_name not in sizes:
            raise UserError(f"layout.json: no image size for camera {camera_name!r} of dataset "
                            f"{self.dataset['name']!r}; expected one of {sorted(sizes)}")
        return tuple(sizes[camera_name])

    def to_dict(self):
        d = {"joints_2d": self.joints_2d, "left_2d": list(self.left_2d), "right_2d": list(self.right_2d),
             "skeleton": self.skeleton.to_dict()}
        if self.dataset is not None:
            d["dataset"] = self.dataset
        if self.name_2d is not None:
            d["name_2d"] = self.name_2d
        return d

    @classmethod
    def from_dict(cls, d, source="layout"):
        """The layout of `to_dict`, its skeleton and dataset checked; the user's one line otherwise."""
        try:
            skeleton = Skeleton.from_dict(d["skeleton"], f"{source}: skeleton")
            left, right = check_symmetry((d["left_2d"], d["right_2d"]), int(d["joints_2d"]),
                                         f"{source}: left_2d/right_2d")
            return cls(int(d["joints_2d"]), tuple(left), tuple(right), skeleton,
                       _dataset(d.get("dataset"), source), _name(d.get("name_2d"), source))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise UserError(f"{source}: malformed layout ({type(e).__name__}: {e}); expected joints_2d, "
                            "left_2d, right_2d and skeleton") from None

    @classmethod
    def of(cls, joints_2d, symmetry, skeleton=HUMANEVA, dataset=None, name_2d=None):
        left, right = symmetry
        return cls(int(joints_2d), tuple(int(j) for j in left), tuple(int(j) for j in right), skeleton,
                   _dataset(dataset, "layout"), _name(name_2d, "layout"))

    def check_2d(self, joints, where):
        """A user's 2D must have the run's joint count (in the run's order: see the README)."""
        if joints != self.joints_2d:
            raise UserError(f"{where} has {joints} joints; expected {self.joints_2d} as the run was "
                            f"trained on (layout.json)")


def _name(value, source):
    if value is not None and not isinstance(value, str):
        raise UserError(f"{source}: name_2d is {value!r}; expected a 2D layout name or none")
    return value


def _dataset(d, source):
    """The dataset dict checked (name, fps > 0, image sizes of two positive numbers) and made plain
    JSON (so layout.json round-trips it exactly), or None."""
    if d is None:
        return None
    expected = 'expected {"name": str, "fps": number > 0, "image_sizes": {camera: [w, h]}}'
    try:
        d = json.loads(json.dumps(d, default=_plain))
    except (TypeError, ValueError):
        raise UserError(f"{source}: dataset {str(d)[:80]} is not plain data; {expected}") from None
    if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("image_sizes"), dict):
        raise UserError(f"{source}: dataset is {str(d)[:80]}; {expected}")
    if not _positive(d.get("fps")):
        raise UserError(f"{source}: dataset fps is {d.get('fps')!r}; {expected}")
    for cam, wh in d["image_sizes"].items():
        if not isinstance(wh, list) or len(wh) != 2 or not all(_positive(v) for v in wh):
            raise UserError(f"{source}: image size of camera {cam!r} is {wh!r}; {expected}")
    return d


def _positive(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and math.isfinite(v)


def _plain(v):
    """numpy scalars and arrays as Python numbers and lists, for json.dumps."""
    if isinstance(v, (np.generic, np.ndarray)):
        return v.tolist()
    raise TypeError(type(v).__name__)

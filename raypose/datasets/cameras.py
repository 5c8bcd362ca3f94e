"""Cameras: extrinsics per subject, world->camera transform, image sizes and 2D normalisation.

A dataset's cameras are a CameraSet: per subject, the cameras in the order of the 2D arrays.
HumanEva's (VideoPose3D's table: orientation quaternion w,x,y,z camera-to-world, centre in mm,
640 x 480 images, no intrinsics) and Human3.6M's (raypose.datasets.h36m) are built in; others come from a
JSON file (`read_cameras`). 3D that is already in each camera's frame needs only image sizes.

The module-level `camera`, `world_to_camera` and the constants are HumanEva's, as before.
"""
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from raypose.datasets import h36m
from raypose.errors import UserError

CAMERA_NAMES = ("C1", "C2", "C3")
IMAGE_WIDTH, IMAGE_HEIGHT = 640, 480
FPS = 60

_S1 = (
    ([0.424207, -0.4983646, -0.5802981, 0.4847012], [4062.227, 663.2477, 1528.397]),
    ([0.6503354, -0.7481602, -0.0919284, 0.0941766], [844.8131, -3805.2092, 1504.9929]),
    ([0.0664734, -0.0690535, 0.7416416, -0.6639132], [-797.67377, 3916.3174, 1433.6602]),
)
_S2 = (
    ([0.4214752, -0.4961493, -0.5838273, 0.4851187], [4112.9121, 626.4929, 1545.2988]),
    ([0.6501393, -0.7476588, -0.0954617, 0.0959808], [923.5740, -3877.9243, 1504.5518]),
    ([0.0699353, -0.0712403, 0.7421637, -0.662742], [-781.4915, 3838.8853, 1444.9929]),
)
EXTRINSICS = {"S1": _S1, "S2": _S2, "S3": _S1}


def subject_base(subject):
    """'Train/S1' -> 'S1': cameras belong to the person's session, not to the split."""
    return subject.split("/")[-1]


def quaternion_to_matrix(q):
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


@dataclass(frozen=True)
class Camera:
    """One camera: image size in pixels and, for world 3D, its pose (orientation w,x,y,z
    camera-to-world, centre in metres); optional pinhole intrinsics (focal, centre) in pixels."""
    name: str
    res_w: int
    res_h: int
    orientation: tuple | None = None
    translation: tuple | None = None
    focal: tuple | None = None
    centre: tuple | None = None

    @property
    def has_pose(self):
        return self.orientation is not None and self.translation is not None

    def to_camera(self, points_world):
        """X_cam = R^T (X_world - t), points (..., 3) in metres, float64 arithmetic, float32 out."""
        if not self.has_pose:
            raise UserError(f"camera {self.name}: no orientation/translation; expected extrinsics to "
                            "transform world 3D (or 3D given per camera)")
        R, t = quaternion_to_matrix(self.orientation), np.asarray(self.translation, dtype=np.float64)
        return ((np.asarray(points_world, dtype=np.float64) - t) @ R).astype(np.float32)

    def to_dict(self):
        d = {"name": self.name, "res_w": self.res_w, "res_h": self.res_h}
        for key in ("orientation", "translation", "focal", "centre"):
            if getattr(self, key) is not None:
                d[key] = list(getattr(self, key))
        if self.translation is not None:
            d["units"] = "m"
        return d


@dataclass(frozen=True)
class CameraSet:
    """A dataset's cameras: subject (without a 'Train/' prefix) -> cameras in the 2D's order.

    in_camera_frame: the 3D is given per camera already, so only the image sizes are used."""
    name: str
    per_subject: dict
    in_camera_frame: bool = False

    def cameras(self, subject, where="cameras"):
        """A subject's cameras, keyed by its full name ('Train/S1') or by the person ('S1')."""
        for key in dict.fromkeys((subject, subject_base(subject))):
            if key in self.per_subject:
                return self.per_subject[key]
        tried = " or ".join(repr(k) for k in dict.fromkeys((subject, subject_base(subject))))
        raise UserError(f"{where}: no cameras for subject {subject!r} in {self.name} (looked up as {tried}); "
                        f"expected a key {tried}, the file has {', '.join(sorted(self.per_subject))}")

    def get(self, subject, index, where="cameras"):
        cams = self.cameras(subject, where)
        if not 0 <= index < len(cams):
            raise UserError(f"{where}: subject {subject!r} uses camera C{index + 1}, but {self.name} has "
                            f"{len(cams)} for it; expected C1..C{len(cams)}")
        return cams[index]

    def names(self, subject):
        return tuple(f"C{i + 1}" for i in range(len(self.cameras(subject))))

    def to_dict(self):
        return {"name": self.name, "in_camera_frame": self.in_camera_frame,
                "subjects": {s: [c.to_dict() for c in cams] for s, cams in self.per_subject.items()}}

    @classmethod
    def from_dict(cls, d, where="cameras"):
        try:
            subjects = {str(s): _cameras_of(cams, f"{where}: subjects[{s!r}]")
                        for s, cams in d["subjects"].items()}
            return cls(str(d["name"]), subjects, bool(d.get("in_camera_frame", False)))
        except (KeyError, TypeError, AttributeError) as e:
            raise UserError(f"{where}: malformed cameras ({type(e).__name__}: {e}); expected name and "
                            "subjects") from None


def _humaneva():
    return {s: tuple(Camera(f"C{i + 1}", IMAGE_WIDTH, IMAGE_HEIGHT, tuple(q), tuple(float(v / 1000.0) for v in t))
                     for i, (q, t) in enumerate(ext)) for s, ext in EXTRINSICS.items()}


def _h36m():
    return {s: tuple(Camera(f"C{i + 1}", *h36m.INTRINSICS[i]["res"], tuple(q), tuple(float(v / 1000.0) for v in t),
                            tuple(h36m.INTRINSICS[i]["focal"]), tuple(h36m.INTRINSICS[i]["centre"]))
                     for i, (q, t) in enumerate(ext)) for s, ext in h36m.EXTRINSICS.items()}


HUMANEVA_CAMERAS = CameraSet("HumanEva-I", _humaneva())
H36M_CAMERAS = CameraSet("Human3.6M", _h36m())


def camera(subject, index):
    """(R camera-to-world 3x3, t camera centre in metres) of HumanEva's table."""
    base = subject_base(subject)
    if base not in EXTRINSICS:
        raise UserError(f"subject {subject!r}: no HumanEva camera extrinsics, expected one of "
                        f"{sorted(EXTRINSICS)} after the split prefix")
    if not 0 <= index < len(CAMERA_NAMES):
        raise UserError(f"subject {subject!r}: camera index {index} out of range, expected 0..2")
    q, t_mm = EXTRINSICS[base][index]
    return quaternion_to_matrix(q), np.asarray(t_mm, dtype=np.float64) / 1000.0


def world_to_camera(points, subject, index):
    """X_cam = R^T (X_world - t), points (..., 3) in metres, HumanEva's cameras."""
    R, t = camera(subject, index)
    return ((np.asarray(points, dtype=np.float64) - t) @ R).astype(np.float32)


# ---- a cameras file -------------------------------------------------------------------------------

_UNITS = {"m": 1.0, "mm": 1000.0}


def _vector(cam, key, n, where):
    value = cam.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise UserError(f"{where}: {key!r} is {value!r}; expected {n} finite numbers")
    return tuple(float(v) for v in value)


def _size(cam, key, where):
    value = cam.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where}: {key!r} is {value!r}; expected a positive integer (pixels)")
    return value


def _camera(cam, index, where):
    """One camera entry of a cameras file or of a saved CameraSet, checked."""
    if not isinstance(cam, dict):
        raise UserError(f"{where}: {type(cam).__name__}; expected an object with res_w, res_h and, for "
                        "world 3D, orientation and translation")
    units = cam.get("units", "m")
    if units not in _UNITS:
        raise UserError(f"{where}: units {units!r}; expected 'm' or 'mm'")
    posed = [k for k in ("orientation", "translation") if k in cam]
    if len(posed) == 1:
        missing = ({"orientation", "translation"} - set(posed)).pop()
        raise UserError(f"{where}: missing {missing!r}; expected both orientation and translation, or neither "
                        "(3D per camera)")
    q = t = None
    if posed:
        q = _vector(cam, "orientation", 4, where)
        if math.sqrt(sum(v * v for v in q)) < 1e-12:
            raise UserError(f"{where}: orientation {list(q)} has zero length; expected a unit quaternion w, x, y, z")
        t = tuple(v / _UNITS[units] for v in _vector(cam, "translation", 3, where))
    focal = _vector(cam, "focal", 2, where) if "focal" in cam else None
    centre = _vector(cam, "centre", 2, where) if "centre" in cam else None
    name = cam.get("name", f"C{index + 1}")
    return Camera(str(name), _size(cam, "res_w", where), _size(cam, "res_h", where), q, t, focal, centre)


def _cameras_of(cams, where):
    if not isinstance(cams, list) or not cams:
        raise UserError(f"{where}: expected a non-empty list of cameras")
    return tuple(_camera(c, i, f"{where}[{i}]") for i, c in enumerate(cams))


def read_cameras(path):
    """A CameraSet from JSON {subject: [{"name"?, "orientation": [w, x, y, z] camera-to-world,
    "translation": [x, y, z], "units": "m" | "mm" (default m), "res_w", "res_h", "focal"?, "centre"?}]}.

    Cameras without orientation and translation serve 3D given per camera (image sizes only)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: cameras file not found; expected a JSON file of cameras per subject")
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{path}: unreadable cameras file ({type(e).__name__}: {e}); expected JSON") from None
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{path}: expected a JSON object subject -> list of cameras")
    subjects = {str(s): _cameras_of(cams, f"{path}: [{s!r}]") for s, cams in raw.items()}
    posed = {c.has_pose for cams in subjects.values() for c in cams}
    if len(posed) > 1:
        raise UserError(f"{path}: some cameras have orientation/translation and some not; expected all "
                        "(world 3D) or none (3D per camera)")
    return CameraSet(path, subjects, in_camera_frame=posed == {False})


def check_focals(d, where):
    """{camera: focal length > 0} under "focal" of a run's cameras.json, or the user's one line."""
    focal = d.get("focal") if isinstance(d, dict) else None
    if not (isinstance(focal, dict) and focal and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      and 0 < v < math.inf for v in focal.values())):
        raise UserError(f"{where}: no focal lengths {{camera: f > 0}} under 'focal'; expected the file raypose "
                        "train wrote")
    return focal


def normalize_screen(x, w=IMAGE_WIDTH, h=IMAGE_HEIGHT):
    """Pixels -> [-1, 1] along x keeping the aspect ratio, as VideoPose3D does."""
    return (np.asarray(x, dtype=np.float32) / w * 2 - np.array([1, h / w], dtype=np.float32)).astype(np.float32)


def image_coordinates(x, w=IMAGE_WIDTH, h=IMAGE_HEIGHT):
    return ((np.asarray(x, dtype=np.float32) + np.array([1, h / w], dtype=np.float32)) * w / 2).astype(np.float32)


def project(points_cam, focal, center):
    """Pinhole projection of camera-frame points (..., 3) to pixels (..., 2)."""
    p = np.asarray(points_cam, dtype=np.float64)
    return (p[..., :2] / p[..., 2:3] * np.asarray(focal) + np.asarray(center)).astype(np.float32)

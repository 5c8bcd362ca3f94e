"""HumanEva camera extrinsics, world->camera transform and 2D normalisation.

Extrinsics come from VideoPose3D's HumanEva table (orientation quaternion w,x,y,z camera-to-world,
centre in mm). HumanEva gives no intrinsics; only the image size is known.
"""
import numpy as np

from .errors import UserError

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


def camera(subject, index):
    """(R camera-to-world 3x3, t camera centre in metres) for a subject key and camera index."""
    base = subject_base(subject)
    if base not in EXTRINSICS:
        raise UserError(f"subject {subject!r}: no HumanEva camera extrinsics, expected one of "
                        f"{sorted(EXTRINSICS)} after the split prefix")
    if not 0 <= index < len(CAMERA_NAMES):
        raise UserError(f"subject {subject!r}: camera index {index} out of range, expected 0..2")
    q, t_mm = EXTRINSICS[base][index]
    return quaternion_to_matrix(q), np.asarray(t_mm, dtype=np.float64) / 1000.0


def world_to_camera(points, subject, index):
    """X_cam = R^T (X_world - t), points (..., 3) in metres."""
    R, t = camera(subject, index)
    return ((np.asarray(points, dtype=np.float64) - t) @ R).astype(np.float32)


def normalize_screen(x, w=IMAGE_WIDTH, h=IMAGE_HEIGHT):
    """Pixels -> [-1, 1] along x keeping the aspect ratio, as VideoPose3D does."""
    return (np.asarray(x, dtype=np.float32) / w * 2 - np.array([1, h / w], dtype=np.float32)).astype(np.float32)


def image_coordinates(x, w=IMAGE_WIDTH, h=IMAGE_HEIGHT):
    return ((np.asarray(x, dtype=np.float32) + np.array([1, h / w], dtype=np.float32)) * w / 2).astype(np.float32)


def project(points_cam, focal, center):
    """Pinhole projection of camera-frame points (..., 3) to pixels (..., 2)."""
    p = np.asarray(points_cam, dtype=np.float64)
    return (p[..., :2] / p[..., 2:3] * np.asarray(focal) + np.asarray(center)).astype(np.float32)

"""Named 2D keypoint layouts (COCO-17, HumanEva-15, Human3.6M-17) and the mapping from a
detector's COCO-17 onto HumanEva-15.

Detectors give COCO's 17 keypoints, while a run trained on HumanEva's 15 joints takes 15. The
mapping keeps the 12 limb joints as they are and derives the other three (pelvis, thorax, head),
so those detections reach a HumanEva-trained run; scripts/bench_coco_mapping.py measures what
the derived joints cost.
"""
from dataclasses import dataclass

import numpy as np

from raypose.datasets import h36m
from raypose.datasets.skeleton import COCO_LEFT, COCO_RIGHT, HUMANEVA, LEFT, RIGHT
from raypose.errors import UserError


@dataclass(frozen=True)
class KeypointLayout:
    """A 2D layout: joint names in order, and the left/right lists a horizontal flip swaps."""
    name: str
    names: tuple
    symmetry: tuple     # (left, right)

    @property
    def num_joints(self):
        return len(self.names)


COCO = KeypointLayout(
    "coco",
    ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
     "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"),
    (tuple(COCO_LEFT), tuple(COCO_RIGHT)),
)
HUMANEVA15 = KeypointLayout("humaneva15", HUMANEVA.joint_names, (tuple(LEFT), tuple(RIGHT)))
H36M = KeypointLayout("h36m", h36m.SKELETON.joint_names, (h36m.SKELETON.left, h36m.SKELETON.right))
LAYOUTS = {"coco": COCO, "humaneva15": HUMANEVA15, "h36m": H36M}

# (HumanEva joint, COCO keypoint) pairs that are the same point: shoulders to ankles.
DIRECT = ((2, 5), (3, 7), (4, 9), (5, 6), (6, 8), (7, 10), (8, 11), (9, 13), (10, 15), (11, 12), (12, 14), (13, 16))
FACE = (0, 1, 2, 3, 4)          # COCO nose, eyes, ears
HIPS = (11, 12)                 # COCO -> HumanEva pelvis (0)
SHOULDERS = (5, 6)              # COCO -> HumanEva thorax (1)
PELVIS, THORAX, HEAD = 0, 1, 14


def coco_to_humaneva(kp, conf=None):
    """COCO-17 (..., 17, 2) pixels (NaN: missing) and optional (..., 17) confidences ->
    HumanEva-15 ((..., 15, 2), (..., 15) or None).

    Limb joints map one to one. Pelvis = midpoint of the hips, thorax = midpoint of the shoulders
    (NaN if either source is). Head = the plain mean of the available face points (nose, eyes,
    ears; one with a NaN coordinate is left out; NaN only if all five are), not raised toward the
    top of the head: on the synthetic people the face points average ~5 cm in front of and ~3 cm
    below the head joint (5.9 px off in 2D on average: benchmarks/coco_mapping.json), and most of
    that gap is the forward part, whose image depends on the view, not a raise; and those points
    are our own constants (synthetic.FACE_OFFSETS), so a fit on them would not carry over to a
    detector. scripts/bench_coco_mapping.py measures the plain mean's cost.
    A derived joint's confidence is the minimum of its sources' (for the head: of the face points
    in the mean; 0 where there is none).
    """
    kp = np.asarray(kp)
    if kp.ndim < 2 or kp.shape[-2:] != (COCO.num_joints, 2):
        raise UserError(f"keypoints: shape {kp.shape}; expected (frames, {COCO.num_joints}, 2) COCO keypoints")
    dtype = np.result_type(kp.dtype, np.float32)
    kp = kp.astype(dtype, copy=False)
    out = np.empty(kp.shape[:-2] + (HUMANEVA15.num_joints, 2), dtype)
    he, co = (list(x) for x in zip(*DIRECT))
    out[..., he, :] = kp[..., co, :]
    out[..., PELVIS, :] = (kp[..., HIPS[0], :] + kp[..., HIPS[1], :]) / 2
    out[..., THORAX, :] = (kp[..., SHOULDERS[0], :] + kp[..., SHOULDERS[1], :]) / 2
    face = kp[..., FACE, :]
    seen = np.isfinite(face).all(-1)                       # (..., 5)
    count = seen.sum(-1)
    total = np.where(seen[..., None], face, 0).sum(-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[..., HEAD, :] = np.where(count[..., None] > 0, total / count[..., None], np.nan)
    if conf is None:
        return out, None
    conf = np.asarray(conf)
    if conf.shape != kp.shape[:-1]:
        raise UserError(f"confidences: shape {conf.shape}; expected {kp.shape[:-1]} (one per COCO keypoint)")
    cdtype = np.result_type(conf.dtype, np.float32)
    conf = conf.astype(cdtype, copy=False)
    c = np.empty(kp.shape[:-2] + (HUMANEVA15.num_joints,), cdtype)
    c[..., he] = conf[..., co]
    c[..., PELVIS] = np.minimum(conf[..., HIPS[0]], conf[..., HIPS[1]])
    c[..., THORAX] = np.minimum(conf[..., SHOULDERS[0]], conf[..., SHOULDERS[1]])
    c[..., HEAD] = np.where(count > 0, np.where(seen, conf[..., FACE], np.inf).min(-1), 0)
    return out, c


def _identity(kp, conf=None):
    return kp, conf


_MAPPINGS = {("coco", "humaneva15"): coco_to_humaneva}   # (source layout, run's layout) -> function


def layout_of(joints, left, right):
    """The name of the known layout with these joints and this left/right symmetry, or None: names a
    run's 2D that was trained before runs recorded it (e.g. on COCO-ordered detections)."""
    sym = (tuple(int(j) for j in left), tuple(int(j) for j in right))
    return next((name for name, k in LAYOUTS.items() if k.num_joints == joints
                 and (tuple(k.symmetry[0]), tuple(k.symmetry[1])) == sym), None)


def mapping(src_layout_name, num_joints_src, dst_joints, dst_layout_name=None, where="layout_name"):
    """The function (kp, conf=None) -> (kp, conf) that maps 2D in the source layout onto a run's
    2D layout (`dst_joints` joints, named `dst_layout_name` where the run knows it), or None where
    no mapping exists. Where both layouts are named, the names decide: the same name is identity,
    COCO-17 onto HumanEva-15 is coco_to_humaneva, anything else None (COCO-17 is not H36M-17
    though both have 17 joints). Where either is unnamed, equal joint counts are taken as the run's
    own layout, and COCO-17 onto 15 joints as HumanEva-15; but COCO-17 onto a run's unnamed 17 is
    refused (`where`: the input), as that run may have been trained on H36M-ordered 17. A known
    layout_name whose joint count is not the keypoints' is refused, as the file contradicts itself."""
    known = LAYOUTS.get(src_layout_name)
    if known is not None and known.num_joints != num_joints_src:
        raise UserError(f"layout_name: {src_layout_name!r} has {known.num_joints} joints but the keypoints have "
                        f"{num_joints_src}; expected a layout_name that matches the keypoints")
    if src_layout_name == COCO.name and dst_layout_name is None and dst_joints == COCO.num_joints:
        raise UserError(f"{where}: COCO-17 keypoints, but the run's 2D layout is unknown (its layout.json names "
                        "none for its 17 joints); expected 2D in the run's own layout: retrain on 2D whose "
                        "metadata names its layout_name (of VideoPose3D's Human3.6M detections only "
                        "data_2d_h36m_detectron_pt_coco.npz is COCO-ordered; CPN's are in Human3.6M's order), "
                        "or, if the run's 2D was COCO-ordered, give the keypoints as an npz without layout_name")
    if src_layout_name is not None and dst_layout_name is not None:
        if src_layout_name == dst_layout_name:
            return _identity if num_joints_src == dst_joints else None
        return _MAPPINGS.get((src_layout_name, dst_layout_name))
    if num_joints_src == dst_joints:
        return _identity
    return next((f for (src, dst), f in _MAPPINGS.items()
                 if src == src_layout_name and LAYOUTS[dst].num_joints == dst_joints), None)

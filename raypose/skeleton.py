"""Skeletons: joint names, parents and the left/right pairs that a horizontal flip swaps.

HumanEva's 15 joints in VideoPose3D's order are built in; the module constants (PARENTS, LEFT,
RIGHT, ...) are that skeleton's, for the code that only knows HumanEva so far.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    name: str
    joint_names: tuple
    parents: tuple      # parent of each joint, -1 for the root; parents come before children
    left: tuple
    right: tuple

    @property
    def num_joints(self):
        return len(self.parents)

    def flip_permutation(self):
        return flip_permutation(self.num_joints, self.left, self.right)

    def to_dict(self):
        return {"name": self.name, "joint_names": list(self.joint_names), "parents": list(self.parents),
                "left": list(self.left), "right": list(self.right)}

    @classmethod
    def from_dict(cls, d):
        return cls(str(d["name"]), tuple(d["joint_names"]), tuple(int(p) for p in d["parents"]),
                   tuple(int(j) for j in d["left"]), tuple(int(j) for j in d["right"]))


HUMANEVA = Skeleton(
    "humaneva15",
    ("pelvis", "thorax", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
     "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle", "head"),
    (-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1),
    (2, 3, 4, 8, 9, 10),
    (5, 6, 7, 11, 12, 13),
)
# COCO's 17 keypoints (nose, eyes, ears, shoulders, elbows, wrists, hips, knees, ankles): a 2D layout
COCO_LEFT = [1, 3, 5, 7, 9, 11, 13, 15]
COCO_RIGHT = [2, 4, 6, 8, 10, 12, 14, 16]

JOINT_NAMES = HUMANEVA.joint_names
NUM_JOINTS = HUMANEVA.num_joints
PARENTS = np.array(HUMANEVA.parents)
LEFT = list(HUMANEVA.left)
RIGHT = list(HUMANEVA.right)
ROOT = 0


def flip_permutation(num_joints=NUM_JOINTS, left=LEFT, right=RIGHT):
    """Joint order after a horizontal flip: left and right swap places."""
    perm = np.arange(num_joints)
    perm[list(left)] = right
    perm[list(right)] = left
    return perm


def mirror(poses, perm):
    """Mirrored poses (..., J, 2 or 3), numpy or torch: x negated, joints reordered by `perm`
    (a flip_permutation). Works for normalised 2D (x centred on 0) and camera-frame 3D; a second
    mirror undoes the first."""
    if hasattr(poses, "detach"):   # torch: index with a tensor on the poses' device
        import torch
        out = poses[..., torch.as_tensor(perm, device=poses.device), :].clone()
    else:
        out = np.array(poses)[..., perm, :]
    out[..., 0] *= -1
    return out


def bone_lengths(poses, parents=PARENTS):
    """(..., J - 1) length of the bone from each joint but the root to its parent."""
    poses = np.asarray(poses)
    parents = np.asarray(parents)
    return np.linalg.norm(poses[..., 1:, :] - poses[..., parents[1:], :], axis=-1)

"""The 15-joint HumanEva skeleton in VideoPose3D's joint order."""
import numpy as np

JOINT_NAMES = (
    "pelvis", "thorax",
    "l_shoulder", "l_elbow", "l_wrist",
    "r_shoulder", "r_elbow", "r_wrist",
    "l_hip", "l_knee", "l_ankle",
    "r_hip", "r_knee", "r_ankle",
    "head",
)
NUM_JOINTS = 15
PARENTS = np.array([-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1])
LEFT = [2, 3, 4, 8, 9, 10]
RIGHT = [5, 6, 7, 11, 12, 13]
ROOT = 0


def flip_permutation(num_joints=NUM_JOINTS, left=LEFT, right=RIGHT):
    """Joint order after a horizontal flip: left and right swap places."""
    perm = np.arange(num_joints)
    perm[list(left)] = right
    perm[list(right)] = left
    return perm


def flip(poses, left=LEFT, right=RIGHT):
    """Mirror poses (..., J, 2 or 3): negate x and swap left/right joints.

    Works for normalised 2D (x centred on 0) and camera-frame 3D; a second flip undoes the first.
    """
    out = np.array(poses, copy=True)
    out[..., 0] *= -1
    return out[..., flip_permutation(out.shape[-2], left, right), :]


def bone_lengths(poses):
    """Length of each joint's bone to its parent, (..., J); the root gets 0."""
    poses = np.asarray(poses)
    parents = np.where(PARENTS < 0, 0, PARENTS)
    return np.linalg.norm(poses - poses[..., parents, :], axis=-1)

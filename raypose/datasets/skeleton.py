"""Skeletons: joint names, parents and the left/right pairs that a horizontal flip swaps.

HumanEva's 15 joints in VideoPose3D's order are built in; a dataset's own skeleton comes from its
metadata or a small file (`read_skeleton`) and is checked once, here, so every module downstream
may take its joint count, flip and bones as given. The module constants (PARENTS, LEFT, RIGHT, ...)
are HumanEva's, for the code that only knows HumanEva so far.
"""
import json
import os
from dataclasses import dataclass

import numpy as np

from raypose.errors import UserError

FILE_KEYS = "parents, joints_left, joints_right and optionally joint_names"


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

    def validate(self, where="skeleton"):
        """self, or the user's one line: a tree rooted at joint 0 with every parent before its child,
        left/right lists of one length that neither overlap nor leave the joints, one name a joint."""
        _check_tree(self.parents, where)
        _check_sides(tuple(self.left), tuple(self.right), self.num_joints, where)
        if len(self.joint_names) != self.num_joints:
            raise UserError(f"{where}: {len(self.joint_names)} joint names for {self.num_joints} joints "
                            "(the length of parents); expected one name per joint")
        if len(set(self.joint_names)) != len(self.joint_names):
            twice = sorted({n for n in self.joint_names if self.joint_names.count(n) > 1})
            raise UserError(f"{where}: joint names {twice} occur more than once; expected distinct names")
        return self

    def to_dict(self):
        return {"name": self.name, "joint_names": list(self.joint_names), "parents": list(self.parents),
                "left": list(self.left), "right": list(self.right)}

    @classmethod
    def from_dict(cls, d, where="skeleton", name="custom"):
        """A checked Skeleton from `to_dict`'s form or a skeleton file's ({"parents", "joints_left",
        "joints_right", ["joint_names"], ["name"]}); joint names default to j0 .. jN-1."""
        if not isinstance(d, dict):
            raise UserError(f"{where}: a {type(d).__name__}; expected a dict with {FILE_KEYS}")
        parents = _ints(_get(d, where, "parents"), where, "parents")
        left = _ints(_get(d, where, "left", "joints_left"), where, "joints_left")
        right = _ints(_get(d, where, "right", "joints_right"), where, "joints_right")
        names = d.get("joint_names")
        if names is None:
            names = [f"j{j}" for j in range(len(parents))]
        elif isinstance(names, str) or not hasattr(names, "__len__"):
            raise UserError(f"{where}: joint_names is {_show(names)}; expected a list of names")
        names = tuple(str(n) for n in (names.tolist() if isinstance(names, np.ndarray) else names))
        return cls(str(d.get("name") or name), names, parents, left, right).validate(where)


def _get(d, where, *keys):
    for k in keys:
        if k in d:
            return d[k]
    raise UserError(f"{where}: no {keys[-1]!r}; expected {FILE_KEYS}")


def _ints(value, where, key):
    """A 1-D list of integers as a tuple of ints, or the user's one line. A boolean is refused, not
    read as 0 or 1 (numpy would turn [-1, true, 1] into [-1, 1, 1])."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in value):
        raise UserError(f"{where}: {key} is {_show(value)}, which holds a boolean; expected a list of joint "
                        "indices (integers)")
    try:
        arr = np.asarray(value)
        ok = arr.ndim == 1 and arr.dtype.kind in "iuf" and bool(np.all(np.mod(arr, 1) == 0))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{where}: {key} is {_show(value)}; expected a list of joint indices (integers)")
    return tuple(int(v) for v in arr)


def _show(value):
    """A value for a one-line message: short, no line breaks."""
    if isinstance(value, np.ndarray) and value.ndim > 1:
        return f"an array of shape {value.shape}"
    text = " ".join(repr(value.tolist() if isinstance(value, np.ndarray) else value).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _check_tree(parents, where):
    """parents[0] == -1 and 0 <= parents[j] < j for every other joint."""
    n = len(parents)
    if n == 0:
        raise UserError(f"{where}: parents is empty; expected one parent per joint, -1 for the root")
    roots = [j for j, p in enumerate(parents) if p == -1]
    if parents[0] != -1 or len(roots) != 1:
        raise UserError(f"{where}: roots (parent -1) at joints {roots}; expected one root, joint 0")
    for j, p in enumerate(parents[1:], 1):
        if not 0 <= p < n:
            raise UserError(f"{where}: joint {j}'s parent {p} is out of range; expected a joint in 0..{n - 1}")
    for j, p in enumerate(parents[1:], 1):
        if p >= j:
            loop = _cycle(parents, j)
            what = f"the parents form a cycle through joints {loop}" if loop else \
                f"joint {j}'s parent {p} comes after it"
            raise UserError(f"{where}: {what}; expected a tree rooted at joint 0 with every parent before its child")


def _cycle(parents, j):
    """The joints of the loop reached by following parents from j, or None if it reaches the root."""
    seen = []
    while j != -1 and j not in seen:
        seen.append(j)
        j = parents[j]
    return sorted(seen[seen.index(j):]) if j != -1 else None


def _check_sides(left, right, n, where):
    if len(left) != len(right):
        raise UserError(f"{where}: joints_left has {len(left)} joints and joints_right {len(right)}; expected "
                        "lists of one length, each left joint paired with the right joint at its position")
    bad = sorted({j for j in left + right if not 0 <= j < n})
    if bad:
        raise UserError(f"{where}: left/right joints {bad} out of range; expected joints in 0..{n - 1}")
    both = sorted(set(left) & set(right))
    twice = sorted({j for side in (left, right) for j in side if side.count(j) > 1})
    if both or twice:
        what = f"joints {both} are both left and right" if both else f"joints {twice} are listed twice"
        raise UserError(f"{where}: {what}; expected each joint at most once in joints_left + joints_right")


def check_symmetry(sym, joints, where):
    """(left, right) lists of a 2D layout's `keypoints_symmetry` (a file's metadata, a prepared table's,
    a run's layout): two lists of one length of joint indices in 0..joints - 1, each joint at most once;
    else the user's one line (an index out of range would fail deep in training, or flip wrong joints)."""
    if isinstance(sym, np.ndarray):
        sym = sym.tolist()
    if isinstance(sym, (str, bytes)) or not hasattr(sym, "__len__") or len(sym) != 2:
        raise UserError(f"{where}: {_show(sym)}; expected two lists [left joints], [right joints]")
    left, right = (_ints(side, where, name) for side, name in zip(sym, ("left joints", "right joints")))
    _check_sides(left, right, joints, where)
    return list(left), list(right)


def read_skeleton(path):
    """A checked Skeleton from a .json file or the .npz form {"data": {...}} (the 2022 study's
    humaneva_skeleton.npz), read without running any pickled code; named after the file."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".json", ".npz"):
        raise UserError(f"{path}: a skeleton file must be .json or .npz; expected {FILE_KEYS}")
    if not os.path.isfile(path):
        raise UserError(f"{path}: skeleton file not found")
    if ext == ".json":
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            raise UserError(f"{path}: not valid JSON ({e}); expected an object with {FILE_KEYS}") from None
        except OSError as e:
            raise UserError(f"{path}: unreadable ({e.strerror or e}); expected a skeleton file with "
                            f"{FILE_KEYS}") from None
    else:
        from raypose.npzfile import read_npz
        arrays = read_npz(path)
        d = arrays.get("data", arrays)
    stem = os.path.splitext(os.path.basename(path))[0]
    return Skeleton.from_dict(d, path, name=stem)

HUMANEVA = Skeleton(
    "humaneva15",
    ("pelvis", "thorax", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
     "l_hip", "l_knee", "l_ankle", "r_hip", "r_knee", "r_ankle", "head"),
    (-1, 0, 1, 2, 3, 1, 5, 6, 0, 8, 9, 0, 11, 12, 1),
    (2, 3, 4, 8, 9, 10),
    (5, 6, 7, 11, 12, 13),
).validate("humaneva15")
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

"""What a run needs to read its inputs back: the 2D joints and their symmetry, the 3D skeleton.

Saved with the run as `layout.json` (as nanoGPT saves `model_args`), so `predict` checks a
user's 2D against what the members were trained on instead of guessing from the input file.
"""
from dataclasses import dataclass

from .errors import UserError
from .skeleton import HUMANEVA, Skeleton, flip_permutation


@dataclass(frozen=True)
class Layout:
    joints_2d: int
    left_2d: tuple
    right_2d: tuple
    skeleton: Skeleton = HUMANEVA

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

    def to_dict(self):
        return {"joints_2d": self.joints_2d, "left_2d": list(self.left_2d), "right_2d": list(self.right_2d),
                "skeleton": self.skeleton.to_dict()}

    @classmethod
    def from_dict(cls, d, source="layout"):
        try:
            return cls(int(d["joints_2d"]), tuple(int(j) for j in d["left_2d"]),
                       tuple(int(j) for j in d["right_2d"]), Skeleton.from_dict(d["skeleton"]))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{source}: malformed layout ({type(e).__name__}: {e}); expected joints_2d, "
                            "left_2d, right_2d and skeleton") from None

    @classmethod
    def of(cls, joints_2d, symmetry, skeleton=HUMANEVA):
        left, right = symmetry
        return cls(int(joints_2d), tuple(int(j) for j in left), tuple(int(j) for j in right), skeleton)

    def check_2d(self, joints, where):
        """A user's 2D must have the run's joint count (in the run's order: see the README)."""
        if joints != self.joints_2d:
            raise UserError(f"{where} has {joints} joints; expected {self.joints_2d} as the run was "
                            f"trained on (layout.json)")

"""Receptive-field windows over (subject, action, camera) sequences, and flip augmentation.

Sequences are edge-padded once and stored back to back; a window is a slice of that array, so
a batch of windows is one fancy-indexing gather instead of per-window numpy copies.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Windows:
    """Every frame of every sequence as a training target with its centred 2D window."""
    inputs: np.ndarray      # (P, J, 2) padded, normalised 2D, all sequences back to back
    starts: np.ndarray      # (N,) start of each target's window in `inputs`
    targets: np.ndarray | None  # (N, J, 3) root-relative camera-frame 3D; None if nothing has 3D
    labelled: np.ndarray    # (N,) bool: the target is known (zeros stand in where it is not)
    keys: list              # per sequence: (subject, action, camera)
    offsets: np.ndarray     # (S+1,) first target index of each sequence
    receptive_field: int

    def __len__(self):
        return len(self.starts)

    def key_per_target(self, field):
        """(N,) each target's sequence key field: 0 subject, 1 action, 2 camera."""
        return np.repeat([k[field] for k in self.keys], np.diff(self.offsets))

    def centre(self):
        """(N, J, 2) each target's own 2D frame."""
        return self.inputs[self.starts + self.receptive_field // 2]

    def sequence(self, s):
        """Padded 2D (T + rf - 1, J, 2) and targets (T, J3, 3) of sequence s."""
        lo, hi = self.offsets[s], self.offsets[s + 1]
        pad = self.receptive_field - 1
        start = self.starts[lo]
        tgt = None if self.targets is None else self.targets[lo:hi]
        return self.inputs[start:start + (hi - lo) + pad], tgt


def make_windows(sequences, receptive_field=27):
    """sequences: iterable of (key, 2D (T, J, 2), 3D (T, J3, 3) or None).

    Each sequence is padded by receptive_field // 2 copies of its first and last frame, so
    edge frames are targets too (the 2022 study dropped them).
    """
    pad = receptive_field // 2
    inputs, starts, targets, keys, offsets = [], [], [], [], [0]
    pos = 0
    for key, kp, pose in sequences:
        kp = np.asarray(kp, dtype=np.float32)
        t = len(kp)
        if t == 0:
            continue
        inputs.append(np.concatenate([np.repeat(kp[:1], pad, 0), kp, np.repeat(kp[-1:], pad, 0)]))
        starts.append(pos + np.arange(t))
        pos += t + 2 * pad
        targets.append(pose)
        keys.append(key)
        offsets.append(offsets[-1] + t)
    if not keys:
        raise ValueError("no frames to window")
    offsets = np.asarray(offsets, dtype=np.int64)
    labelled = np.repeat([p is not None for p in targets], np.diff(offsets))
    tgt = None
    if labelled.any():
        shape = next(p.shape[1:] for p in targets if p is not None)
        tgt = np.concatenate([np.zeros((o, *shape), np.float32) if p is None else p
                              for p, o in zip(targets, np.diff(offsets))]).astype(np.float32)
    return Windows(
        inputs=np.concatenate(inputs),
        starts=np.concatenate(starts).astype(np.int64),
        targets=tgt,
        labelled=labelled,
        keys=keys,
        offsets=offsets,
        receptive_field=receptive_field,
    )


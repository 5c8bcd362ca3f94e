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
    gaps: np.ndarray | None = None   # (P, J) frames from each 2D joint-frame to its nearest observation
                                     # (0: observed; filled in by data.gaps), None: all observed

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


def _padded(x, pad):
    return np.concatenate([np.repeat(x[:1], pad, 0), x, np.repeat(x[-1:], pad, 0)])


def make_windows(sequences, receptive_field=27, gaps=None, consume=False):
    """sequences: a list of (key, 2D (T, J, 2), 3D (T, J3, 3) or None); `gaps`: optional, one
    (T, J) array per sequence, frames to each joint's nearest observation (`data.gaps.fill_gaps`).

    Each sequence is padded by receptive_field // 2 copies of its first and last frame, so
    edge frames are targets too (the 2022 study dropped them). The arrays are allocated once at
    their final size and filled sequence by sequence: the padded 2D and the targets exist once,
    never as a list of pieces and their concatenation (at Human3.6M's size that was 2x the data).
    `consume` (a list): each sequence is let go (its entry set to None) once it is copied, so the
    input shrinks as the windows grow and the two are never both whole.
    """
    pad = receptive_field // 2
    kept = [(i, key, kp, pose) for i, (key, kp, pose) in enumerate(sequences) if len(kp)]
    if consume:
        sequences[:] = [None] * len(sequences)
    if not kept:
        raise ValueError("no frames to window")
    lengths = np.array([len(kp) for _, _, kp, _ in kept], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = int(lengths.sum() + 2 * pad * len(kept))
    first_kp = np.asarray(kept[0][2])
    inputs = np.empty((rows, *first_kp.shape[1:]), np.float32)
    labelled = np.repeat([pose is not None for _, _, _, pose in kept], lengths)
    shape = next((np.shape(pose)[1:] for _, _, _, pose in kept if pose is not None), None)
    tgt = np.zeros((int(lengths.sum()), *shape), np.float32) if shape is not None else None
    dist = np.empty((rows, first_kp.shape[1]), np.int32) if gaps is not None else None
    starts = np.empty(int(lengths.sum()), np.int64)
    pos = 0
    keys = [k for _, k, _, _ in kept]
    for s, (t, lo) in enumerate(zip(lengths, offsets[:-1])):
        i, _, kp, pose = kept[s]
        if consume:
            kept[s] = None
        kp = np.asarray(kp, dtype=np.float32)
        inputs[pos:pos + t + 2 * pad] = _padded(kp, pad)
        if dist is not None:
            dist[pos:pos + t + 2 * pad] = _padded(np.asarray(gaps[i], np.int32).reshape(kp.shape[:2]), pad)
        starts[lo:lo + t] = pos + np.arange(t)
        if pose is not None:
            tgt[lo:lo + t] = pose
        pos += t + 2 * pad
        del kp, pose
    return Windows(inputs=inputs, starts=starts, targets=tgt, labelled=labelled, keys=keys,
                   offsets=offsets, receptive_field=receptive_field, gaps=dist)

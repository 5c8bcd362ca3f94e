"""The windows a run trains, scores and calibrates on, built once per run: plain numpy, no Ray.

`build(cfg, layout, train_seqs, eval_seqs)` carves the validation and calibration frames out of
the training sequences and windows all three. The Ray adapter builds one `WindowSet` and puts
it in the object store: Ray gives its numpy arrays to every worker of a node without a copy, so a
node holds the frames once, whatever its number of members (issue 26: each worker built its own
and a 2-member run at Human3.6M's size did not fit 24 GB). A local run builds it in-process.

Scoring and calibrating every iteration does not need every frame of a big set: the evaluation
sequences are cut to `train.eval_frames` frames and the calibration ones to
`uncertainty.max_frames` (each sequence keeps its middle frames, in proportion to its length),
which leaves small sets such as HumanEva-I whole; `raypose evaluate` scores every frame.
"""
import math
from dataclasses import dataclass

import numpy as np

from raypose.data.splits import calibration_split, validation_split
from raypose.data.windows import Windows, make_windows
from raypose.ensemble import uncertainty as U


@dataclass
class WindowSet:
    train: Windows
    eval: Windows
    calib: list          # [(variant name, Windows)]: clean first, then corrupted; [] without calibration

    def nbytes(self):
        """Bytes of the arrays: what a node holds once for all its members."""
        ws = [self.train, self.eval] + [w for _, w in self.calib]
        return sum(a.nbytes for w in ws for a in (w.inputs, w.starts, w.targets, w.labelled, w.offsets, w.gaps)
                   if a is not None)


def middle_frames(sequences, limit):
    """`sequences` cut to at most `limit` frames in all (0: no limit): each keeps its middle frames,
    in proportion to its length, so every subject, action and camera stays represented."""
    total = sum(len(kp) for _, kp, _ in sequences)
    if not limit or total <= limit:
        return sequences
    out = []
    for key, kp, pose in sequences:
        k = min(len(kp), max(1, math.floor(len(kp) * limit / total)))
        lo = (len(kp) - k) // 2
        out.append((key, kp[lo:lo + k], None if pose is None else pose[lo:lo + k]))
    return out


def build(cfg, layout, train_seqs, eval_seqs):
    """The WindowSet of a run's training and evaluation sequences ([(key, 2D, 3D or None)]).

    The lists are consumed (emptied as their frames are copied into the windows): a caller that
    lets go of its own references never holds the frames twice, the sequences and the windows."""
    rf = int(np.prod(cfg.model.widths))
    u = cfg.uncertainty
    if cfg.data.validation:   # scored on frames carved from the training subjects (the driver sent no test)
        train_seqs, eval_seqs = validation_split(_take(train_seqs), cfg.data.validation)
    train_seqs, calib_seqs = calibration_split(_take(train_seqs), u.holdout, u.holdout_by, cfg.train.seed)
    calib = (U.variants(make_windows(middle_frames(calib_seqs, u.max_frames), rf), layout, cfg.train.seed)
             if calib_seqs else [])
    del calib_seqs   # views of the training sequences' tails: let go before those are consumed
    eval_w = make_windows(middle_frames(_take(eval_seqs), cfg.train.eval_frames), rf)
    train_w = make_windows(train_seqs, rf, consume=True)
    return WindowSet(train_w, eval_w, calib)


def from_source(cfg, layout, source, chunks):
    """The WindowSet of a run's (labelled, unlabelled, test) chunks of an in-memory `source`
    (npz or synthetic), read in this process; unlabelled chunks lose their 3D before anything
    else. The frames are then let go: the windows hold what training reads."""
    from raypose.data.source import read_sequences
    labelled, unlabelled, test = chunks
    train = read_sequences(source, labelled) + [(k, kp, None) for k, kp, _ in read_sequences(source, unlabelled)]
    windows = build(cfg, layout, train, read_sequences(source, test))
    source.drop_frames()
    return windows


def _take(seqs):
    """The list's items in a new list, the given one emptied (the caller's reference holds nothing)."""
    out = list(seqs)
    if isinstance(seqs, list):
        seqs.clear()
    return out

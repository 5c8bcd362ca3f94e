"""Which (subject, action) chunks train and which test, and which training chunks keep their 3D.

A chunk is one (subject, action-key) pair such as ('Train/S1', 'Walking 1 chunk0'); all three
cameras of a chunk always go the same way, so no view of a test chunk is ever trained on.
"""
import numpy as np

from raypose.errors import UserError

PROTOCOLS = ("videopose3d", "seed")


def action_name(action):
    """'Walking 1 chunk0' -> 'Walking': tables group chunks by the action's first word.

    Any whitespace separates words, leading or repeated spaces included; an action with no word
    (empty or blank) is returned as it is.
    """
    words = str(action).split()
    return words[0] if words else str(action)


def parse_actions(actions):
    """'Walk,Jog,Box' or a list -> list of prefixes; None, '' or '*' -> None (all actions)."""
    if actions is None:
        return None
    if isinstance(actions, str):
        actions = [a.strip() for a in actions.split(",")]
    actions = [a for a in actions if a and a != "*"]
    return actions or None


def filter_actions(keys, actions):
    """Keep chunks whose action starts with one of the prefixes (Walk matches Walking)."""
    prefixes = parse_actions(actions)
    if prefixes is None:
        return list(keys)
    return [(s, a) for s, a in keys if any(a.startswith(p) for p in prefixes)]


def split_chunks(keys, protocol, dataset=None):
    """(train, test) lists of (subject, action) in key order.

    videopose3d: the dataset's train and test subjects where it names them (Human3.6M: S1, S5, S6,
    S7, S8 / S9, S11); otherwise (HumanEva, `dataset` None) Train/* trains and Validate/* tests,
    the official HumanEva-I protocol.
    seed: the 2022 study's split: every subject key is a subject; for each action name with
    more than one chunk, the second chunk in key order tests, the rest train.
    """
    keys = list(keys)
    if protocol == "videopose3d":
        if dataset is not None and dataset.train_subjects is not None:
            train = [k for k in keys if k[0] in dataset.train_subjects]
            test = [k for k in keys if k[0] in (dataset.test_subjects or ())]
        else:
            train = [k for k in keys if k[0].startswith("Train/")]
            test = [k for k in keys if k[0].startswith("Validate/")]
    elif protocol == "seed":
        seen, test_set = {}, set()
        for s, a in keys:
            n = seen.get((s, action_name(a)), 0)
            if n == 1:
                test_set.add((s, a))
            seen[(s, action_name(a))] = n + 1
        train = [k for k in keys if k not in test_set]
        test = [k for k in keys if k in test_set]
    else:
        raise UserError(f"split {protocol!r}: unknown, expected one of {', '.join(PROTOCOLS)}")
    return train, test


def select(keys, protocol, actions=None, source="data", dataset=None):
    """Split then filter by action; a choice that selects nothing is the user's error."""
    keys = list(keys)
    train_all, test_all = split_chunks(keys, protocol, dataset)
    train, test = filter_actions(train_all, actions), filter_actions(test_all, actions)
    if not train or not test:
        part = "training" if not train else "test"
        raise UserError(f"{source}: split {protocol!r} with actions {actions!r} selects no "
                        f"{part} chunks; {_expected(keys, train_all, test_all, part, protocol, dataset)}")
    return train, test


def _expected(keys, train_all, test_all, part, protocol, dataset):
    """What a split that selects nothing expected: HumanEva's action names, or the data's own."""
    if dataset is None or dataset.name == "humaneva15":
        return "expected action prefixes such as Walk,Jog,Box"
    chunks = train_all if part == "training" else test_all
    if not chunks and protocol == "videopose3d":
        found = ", ".join(sorted({s for s, _ in keys}))
        if dataset.train_subjects is None:
            return f"expected subjects named Train/<name> and Validate/<name> (the data has {found}), or split seed"
        wanted = dataset.train_subjects if part == "training" else dataset.test_subjects
        return f"expected {part} subjects {', '.join(wanted or ())} (the data has {found})"
    names = list(dict.fromkeys(action_name(a) for _, a in chunks or keys))[:3]
    return f"expected action prefixes such as {','.join(names)}"


def labelled_split(train_keys, fraction, seed):
    """Hide the 3D of whole chunks: (labelled, unlabelled), at least one chunk labelled.

    By chunk, not by frame, so that no frame of an unlabelled chunk leaks its neighbours' 3D
    through the 27-frame window.
    """
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise UserError(f"labelled fraction {fraction!r}: expected a number in (0, 1]")
    keys = list(train_keys)
    order = np.random.default_rng(seed).permutation(len(keys))
    n = max(1, int(round(fraction * len(keys))))
    chosen = set(order[:n].tolist())
    labelled = [k for i, k in enumerate(keys) if i in chosen]
    unlabelled = [k for i, k in enumerate(keys) if i not in chosen]
    return labelled, unlabelled


def calibration_split(sequences, fraction, by="tail", seed=0):
    """(training, calibration) sequences: about `fraction` of every subject's frames of every
    action held out to calibrate the uncertainty; unlabelled sequences always train.

    by="tail": the last `fraction` of every labelled sequence's frames (`calibration_tail`).
    by="chunk": per (subject, action name), whole chunks (all cameras), taken in a seeded order
    where each brings the held-out frames closer to the share, a training chunk always left;
    where no chunk fits (one long chunk), the last frames of its longest chunk. Held-out chunks
    are motion the members never saw, as test chunks are; on HumanEva-I they calibrated no better
    than tails (docs/benchmarks.md), so tails are the default: every sequence keeps its share.
    """
    if by == "tail":
        return calibration_tail(sequences, fraction)
    frames = {}
    for (subject, action, _), kp, pose in sequences:
        if pose is not None:
            frames.setdefault((subject, action), len(kp))
    groups = {}
    for c in sorted(frames):   # the input's order (Ray's or the table's) must not change the draw
        groups.setdefault((c[0], action_name(c[1])), []).append(c)
    rng = np.random.default_rng(seed)
    held, tails = set(), set()
    for chunks in groups.values():
        share, taken = fraction * sum(frames[c] for c in chunks), 0
        for i in rng.permutation(len(chunks)):
            c = chunks[i]
            if len(held & set(chunks)) < len(chunks) - 1 and abs(taken + frames[c] - share) < abs(taken - share):
                held.add(c)
                taken += frames[c]
        if not taken:
            tails.add(max(chunks, key=lambda c: frames[c]))
    train = [s for s in sequences if s[0][:2] not in held | tails]
    tail_train, tail_calib = calibration_tail([s for s in sequences if s[0][:2] in tails], fraction)
    return train + tail_train, [s for s in sequences if s[0][:2] in held] + tail_calib


def validation_split(sequences, fraction):
    """(training, validation) sequences for `data.validation` (raypose tune): the held-out chunks
    of `calibration_split(by="chunk")`, always the same draw (seed 0) whatever a trial's seed, so
    every trial of a search is scored on the same frames; the test split plays no part."""
    return calibration_split(sequences, fraction, by="chunk", seed=0)


def calibration_tail(sequences, fraction):
    """(training, calibration) sequences: the last `fraction` of every labelled sequence's frames
    (rounded, none where that is under one frame, never all of them) calibrates the uncertainty.

    A cut by frame number, the same in every camera of a chunk, so no calibration frame's 3D is
    trained on from another view; each part is windowed on its own, so no window crosses the cut.
    Every subject and action keeps its share, which whole chunks (a few, of very unequal length)
    could not give.
    """
    train, calib = [], []
    shortest = {}
    for key, kp, _ in sequences:   # one cut per chunk: the frame number where its shortest camera's tail starts
        shortest[key[:2]] = min(len(kp), shortest.get(key[:2], len(kp)))
    for key, kp, pose in sequences:
        t = shortest[key[:2]]
        n = min(int(round(fraction * t)), t - 1) if pose is not None else 0
        if n <= 0:
            train.append((key, kp, pose))
            continue
        cut = t - n   # a longer camera's extra frames lie past the cut too
        train.append((key, kp[:cut], pose[:cut]))
        calib.append((key, kp[cut:], pose[cut:]))
    return train, calib

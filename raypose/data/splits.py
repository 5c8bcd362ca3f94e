"""Which (subject, action) chunks train and which test, and which training chunks keep their 3D.

A chunk is one (subject, action-key) pair such as ('Train/S1', 'Walking 1 chunk0'); all three
cameras of a chunk always go the same way, so no view of a test chunk is ever trained on.
"""
import numpy as np

from ..errors import UserError

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


def split_chunks(keys, protocol):
    """(train, test) lists of (subject, action) in key order.

    videopose3d: Train/* trains, Validate/* tests (the official HumanEva-I protocol).
    seed: the 2022 study's split: every subject key is a subject; for each action name with
    more than one chunk, the second chunk in key order tests, the rest train.
    """
    keys = list(keys)
    if protocol == "videopose3d":
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


def select(keys, protocol, actions=None, source="data"):
    """Split then filter by action; a choice that selects nothing is the user's error."""
    train, test = split_chunks(keys, protocol)
    train, test = filter_actions(train, actions), filter_actions(test, actions)
    if not train or not test:
        part = "training" if not train else "test"
        raise UserError(f"{source}: split {protocol!r} with actions {actions!r} selects no "
                        f"{part} chunks; expected action prefixes such as Walk,Jog,Box")
    return train, test


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

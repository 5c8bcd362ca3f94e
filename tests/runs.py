"""Tiny run configs shared by the training tests: seconds per iteration on 2 CPU cores."""
from raypose import config as C

TINY = {"data.path": "synthetic", "data.synthetic_frames": 1200, "data.actions": "Walk,Jog,Box",
        "model.channels": 16, "model.dropout": 0.1, "train.members": 2, "train.iterations": 2,
        "train.epochs": 1, "train.lr": 3e-3, "train.lr_decay": 0.95}


def tiny_config(out, **overrides):
    return C.finalize(C.with_values(C.Config(), {**TINY, "run.out": str(out), **overrides}))


def tiny_flags(out, iterations=2, epochs=1):
    """The same tiny run as `raypose train` flags."""
    return ["--data", "synthetic", "--actions", "Walk,Jog,Box", "--channels", "16",
            "--members", "2", "--iterations", str(iterations), "--epochs", str(epochs),
            "--out", str(out), "--set", "data.synthetic_frames=1200", "--set", "model.dropout=0.1",
            "--set", "train.lr=0.003", "--set", "train.lr_decay=0.95"]

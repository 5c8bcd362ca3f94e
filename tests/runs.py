"""Tiny run configs shared by the Ray tests: seconds per iteration on 2 CPU cores."""
from raypose import config as C


def tiny_config(out, **overrides):
    cfg = C.Config()
    cfg.data.path = "synthetic"
    cfg.data.synthetic_frames = 1200
    cfg.data.actions = "Walk,Jog,Box"
    cfg.model.channels, cfg.model.dropout = 16, 0.1
    cfg.train.members, cfg.train.iterations, cfg.train.epochs = 2, 2, 1
    cfg.train.lr, cfg.train.lr_decay = 3e-3, 0.95
    cfg.run.out = str(out)
    for key, value in overrides.items():
        C.set_key(cfg, key, value)
    return C.validate(cfg)


def tiny_flags(out, iterations=2, epochs=1):
    """The same tiny run as `raypose train` flags."""
    return ["--data", "synthetic", "--actions", "Walk,Jog,Box", "--channels", "16",
            "--members", "2", "--iterations", str(iterations), "--epochs", str(epochs),
            "--out", str(out), "--set", "data.synthetic_frames=1200", "--set", "model.dropout=0.1",
            "--set", "train.lr=0.003", "--set", "train.lr_decay=0.95"]

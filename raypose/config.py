"""One config object for a run: read from TOML, overridden from the CLI, hashed for resume checks."""
import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field

import tomllib

from .errors import UserError


@dataclass
class DataConfig:
    path: str = "synthetic"          # npz dir, prepared Parquet dir, URI, or "synthetic"
    keypoints: str = "gt"            # 2D file suffix: data_2d_humaneva15_<keypoints>.npz
    split: str = "videopose3d"       # videopose3d | seed
    actions: str = ""                # action prefixes, e.g. "Walk,Jog,Box"; empty = all
    synthetic_frames: int = 3000
    synthetic_seed: int = 0


@dataclass
class ModelConfig:
    channels: int = 1024
    widths: list = field(default_factory=lambda: [3, 3, 3])
    dropout: float = 0.25


@dataclass
class TrainConfig:
    members: int = 5
    iterations: int = 10
    epochs: int = 10                 # epochs per iteration, over the member's sample
    sampling: str = "bootstrap"      # bootstrap | disjoint | full
    subset_size: int = 0             # samples per member and iteration; 0 = training set size
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.996          # per epoch, continued across iterations
    bn_momentum: float = 0.1
    bn_momentum_final: float = 0.001
    flip: bool = True                # flip augmentation in training and at test time
    seed: int = 0


@dataclass
class SemiConfig:
    mode: str = "off"                # off | schedule | gated
    labelled_fraction: float = 1.0   # of the training chunks (by chunk, seeded); the rest lose 3D
    warmup: int = 2                  # supervised iterations before the first pseudo-labels
    per_iteration: int = 500         # schedule: (j + 1) * per_iteration windows, j = i - warmup
    threshold_scale: float = 2.0     # gated: spread <= scale x median spread on labelled windows
    weighted: bool = True            # gated: weight pseudo-labels by confidence
    refresh: bool = True             # gated: relabel every iteration (False: the warm-up teacher only)
    pseudo_weight: float = 1.0       # loss weight of a pseudo-labelled window relative to a labelled one
    fit_2d: bool = True              # gated: move each pseudo-label's x, y onto the window's own 2D
    fit_bones: bool = True           # gated: give each pseudo-label its subject's labelled bone lengths


@dataclass
class RunConfig:
    out: str = "runs/humaneva"
    address: str = ""                # Ray cluster address; empty = local or RAY_ADDRESS
    gpus_per_member: int = 0         # 0 = use a GPU per member when the cluster has GPUs
    cpus_per_member: float = 0.0      # 0 = share the node's CPUs between members
    members_per_worker: int = 1
    pack: bool = True                # members_per_worker > 1: train them as one stacked model (vmap)
    max_failures: int = 2
    time_budget: float = 0.0          # seconds; 0 = no budget
    keep_last: int = 0               # 0 = keep every iteration
    local: bool = False              # run all members in the driver process (no Ray workers)


@dataclass
class DebugConfig:
    fail_member_at: str = ""         # "member:iteration": crash that member once, for tests


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    semi: SemiConfig = field(default_factory=SemiConfig)
    run: RunConfig = field(default_factory=RunConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    def hash(self):
        """What decides the numbers a run produces; the run section (where, how long) is left out
        so a resumed run may get more iterations or another budget."""
        d = self.to_dict()
        d.pop("run")
        d.pop("debug")
        d["train"].pop("iterations")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}


def _coerce(key, value, current):
    """Typed like the default: the TOML or CLI value must fit the field."""
    try:
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            return bool(value)
        if isinstance(current, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, list):
            if isinstance(value, str):
                value = [int(v) for v in value.replace(" ", "").split(",") if v]
            return [int(v) for v in value]
        return str(value)
    except (TypeError, ValueError):
        raise UserError(f"config key {key}: expected {type(current).__name__}, got {value!r}") from None


def set_key(cfg, key, value):
    """`train.epochs` (or a bare `epochs` where it is unambiguous) = value."""
    if "." in key:
        section, name = key.split(".", 1)
    else:
        owners = [s for s in SECTIONS if hasattr(getattr(cfg, s), key)]
        if len(owners) != 1:
            raise UserError(f"config key {key!r}: unknown; expected section.key such as train.epochs")
        section, name = owners[0], key
    sub = getattr(cfg, section, None)
    if section not in SECTIONS or not hasattr(sub, name):
        raise UserError(f"config key {key!r}: unknown; expected one of "
                        f"{', '.join(f'{s}.{f.name}' for s in SECTIONS for f in dataclasses.fields(getattr(cfg, s)))}")
    setattr(sub, name, _coerce(key, value, getattr(sub, name)))


def from_dict(d, source="config"):
    cfg = Config()
    for section, values in d.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise UserError(f"{source}: unknown section [{section}]; expected {', '.join(SECTIONS)}")
        for name, value in values.items():
            set_key(cfg, f"{section}.{name}", value)
    return cfg


def load(path):
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            text = f.read().decode()
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    return loads(text, source=path)


def loads(text, source="config"):
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{source}: not valid TOML ({e})") from None
    return from_dict(d, source=source)


def to_toml(cfg):
    """TOML text of the config; the run directory keeps it to show and check what ran."""
    lines = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        for k, v in values.items():
            lines.append(f"{k} = {json.dumps(v)}")
        lines.append("")
    return "\n".join(lines)


def validate(cfg):
    t, m = cfg.train, cfg.model
    checks = [
        (t.members >= 1, "train.members", "an integer >= 1"),
        (t.iterations >= 1, "train.iterations", "an integer >= 1"),
        (t.epochs >= 1, "train.epochs", "an integer >= 1"),
        (t.sampling in ("bootstrap", "disjoint", "full"), "train.sampling", "bootstrap, disjoint or full"),
        (t.subset_size >= 0, "train.subset_size", "an integer >= 0 (0 = training set size)"),
        (t.batch_size >= 1, "train.batch_size", "an integer >= 1"),
        (t.lr > 0 and 0 < t.lr_decay <= 1, "train.lr / train.lr_decay", "lr > 0 and decay in (0, 1]"),
        (m.channels >= 1, "model.channels", "an integer >= 1"),
        (bool(m.widths) and all(w >= 1 and w % 2 == 1 for w in m.widths), "model.widths", "odd filter widths such as 3,3,3"),
        (0 <= m.dropout < 1, "model.dropout", "a number in [0, 1)"),
        (cfg.data.split in ("videopose3d", "seed"), "data.split", "videopose3d or seed"),
        (cfg.semi.mode in ("off", "schedule", "gated"), "semi.mode (--semi)", "off, schedule or gated"),
        (0 < cfg.semi.labelled_fraction <= 1, "semi.labelled_fraction (--labelled-fraction)",
         "a number in (0, 1]"),
        (cfg.semi.warmup >= 0 and cfg.semi.per_iteration >= 1 and cfg.semi.threshold_scale > 0,
         "semi.warmup / per_iteration / threshold_scale", "warmup >= 0, per_iteration >= 1, scale > 0"),
        (cfg.run.members_per_worker >= 1, "run.members_per_worker", "an integer >= 1"),
        (cfg.run.max_failures >= 0, "run.max_failures", "an integer >= 0"),
        (cfg.run.keep_last >= 0, "run.keep_last", "an integer >= 0"),
        (cfg.run.gpus_per_member in (0, 1), "run.gpus_per_member (--gpus-per-member)",
         "0 (a GPU per member when there are GPUs) or 1; data-parallel members over several GPUs "
         "are not supported yet"),
    ]
    for ok, key, expected in checks:
        if not ok:
            raise UserError(f"config key {key}: expected {expected}")
    if cfg.debug.fail_member_at and not _parse_fault(cfg.debug.fail_member_at):
        raise UserError(f"config key debug.fail_member_at: expected 'member:iteration', got "
                        f"{cfg.debug.fail_member_at!r}")
    return cfg


def _parse_fault(text):
    try:
        k, i = (int(v) for v in text.split(":"))
        return k, i
    except ValueError:
        return None


def fault(cfg):
    """(member, iteration) at which to inject one crash, or None."""
    return _parse_fault(cfg.debug.fail_member_at) if cfg.debug.fail_member_at else None

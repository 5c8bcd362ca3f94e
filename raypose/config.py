"""One config object for a run: read from TOML, overridden from the CLI, hashed for resume checks.

Each option is defined once, below, as a dataclass field whose metadata carries its help text,
its command-line flag and its check; argparse (`add_flags`) and the table of keys in docs/usage.md
(`markdown_table`) are generated from these fields. Configs are frozen: `with_values` returns a
new one, and derived defaults are resolved in `finalize` only.
"""
import dataclasses
import hashlib
import json
import os
import tomllib
from dataclasses import dataclass, field

from raypose.errors import UserError

PRECISIONS = ("fp32", "tf32", "bf16")   # train.precision; raypose/model/device.py gives them meaning
SEMI_DEFAULT_FRACTION = 0.4   # the 2022 study's labelled share, when semi is on and none is given


def opt(default, help, flag=None, check=None, expected=None):
    """A config field: default, one-line help, optional CLI flag and check (value -> bool)."""
    meta = {"help": help, "flag": flag, "check": check, "expected": expected}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _positive_int(v):
    return v >= 1


def _odd_widths(v):
    return bool(v) and all(w >= 1 and w % 2 == 1 for w in v)


def _fault(text):
    try:
        k, i = (int(v) for v in text.split(":"))
        return k, i
    except ValueError:
        return None


INT1 = "an integer >= 1"


def _gpus(v):
    try:
        return v == "auto" or 0 <= float(v) < float("inf")
    except ValueError:
        return False


@dataclass(frozen=True)
class DataConfig:
    path: str = opt("synthetic", "npz directory, prepared Parquet directory or URI, or 'synthetic'", "data")
    keypoints: str = opt("gt", "2D file suffix: data_2d_<dataset>_<keypoints>.npz", "keypoints")
    dataset: str = opt("", "humaneva15, h36m, or your own dataset's name in data_3d_<name>.npz (empty: recognised "
                       "from the file names)", "dataset")
    skeleton: str = opt("", "skeleton file (.json, or .npz {'data': ...}) of parents, joints_left, joints_right "
                        "(empty: the dataset's own)", "skeleton",
                        lambda v: not v or v.lower().endswith((".json", ".npz")), "a .json or .npz file")
    cameras: str = opt("", "cameras file (JSON) for world 3D: per subject, each camera's orientation, translation, "
                       "image size (empty: the dataset's own)", "cameras")
    split: str = opt("videopose3d", "videopose3d (Train/* vs Validate/*) or seed (the 2022 split)", "split",
                     lambda v: v in ("videopose3d", "seed"), "videopose3d or seed")
    actions: str = opt("", "action prefixes, e.g. Walk,Jog,Box (empty: all)", "actions")
    validation: float = opt(0.0, "share of every subject's training frames held out as a validation split (whole "
                            "chunks where an action has several, else its last frames); the run is scored on it "
                            "and never reads the test split (raypose tune sets it; 0: scored on the test split)",
                            "validation", lambda v: 0 <= v <= 0.5, "a number in [0, 0.5]")
    synthetic_frames: int = opt(3000, "frames of built-in synthetic data", None, _positive_int, INT1)
    synthetic_seed: int = opt(0, "seed of the synthetic data")


@dataclass(frozen=True)
class ModelConfig:
    channels: int = opt(1024, "channels of every temporal convolution", "channels", _positive_int, INT1)
    widths: list = opt([3, 3, 3], "filter widths; the receptive field is their product", "widths",
                       _odd_widths, "odd filter widths such as 3,3,3")
    dropout: float = opt(0.25, "dropout probability", None, lambda v: 0 <= v < 1, "a number in [0, 1)")


@dataclass(frozen=True)
class TrainConfig:
    members: int = opt(5, "ensemble size N", "members", _positive_int, INT1)
    iterations: int = opt(10, "iterations; each saves every member and the ensemble's record", "iterations",
                          _positive_int, INT1)
    epochs: int = opt(10, "epochs per iteration, over the member's sample", "epochs", _positive_int, INT1)
    sampling: str = opt("bootstrap", "bootstrap (own draw with replacement), disjoint (the 2022 method) or "
                        "full (every window)", "sampling",
                        lambda v: v in ("bootstrap", "disjoint", "full"), "bootstrap, disjoint or full")
    subset_size: int = opt(0, "samples per member and iteration (0: training set size)", "subset-size",
                           lambda v: v >= 0, "an integer >= 0 (0 = training set size)")
    eval_frames: int = opt(100_000, "frames scored each iteration: evaluation sequences beyond it keep their "
                           "middle frames, in proportion (0: all; raypose evaluate scores every frame)",
                           "eval-frames", lambda v: v >= 0, "an integer >= 0")
    batch_size: int = opt(128, "windows per optimiser step", "batch-size", _positive_int, INT1)
    lr: float = opt(1e-3, "Adam learning rate", None, lambda v: v > 0, "a number > 0")
    lr_decay: float = opt(0.996, "learning-rate factor per epoch, continued across iterations", None,
                          lambda v: 0 < v <= 1, "a number in (0, 1]")
    bn_momentum: float = opt(0.1, "BatchNorm momentum at the start", None, lambda v: 0 < v <= 1,
                             "a number in (0, 1]")
    bn_momentum_final: float = opt(0.001, "BatchNorm momentum at the end (decays exponentially)", None,
                                   lambda v: 0 <= v <= 1, "a number in [0, 1]")
    flip: bool = opt(True, "flip augmentation in training and flip averaging at test time")
    seed: int = opt(0, "seed of weights, draws and epoch orders", "seed")
    precision: str = opt("fp32", "GPU arithmetic: fp32, tf32 (TensorFloat-32 matmuls) or bf16 (autocast); "
                         "CPU runs use fp32", "precision", lambda v: v in PRECISIONS,
                         " or ".join([", ".join(PRECISIONS[:-1]), PRECISIONS[-1]]))


@dataclass(frozen=True)
class SemiConfig:
    mode: str = opt("off", "off, schedule (the 2022 pseudo-label schedule) or gated (where members agree)",
                    "semi", lambda v: v in ("off", "schedule", "gated"), "off, schedule or gated")
    labelled_fraction: float = opt(0.0, "share of training chunks that keep their 3D (0: 1 without semi, "
                                   f"{SEMI_DEFAULT_FRACTION} with it)", "labelled-fraction",
                                   lambda v: 0 <= v <= 1, "a number in (0, 1], or 0 for the default")
    warmup: int = opt(2, "supervised iterations before the first pseudo-labels", None, lambda v: v >= 0,
                      "an integer >= 0")
    per_iteration: int = opt(500, "schedule: (j + 1) x this many windows, j = iteration - warmup", None,
                             _positive_int, INT1)
    threshold_scale: float = opt(2.0, "gated: spread <= this x the median spread on labelled windows", None,
                                 lambda v: v > 0, "a number > 0")
    weighted: bool = opt(True, "gated: weight pseudo-labels by confidence")
    refresh: bool = opt(True, "gated: relabel every iteration (false: the warm-up teacher only)")
    pseudo_weight: float = opt(1.0, "loss weight of a pseudo-labelled window", None, lambda v: v >= 0,
                               "a number >= 0")
    fit_2d: bool = opt(True, "gated: move each pseudo-label's x, y onto the window's own 2D")
    fit_bones: bool = opt(True, "gated: give each pseudo-label its subject's labelled bone lengths")


@dataclass(frozen=True)
class UncertaintyConfig:
    holdout: float = opt(0.1, "share of every subject's labelled training frames held out to calibrate the "
                         "error radii (0: no calibration, no radius)", "calibration-holdout",
                         lambda v: 0 <= v <= 0.5, "a number in [0, 0.5]")
    holdout_by: str = opt("tail", "what is held out: tail (the last frames of every sequence) or chunk (whole "
                          "chunks, all cameras)", None, lambda v: v in ("tail", "chunk"), "tail or chunk")
    max_frames: int = opt(20_000, "calibration frames at most: held-out sequences beyond it keep their middle "
                          "frames, in proportion (0: all; HumanEva-I's hold-out is ~1,000)", "calibration-frames",
                          lambda v: v >= 0, "an integer >= 0")


@dataclass(frozen=True)
class RunConfig:
    out: str = opt("runs/humaneva", "run directory: local path or s3:// / gs:// URI", "out")
    address: str = opt("", "Ray cluster address (empty: local, or RAY_ADDRESS)", "address")
    cpus_per_member: float = opt(0.0, "CPUs per member (0: share the CPUs of the node type that holds it)",
                                 None, lambda v: v >= 0, "a number >= 0")
    gpus_per_member: str = opt("auto", "GPUs per member: a number (0.5: two members share a GPU; 0: CPU only) "
                               "or auto (one each while there are enough, else members packed per GPU)",
                               "gpus-per-member", _gpus, "auto or a number >= 0")
    members_per_worker: int = opt(0, "members per Ray worker (0: auto, 1 unless GPUs are short)",
                                  "members-per-worker", lambda v: v >= 0, "an integer >= 0 (0 = auto)")
    pack: bool = opt(True, "members_per_worker > 1: train them as one stacked model (vmap)")
    max_failures: int = opt(2, "worker restarts allowed", "max-failures", lambda v: v >= 0, "an integer >= 0")
    time_budget: float = opt(0.0, "seconds; stops after the iteration that crosses it (0: none)",
                             "time-budget", lambda v: 0 <= v < float("inf"), "a finite number of seconds >= 0")
    keep_last: int = opt(0, "keep only the newest K iterations (0: all)", "keep-last", lambda v: v >= 0,
                         "an integer >= 0")
    local: bool = opt(False, "all members in this process, no Ray", "local")
    shared_out: bool = opt(False, "a local --out that every node of a multi-node cluster mounts (NFS)",
                           "shared-out")
    placement_timeout: float = opt(0.0, "seconds to wait for the workers' resources before giving up "
                                   "(0: 60, or 900 where the autoscaler can start nodes)", "placement-timeout",
                                   lambda v: v >= 0, "a number of seconds >= 0")


@dataclass(frozen=True)
class DebugConfig:
    fail_member_at: str = opt("", "'member:iteration': crash that member once (tests)", None,
                              lambda v: not v or _fault(v) is not None, "'member:iteration'")
    gpu_as_cpu: bool = opt(False, "a worker Ray gave a (logical) GPU trains on CPU (tests without CUDA)")
    kill_driver_at: int = opt(0, "SIGKILL the driver once iteration i is committed (tests)", None,
                              lambda v: v >= 0, "an integer >= 0")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    semi: SemiConfig = field(default_factory=SemiConfig)
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
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
        for section, name in HASHED_UNLESS_DEFAULT:
            if d[section][name] == _default(section, name):
                d[section].pop(name)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def fault(self):
        """(member, iteration) at which to inject one crash, or None."""
        return _fault(self.debug.fail_member_at) if self.debug.fail_member_at else None


SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
REMOVED = set()   # keys older runs' config.toml may hold; read and ignored
# Keys added after runs existed: left out of the hash at their defaults, so those runs still resume.
HASHED_UNLESS_DEFAULT = (("data", "dataset"), ("data", "skeleton"), ("data", "cameras"), ("data", "validation"),
                         ("train", "eval_frames"), ("uncertainty", "max_frames"))


def fields():
    """(section, dataclass field) of every option, in declaration order."""
    return [(s, f) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]


def _default(section, name):
    f = next(f for f in dataclasses.fields(SECTIONS[section]) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _field(key):
    """(section, field) for `train.epochs`, or a bare `epochs` where it is unambiguous."""
    if "." in key:
        section, name = key.split(".", 1)
        found = [(s, f) for s, f in fields() if s == section and f.name == name]
    else:
        found = [(s, f) for s, f in fields() if f.name == key]
    if len(found) != 1:
        raise UserError(f"config key {key!r}: unknown; expected one of "
                        + ", ".join(f"{s}.{f.name}" for s, f in fields()))
    return found[0]


def _coerce(key, value, kind):
    """The TOML or CLI value as the field's type."""
    try:
        if kind is bool:
            if isinstance(value, str):
                return {"1": True, "true": True, "yes": True, "on": True,
                        "0": False, "false": False, "no": False, "off": False}[value.lower()]
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float:
            return float(value)
        if kind is list:
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v]
            return [int(v) for v in value]
        return str(value)
    except (TypeError, ValueError, KeyError):
        raise UserError(f"config key {key}: expected {kind.__name__}, got {value!r}") from None


def with_values(cfg, values):
    """A new config with {key: value} applied (keys as in `_field`); cfg is left as it was."""
    sections = {s: {} for s in SECTIONS}
    for key, value in values.items():
        section, f = _field(key)
        sections[section][f.name] = _coerce(key, value, f.type)
    return dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **v)
                                       for s, v in sections.items() if v})


def from_dict(d, source="config"):
    values = {}
    for section, items in d.items():
        if section not in SECTIONS:
            raise UserError(f"{source}: unknown section [{section}]; expected {', '.join(SECTIONS)}")
        if not isinstance(items, dict):
            raise UserError(f"{source}: {section} = {items!r} is not a table; expected a section [{section}] of "
                            f"keys such as {section}.{dataclasses.fields(SECTIONS[section])[0].name}")
        values.update({f"{section}.{k}": v for k, v in items.items() if f"{section}.{k}" not in REMOVED})
    return with_values(Config(), values)


def load(path):
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UserError(f"{path}: config file not found") from None
    except OSError as e:
        raise UserError(f"{path}: unreadable config file ({e.strerror or e}); expected a readable TOML file") from None
    return loads(data, source=path)


def loads(text, source="config"):
    """The config of TOML `text` (str, or bytes that must be UTF-8 as TOML is), or the user's one line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{source}: not UTF-8 text (byte {e.start}: {e.reason}); expected a TOML config "
                            "file") from None
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{source}: not valid TOML ({' '.join(str(e).split())})") from None
    return from_dict(d, source=source)


RUN_KEYS = (("train", "members"), ("model", "widths"), ("model", "channels"))   # in every run's config.toml


def loads_run(data, source):
    """(config, TOML tables) of a run's config.toml (bytes); without RUN_KEYS (empty, cut) one line."""
    cfg, tables = loads(data, source), tomllib.loads(data.decode("utf-8"))
    missing = [f"{s}.{k}" for s, k in RUN_KEYS if not isinstance(tables.get(s), dict) or k not in tables[s]]
    if missing:
        raise UserError(f"{source}: no {', '.join(missing)} (empty or cut short); expected the config.toml raypose "
                        "train or import-members wrote for this run")
    return cfg, tables


def differences(stored, new):
    """['train.lr 0.001 here, 0.002 given', ...]: the hashed keys in which two configs differ."""
    a, b = json.loads(json.dumps(stored.to_dict())), json.loads(json.dumps(new.to_dict()))
    out = []
    for section, f in fields():
        if section in ("run", "debug") or (section, f.name) == ("train", "iterations"):
            continue
        x, y = a[section][f.name], b[section][f.name]
        if x != y:
            out.append(f"{section}.{f.name} {json.dumps(x)} here, {json.dumps(y)} given")
    return out


def to_toml(cfg):
    """TOML text of the config; the run directory keeps it to show and check what ran."""
    lines = []
    for section, values in cfg.to_dict().items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        lines.append("")
    return "\n".join(lines)


def validate(cfg):
    """Every field's own check; the first that fails is the user's one-line error."""
    for section, f in fields():
        check = f.metadata["check"]
        if check is not None and not check(getattr(getattr(cfg, section), f.name)):
            flag = f" (--{f.metadata['flag']})" if f.metadata["flag"] else ""
            raise UserError(f"config key {section}.{f.name}{flag}: expected {f.metadata['expected']}, "
                            f"got {getattr(getattr(cfg, section), f.name)!r}")
    return cfg


def finalize(cfg):
    """Checked, with derived defaults resolved: the config a run is made with and hashed by."""
    validate(cfg)
    if cfg.semi.labelled_fraction == 0:
        cfg = with_values(cfg, {"semi.labelled_fraction": 1.0 if cfg.semi.mode == "off" else SEMI_DEFAULT_FRACTION})
    return cfg


# ---- the command line (its flags and the docs' table: raypose/flags.py) ----------------------

def from_args(args, base=None):
    """Config file (or base), then flags, then --set: the later wins."""
    cfg = base or (load(args.config) if getattr(args, "config", None) else Config())
    values = {k: v for k, v in vars(args).items() if "." in k and v is not None}
    for item in args.set:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected key=value, e.g. train.epochs=5")
        key, value = item.split("=", 1)
        values[key.strip()] = value.strip()
    return with_values(cfg, values)

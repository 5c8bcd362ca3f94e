"""What `raypose tune` searches and what it leaves behind, without Ray (tune.py runs the trials).

The space is a few config keys with a distribution each (built in, or a TOML file); a trial is
the base config with one draw applied, the per-trial time budget, its own run directory and a
validation split carved from the training subjects (`data.validation`), so no trial reads the
test split. The outputs: the best config as TOML (the validation split off again, ready for
`raypose train --config`), a table of every trial, and their scores against the budget used.
"""
import json
import math
import os
import tomllib

from raypose import config as C
from raypose.errors import UserError
from raypose.npzfile import atomic_write
from raypose.outputs import plain

KINDS = ("choice", "uniform", "loguniform", "randint")
VALIDATION = 0.2   # of every subject's training frames: whole chunks where an action has several
SCORE = "val_p_mpjpe_mm"

# Neutral ranges, not the hand-picked humaneva_10min values (those were chosen on the test split).
DEFAULT_SPACE = {
    "train.members": {"choice": [2, 3, 4, 6]},
    "model.channels": {"choice": [256, 512, 1024]},
    "model.widths": {"choice": [[3, 3], [3, 3, 3], [3, 3, 3, 3]]},
    "model.dropout": {"uniform": [0.0, 0.3]},
    "run.members_per_worker": {"choice": [1, 2]},
    "train.sampling": {"choice": ["bootstrap", "disjoint", "full"]},
    "train.epochs": {"choice": [1, 2, 5, 10]},
    "train.batch_size": {"choice": [64, 128, 256]},
    "train.lr": {"loguniform": [3e-4, 3e-3]},
    "train.lr_decay": {"uniform": [0.9, 0.999]},
}


def _flatten(d, prefix=""):
    """TOML's nested tables (`train.lr = ...` parses as {'train': {'lr': ...}}) -> {'train.lr': ...};
    under a section name a table ({uniform = [a, b]}) is a value."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key in C.SECTIONS:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def read_space(path):
    """The space in a TOML file: `key = [a, b, c]` (one of these) or `key = {uniform|loguniform|randint
    = [low, high]}`, keys as in the config (train.lr); an optional [space] table holds them."""
    try:
        with open(path, "rb") as f:
            d = tomllib.load(f)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise UserError(f"--space {path}: not found; expected a TOML file of config keys and ranges") from None
    except OSError as e:
        raise UserError(f"--space {path}: unreadable ({e.strerror or e}); expected a TOML file of config keys "
                        "and ranges") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"--space {path}: not valid TOML ({' '.join(str(e).split())})") from None
    return check_space(_flatten(d.get("space", d)), f"--space {path}")


def check_space(space, source="space"):
    """{key: {kind: values}} with every key a config key and every value one the config accepts."""
    if not space:
        raise UserError(f"{source}: no keys; expected config keys with ranges, e.g. train.lr = "
                        "{loguniform = [3e-4, 3e-3]}")
    out = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            spec = {"choice": spec}
        kind, values = next(iter(spec.items())) if isinstance(spec, dict) and len(spec) == 1 else (None, None)
        if kind not in KINDS or not isinstance(values, list) or not values or (kind != "choice" and len(values) != 2):
            raise UserError(f"{source}: {key}: expected a list of values or {{uniform|loguniform|randint = "
                            f"[low, high]}}, got {spec!r}")
        section, f = C._field(key)   # an unknown key is the user's one line
        name = f"{section}.{f.name}"
        if name in ("data.validation", "run.time_budget", "run.out"):
            raise UserError(f"{source}: {key}: set by raypose tune itself; expected a key of the model, "
                            "training or run")
        if kind in ("uniform", "loguniform") and f.type is not float or kind == "randint" and f.type is not int:
            raise UserError(f"{source}: {key}: {kind} draws {'numbers' if kind != 'randint' else 'integers'}, "
                            f"and {name} takes {f.type.__name__}; expected a list of values")
        if kind != "choice":
            _check_bounds(source, key, kind, values)
        for v in values:
            C.validate(C.with_values(C.Config(), {name: v}))
        out[name] = {kind: values}
    return out


def _check_bounds(source, key, kind, values):
    """[low, high] of a distribution: numbers (integers for randint), low < high (randint's high is
    left out, so it draws low .. high - 1), low > 0 for loguniform; else Ray fails after its start."""
    low, high = values
    whole = kind != "randint" or all(isinstance(v, int) for v in values)
    if not whole or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                            for v in values):
        raise UserError(f"{source}: {key}: {kind} bounds {values}; expected two finite "
                        f"{'integers' if kind == 'randint' else 'numbers'} [low, high]")
    if not low < high:
        raise UserError(f"{source}: {key}: {kind} [{low}, {high}] has low >= high; expected [low, high] with "
                        f"low < high, e.g. [{high}, {low}]" if low > high else
                        f"{source}: {key}: {kind} [{low}, {high}] is one value; expected low < high, or a list "
                        f"[{low}] of one choice")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{source}: {key}: loguniform needs low > 0, got {values}")


def distinct_configs(space):
    """How many different configs the space can draw, or None where a distribution is continuous."""
    n = 1
    for spec in space.values():
        kind, values = next(iter(spec.items()))
        if kind in ("uniform", "loguniform"):
            return None
        n *= len({json.dumps(v) for v in values}) if kind == "choice" else values[1] - values[0]
    return n


def tune_space(space):
    """The space as Ray Tune's samplers."""
    from ray import tune
    make = {"choice": tune.choice, "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v), "randint": lambda v: tune.randint(*v)}
    return {key: make[kind](values) for key, spec in space.items() for kind, values in spec.items()}


def trial_config(base, params, budget_s, out):
    """The config of one trial: the base, the draw, the budget, its run directory, the validation split."""
    return C.finalize(C.with_values(base, {**params, "run.time_budget": budget_s, "run.out": out,
                                           "data.validation": VALIDATION}))


def best_config(base, params, budget_s, out):
    """The found config for `raypose train --config`: scored on the test split again, into `out`."""
    return C.finalize(C.with_values(base, {**params, "run.time_budget": budget_s, "run.out": out,
                                           "data.validation": 0.0}))


def write_text(path, text):
    return atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path, obj):
    return write_text(path, json.dumps(plain(obj), indent=1, sort_keys=True) + "\n")   # NaN as null


def trial_row(trial_id, params, history, status, budget_s, iterations=None):
    """One line of the table: the draw, the last validation score, the time used, how it ended
    (completed: its budget spent; stopped: by the scheduler or the search's time; error).
    `history` is [(seconds since the trial started, score)] per committed iteration it reported;
    `iterations`, those its run holds (a trial cut by a kill and resumed reported only the rest)."""
    last = history[-1][1] if history else math.nan
    return {"trial": trial_id, "status": status, SCORE: last,
            "iterations": len(history) if iterations is None else iterations,
            "time_s": history[-1][0] if history else 0.0, "budget_s": budget_s,
            "stopped_early": status == "stopped", **plain(params)}


def read_trials(out):
    """The trials table a finished search left in search.json."""
    with open(os.path.join(out, "search.json")) as f:
        return json.load(f)["trials"]


def write_outputs(out, rows, histories, base, budget_s, space):
    """best.toml, trials.csv and tune.png in `out`; returns the best row (None when no trial scored)."""
    import pandas as pd

    from raypose.viz.plots import plot_search
    scored = [r for r in rows if not math.isnan(r[SCORE])]
    best = min(scored, key=lambda r: (r[SCORE], str(r["trial"]))) if scored else None   # a tie: the lower id
    frame = pd.DataFrame(rows).sort_values([SCORE, "trial"], na_position="last", kind="stable")
    write_text(os.path.join(out, "trials.csv"), frame.to_csv(index=False))
    plot_search(histories, {r["trial"]: r["status"] for r in rows}, best and best["trial"], budget_s,
                os.path.join(out, "tune.png"))
    if best:
        params = {k: best[k] for k in space}
        cfg = best_config(base, params, budget_s, os.path.join(out, "best_run"))
        header = (f"# raypose tune: trial {best['trial']}, validation P-MPJPE {best[SCORE]:.2f} mm in "
                  f"{best['time_s']:.0f} s of a {budget_s:g} s budget.\n# Scored on the test split by: "
                  f"raypose train --config {os.path.join(out, 'best.toml')}\n")
        write_text(os.path.join(out, "best.toml"), header + C.to_toml(cfg))
    return best

"""`raypose tune`: Ray Tune runs whole `raypose train` runs as trials and keeps the best config.

Each trial is a Tune function that drives one run (its TorchTrainer, or its members in the trial
with run.local) under the same time budget, scored after every iteration by the ensemble's
P-MPJPE on a validation split carved from the training subjects; ASHA stops trials that trail
at its rungs (budget/9, budget/3). The trial function holds no CPU of its own (Tune needs some
resource: 1 MiB of Ray's logical memory): the run's workers ask for theirs, and the planner of
`train` says how many runs fit side by side.
Tune's state lives in OUT/tune_state, so the same command after a driver kill resumes.
"""
import json
import logging
import math
import os
import shutil
import time

from ray.tune import Callback

from raypose import config as C
from raypose.errors import UserError
from raypose.outputs import check_outside_runs, plain
from raypose.tune import search as S

STATE = "tune_state"
SETTINGS = "search.json"


USED = "used_s"   # a trial's clock: seconds of its budget spent, summed over a resumed search's attempts


def _trial(params, base, budget_s, root):
    """One trial: a raypose train run in ROOT/trials/<trial id>, each committed iteration reported.
    A trial resumed after a driver kill trains for what is left of its budget (ROOT/logs/<id>.json)."""
    from ray import tune

    from raypose.run import Run
    from raypose.train.driver import train
    trial = tune.get_context().get_trial_id()
    out, clock = os.path.join(root, "trials", trial), os.path.join(root, "logs", f"{trial}.json")
    os.makedirs(os.path.dirname(clock), exist_ok=True)
    used, t0 = _used(clock), time.time()

    def report(i, record, finished=False):
        spent = used + time.time() - t0
        S.write_json(clock, {USED: spent})
        tune.report({S.SCORE: record["ensemble"]["p_mpjpe_mm"], "iteration": i, USED: spent, "finished": finished})
    its = Run(out).iterations() if os.path.isdir(out) else []
    if its and budget_s - used < 1:   # its budget was spent before the kill: its last record stands
        return report(its[-1], Run(out).record(its[-1]), finished=True)
    cfg = S.trial_config(C.from_dict(base), params, max(1.0, budget_s - used), out)
    with open(os.path.join(root, "logs", f"{trial}.log"), "a") as log:
        def echo(line):
            log.write(line + "\n")
            log.flush()
        last = train(cfg, echo=echo, on_record=report)
    report(last["iteration"], last, finished=True)


def _used(clock):
    try:
        with open(clock) as f:
            return float(json.load(f)[USED])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _dirname(trial):
    return trial.trial_id


def _status(result, budget_s):
    """completed (the function returned, or the run's budget was spent), stopped, or error."""
    if result.error is not None:
        return "error"
    m = result.metrics or {}
    return "completed" if m.get("finished") or m.get(USED, 0) >= budget_s else "stopped"


def _short(params):
    return " ".join(f"{k.split('.')[-1]}={','.join(map(str, v)) if isinstance(v, list) else _num(v)}"
                    for k, v in plain(params).items())


def _num(v):
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class _Lines(Callback):
    """One line per finished trial (a Tune callback, saved with the search: no closures). The
    count and the best so far come from the trials themselves, so a resumed search goes on."""

    def __init__(self, total, budget_s):
        self.total, self.budget_s, self.told = total, budget_s, set()

    def get_state(self):   # kept in the search's state: a resumed search does not tell a trial twice
        return {"told": sorted(self.told)}

    def set_state(self, state):
        self.told = set(state.get("told", ()))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._line(trials, trial, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._line(trials, trial, trial.error_file)

    def on_experiment_end(self, trials, **info):   # trials the search's time limit ended
        for trial in trials:
            if trial.trial_id not in self.told and S.SCORE in (trial.last_result or {}):
                self._line(trials, trial, None)

    def _line(self, trials, trial, error):
        self.told.add(trial.trial_id)
        done = sum(t is trial or t.trial_id in self.told or t.status in ("TERMINATED", "ERROR") for t in trials)
        m = trial.last_result or {}
        score, used = m.get(S.SCORE), m.get(USED, 0.0)
        scored = [((t.last_result or {}).get(S.SCORE), t.trial_id) for t in trials
                  if (t is trial and error is None) or t.status == "TERMINATED"]
        best = min(((s, i) for s, i in scored if s is not None), default=None)
        how = ("failed: " + _error_line(error) if error else
               f"val P-MPJPE {score:.2f} mm after {used:.0f}s" + ("" if m.get("finished") or used >= self.budget_s
                                                                  else " (stopped early)")
               if score is not None else "stopped before its first iteration")
        best = f"; best {best[0]:.2f} mm ({best[1]})" if best else ""
        print(f"trial {done}/{self.total} {trial.trial_id}: {how}{best} | {_short(trial.config)}", flush=True)


def _error_line(error_file):
    """The last line of a trial's error: a UserError's one line, else the exception's."""
    try:
        with open(error_file) as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except (OSError, TypeError):
        return "see its error file"
    mine = [ln.split("UserError: ", 1)[1] for ln in lines if "UserError: " in ln]
    return (mine or lines or ["unknown error"])[-1]


def _settings(base, data, budget_s, trials, space, seed, search_time_s):
    """What a resumed search must repeat: the data, budget, trials, space, seed, time limit and base config."""
    d = base.to_dict()
    d["run"].pop("out")
    d["run"].pop("address")   # where the cluster is, not what is searched
    return {"data": data, "budget_s": budget_s, "trials": trials, "space": space, "seed": seed,
            "search_time_s": search_time_s, "validation": S.VALIDATION, "base": d}


def _check_out(out, settings):
    """True to resume: `out` holds this same search; new or empty: start one (False); a search of other
    settings in which no trial started: start afresh in it (None); anything else refused."""
    if not os.path.exists(out) or (os.path.isdir(out) and not os.listdir(out)):
        return False
    path = os.path.join(out, SETTINGS)
    if not os.path.isdir(out) or not os.path.isfile(path):
        raise UserError(f"--out {out}: exists and is not a raypose search ({SETTINGS}); expected a new or "
                        "empty directory, or a search to resume")
    try:
        with open(path, "rb") as f:
            before = json.loads(f.read()).get("settings")
    except (OSError, ValueError, RecursionError, AttributeError) as e:   # bad bytes are a ValueError too
        raise UserError(f"--out {out}: its {SETTINGS} is unreadable ({type(e).__name__}); expected the file "
                        "raypose tune wrote, or a new --out") from None
    if json.loads(json.dumps(settings)) != before and _untrained(out):
        return None   # a search that stopped before its first trial: the corrected command starts it again
    if json.loads(json.dumps(settings)) != before:
        keys = [k for k in settings if json.loads(json.dumps(settings[k])) != (before or {}).get(k)]
        raise UserError(f"--out {out}: holds a search with other {', '.join(keys)}; expected the same "
                        "command to resume it, or a new --out")
    return True


def _untrained(out):
    """Whether the search in `out` holds only what tune writes before any trial starts (no trial's run or log)."""
    own = {SETTINGS, STATE, "logs", "trials"}
    return set(os.listdir(out)) <= own and not any(
        os.path.isdir(os.path.join(out, d)) and os.listdir(os.path.join(out, d)) for d in ("logs", "trials"))


def _validation(base):
    """The data checked as `train` checks it, and the held-out validation chunks and tails listed
    (only the training chunks are read)."""
    from raypose.data import splits
    from raypose.data.source import open_source, read_sequences
    source = open_source(base.data)
    train_keys, _ = splits.select(source.chunks, base.data.split, base.data.actions or None,
                                  source=source.description, dataset=source.dataset)
    seqs = read_sequences(source, train_keys)
    _, held = splits.validation_split(seqs, S.VALIDATION)
    frames = {}
    for (subject, action, _), kp, _ in held:
        frames[f"{subject}/{action}"] = len(kp)
    return {"share": S.VALIDATION, "frames": sum(frames.values()),
            "train_frames": sum(len(kp) for (_, _, c), kp, _ in seqs if c == seqs[0][0][2]),
            "held_out": frames}


def _concurrency(base, space):
    """Trials at once: as many runs of the largest ensemble as the planner fits in the cluster."""
    import ray

    from raypose.train.plan import at_once
    from raypose.train.run import cluster_types, plan_for
    types = cluster_types(ray)
    if base.run.local:   # each trial holds its CPUs (tune.with_resources): Ray alone decides
        most = max((t.cpus for t in types), default=0)
        if base.run.cpus_per_member > most:
            raise UserError(f"run.cpus_per_member {base.run.cpus_per_member:g}: a local trial holds that many "
                            f"CPUs, and no node has more than {most:g}; expected at most {most:g}")
        return None
    members = space.get("train.members", {})
    most = max(next(iter(members.values()))) if members else base.train.members
    cfg = C.with_values(base, {"train.members": most, "run.members_per_worker": 1})
    return at_once(plan_for(cfg, types), types)


def tune(base, data, budget_s, trials, out, space=None, search_time_s=0.0, seed=0):
    """Search, or resume the search in `out`; writes best.toml, trials.csv, tune.png, search.json there."""
    from ray import tune as T
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from raypose.train.run import ensure_ray
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise UserError(f"--budget-s {budget_s}: expected seconds > 0 per trial")
    if trials < 1:
        raise UserError(f"--trials {trials}: expected an integer >= 1")
    if not (search_time_s >= 0 and math.isfinite(search_time_s)):
        raise UserError(f"--search-time-s {search_time_s}: expected seconds >= 0 (0: no limit)")
    if seed < 0:
        raise UserError(f"--seed {seed}: expected an integer >= 0")
    out = os.path.abspath(out)
    check_outside_runs(out)   # its trials' runs would be written among another run's files
    data = data if data == "synthetic" or "://" in data else os.path.abspath(data)
    base = C.with_values(base, {"data.path": data, "run.out": os.path.join(out, "trials")})
    if base.run.local:   # a local trial trains with as many threads as the CPUs it holds
        base = C.with_values(base, {"run.cpus_per_member": base.run.cpus_per_member or 1})
    space = S.check_space(space or S.DEFAULT_SPACE)
    distinct = S.distinct_configs(space)
    if distinct is not None and distinct < trials:
        print(f"raypose tune: note: the space holds {distinct} distinct config(s), fewer than --trials {trials}; "
              "some trials will train a config again (with the same seed)", flush=True)
    S.trial_config(base, {k: _first(v) for k, v in space.items()}, budget_s, out)   # the base's own checks
    settings = _settings(base, data, budget_s, trials, space, seed, search_time_s)
    resume = _check_out(out, settings)
    validation = _validation(base)
    ensure_ray(base.run.address)
    at_once = _concurrency(base, space)   # the last check that can refuse: nothing is written before it
    if resume is None:   # Tune's state of the search that never started a trial goes with it
        shutil.rmtree(os.path.join(out, STATE), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    S.write_json(os.path.join(out, SETTINGS), {"settings": settings, "validation": validation})
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)   # a trial's error is its line below
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")   # Tune's own tables: one line per trial is ours
    resources = {"CPU": base.run.cpus_per_member} if base.run.local else {"memory": 2 ** 20}
    trainable = T.with_resources(T.with_parameters(_trial, base=base.to_dict(), budget_s=budget_s, root=out),
                                 resources)
    print(f"raypose tune: {trials} trials of {budget_s:g}s, " + (f"{at_once} at a time, " if at_once else "")
          + f"scored on {validation['frames']} validation frames of the training subjects "
          f"({len(validation['held_out'])} chunks and tails); the test split is not read"
          + ("; resuming" if resume else ""), flush=True)
    path = os.path.join(out, STATE)
    if resume and T.Tuner.can_restore(path):
        tuner = T.Tuner.restore(path, trainable=trainable, resume_unfinished=True, resume_errored=False)
    else:
        tuner = T.Tuner(trainable, param_space=S.tune_space(space), tune_config=T.TuneConfig(
            metric=S.SCORE, mode="min", num_samples=trials, time_budget_s=search_time_s or None,
            trial_dirname_creator=_dirname, search_alg=BasicVariantGenerator(random_state=seed,
                                                                             max_concurrent=at_once or 0),
            scheduler=ASHAScheduler(time_attr=USED, max_t=2 * budget_s + 60,
                                    grace_period=budget_s / 9, reduction_factor=3)),
            run_config=T.RunConfig(name=STATE, storage_path=out, verbose=0,
                                   callbacks=[_Lines(trials, budget_s)]))
    t0 = time.time()
    grid = tuner.fit()
    return _finish(out, grid, base, budget_s, space, settings, validation, time.time() - t0)


def _first(spec):
    kind, values = next(iter(spec.items()))
    return values[0]


def _finish(out, grid, base, budget_s, space, settings, validation, wall_s):
    rows, histories = [], {}
    for result in grid:
        if not result.config:   # never started (the search's time limit came first): nothing to tell
            continue
        trial = (result.metrics or {}).get("trial_id") or os.path.basename(result.path)
        frame = result.metrics_dataframe
        history = []
        if frame is not None and len(frame) and S.SCORE in frame:
            frame = frame.drop_duplicates("iteration")
            history = [(float(t), float(s)) for t, s in zip(frame[USED], frame[S.SCORE])]
        histories[trial] = history
        run_dir = os.path.join(out, "trials", trial)
        from raypose.run import Run
        done = len(Run(run_dir).iterations()) if os.path.isdir(run_dir) else None
        rows.append(S.trial_row(trial, {k: result.config[k] for k in space}, history, _status(result, budget_s),
                                budget_s, iterations=done))
    best = S.write_outputs(out, rows, histories, base, budget_s, space)
    S.write_json(os.path.join(out, SETTINGS), {"settings": settings, "validation": validation,
                                               "wall_s": wall_s, "best": best,
                                               "trials": rows})
    if best is None:
        raise UserError(f"{out}: no trial finished an iteration (see {os.path.join(out, 'logs')}); "
                        "expected a budget that fits at least one iteration")
    print(f"best: trial {best['trial']}, validation P-MPJPE {best[S.SCORE]:.2f} mm; wrote "
          f"{os.path.join(out, 'best.toml')}, trials.csv, tune.png", flush=True)
    return best

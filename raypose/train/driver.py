"""`raypose train`: check the config and data, describe the run, train its members (on Ray
workers, or with `run.local` in this process without Ray), and summarise the result."""
import os
import threading
import time

from raypose import config as C
from raypose.data import splits
from raypose.data.source import open_source, source_layout
from raypose.datasets.registry import of_run
from raypose.errors import UserError
from raypose.outputs import check_outside_runs
from raypose.run import Run
from raypose.train.progress import Progress


def train(cfg, echo=print, on_record=None):
    """Train (or resume) the run described by cfg; returns the final iteration record.
    `on_record(i, record)` sees each iteration as it is committed (raypose tune reports it)."""
    cfg = C.finalize(cfg)
    if cfg.run.local and not cfg.run.members_per_worker:   # one process: members one after another
        cfg = C.with_values(cfg, {"run.members_per_worker": 1})
    if "://" not in cfg.run.out:   # workers run in other directories (and on other machines)
        if os.path.exists(cfg.run.out) and not os.path.isdir(cfg.run.out):
            raise UserError(f"--out {cfg.run.out}: is a file; expected a run directory (new or to resume)")
        cfg = C.with_values(cfg, {"run.out": os.path.abspath(cfg.run.out)})
    files = {f"data.{key}": os.path.abspath(getattr(cfg.data, key)) for key in ("path", "skeleton", "cameras")
             if getattr(cfg.data, key) not in ("", "synthetic") and "://" not in getattr(cfg.data, key)}
    cfg = C.with_values(cfg, files)   # evaluate and resume from any directory; skeleton, cameras: for the record
    if "://" not in cfg.run.out:
        check_outside_runs(cfg.run.out)   # a new run inside another run's directory would mix with its files
    run = Run(cfg.run.out)
    run.acquire()   # one driver per run directory, whatever its config
    ok = False
    try:
        last = _train(cfg, run, echo, on_record)
        ok = True
        return last
    finally:
        try:
            if not ok:   # a failed iteration leaves no member file without its record
                run.clean_incomplete()
        finally:
            run.release()


def _as_stored(cfg, run):
    """cfg with the run's own spelling of its data files where both name the same file (resolved): an
    older run keeps a relative --data (from its directory), and a link and its target are one file."""
    if not run.exists("config.toml"):
        return cfg
    stored, same = run.config.data, {}
    for key in ("path", "skeleton", "cameras"):
        mine, theirs = getattr(cfg.data, key), getattr(stored, key)
        if (mine != theirs and "synthetic" not in (mine, theirs) and mine and theirs and "://" not in mine + theirs
                and os.path.realpath(mine) == os.path.realpath(theirs)):
            same[f"data.{key}"] = theirs
    return C.with_values(cfg, same)


def _train(cfg, run, echo, on_record):
    cfg = _as_stored(cfg, run)
    new = run.check_config(cfg)
    start = run.latest()
    if start >= cfg.train.iterations:
        echo(f"{run.uri}: already complete at iteration {start}")
        return finish(run)
    if start:
        run.verify(start)   # a damaged member is the user's one line here, not a worker's traceback
    source = open_source(cfg.data, None if new else of_run(run.layout))   # resumed: the run's skeleton, cameras
    layout = source_layout(source)
    train_keys, test = splits.select(source.chunks, cfg.data.split, cfg.data.actions or None,
                                     source=source.description, dataset=source.dataset)
    labelled, unlabelled = splits.labelled_split(train_keys, cfg.semi.labelled_fraction, cfg.train.seed)
    if cfg.data.validation:   # the workers score on frames carved from `labelled`: no test chunk is sent
        test = []
    deadline = time.time() + cfg.run.time_budget if cfg.run.time_budget else 0.0
    chunks = (labelled, unlabelled, test)
    if cfg.run.local:
        where = "this process (local)"

        def wait(progress):
            _train_local(cfg, layout, run, source, chunks, deadline, progress)
    else:
        from raypose.train.run import fit, placement_watch
        where, ray_fit, p = fit(cfg, layout, run, source, chunks, deadline)
        watch = placement_watch(cfg, p, echo)

        def wait(progress):
            _poll_while(ray_fit, progress, watch)
    if new:   # only now that the data and options are known to be good
        run.describe(cfg, layout)
    run.clean_incomplete()
    echo(f"raypose: {cfg.train.members} members on {where}, {source.description}, split {cfg.data.split}: "
         f"{len(labelled)} train" + (f" + {len(unlabelled)} unlabelled ({cfg.semi.mode})" if unlabelled else "")
         + (f" / {len(test)} eval chunks; " if test else
            f" ({cfg.data.validation:.0%} of their frames held out to validate; the test split unread); ")
         + (f"resuming after iteration {start}" if start else "starting")
         + (f"; time budget {cfg.run.time_budget:g}s" if cfg.run.time_budget else ""))
    progress = Progress(run, cfg, start, echo, on_record)
    try:
        wait(progress)
    finally:
        progress.close()
    return finish(run)


def _train_local(cfg, layout, run, source, chunks, deadline, progress):
    """Every member in this process, no Ray: the same worker, reading the frames directly."""
    import torch

    from raypose.train.windowset import from_source
    from raypose.train.worker import EnsembleWorker
    windows = from_source(cfg, layout, source, chunks)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg.run.cpus_per_member) or os.cpu_count() or 1)
    try:
        worker = EnsembleWorker(cfg, layout, run, windows, deadline=deadline, lease=run.lease_token)
        worker.run_iterations(after=lambda i, record, stop: progress.poll())
    finally:
        torch.set_num_threads(threads)


def _poll_while(wait, progress, watch=lambda: None):
    """Run `wait` (TorchTrainer.fit) in a thread while this one polls the run for progress and
    `watch` checks that the workers got their resources (it raises when they never will)."""
    outcome = {}

    def target():
        try:
            wait()
        except BaseException as e:  # re-raised in the driver thread below
            outcome["error"] = e
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(1.0)
        progress.poll()
        watch()
    progress.poll()
    if "error" in outcome:
        from raypose.train.run import user_error
        raise user_error(outcome["error"]) or outcome["error"]


def finish(run):
    """metrics.json's training part (the last record and the curve over iterations), merged
    with what is there (an evaluation stays); returns the last record."""
    its = run.iterations()
    if not its:
        raise UserError(f"{run.uri}: no complete iteration was written")
    history = [run.record(i) for i in its]
    last = history[-1]
    run.update_metrics({
        "iteration": last["iteration"], "members": last["members"], "config_hash": last["config_hash"],
        "last": last,
        "curve": [{"iteration": r["iteration"], "train_loss": r["train_loss"], "ensemble": r["ensemble"],
                   "member_p_mpjpe_mm": r["member_p_mpjpe_mm"], "member_mpjpe_mm": r["member_mpjpe_mm"]}
                  for r in history]})
    return last

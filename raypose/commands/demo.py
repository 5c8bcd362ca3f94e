"""`raypose demo`: the main job on built-in synthetic data, end to end on a laptop CPU."""
import os
import shutil
from importlib import resources

from raypose import config as C
from raypose.outputs import check_replaceable


def demo_config(out, **overrides):
    cfg = C.load(resources.files("raypose") / "configs" / "demo.toml")
    return C.finalize(C.with_values(cfg, {"run.out": os.fspath(out), **overrides}))


# What `raypose demo` itself sets: the rest of a run's config is the demo's own (configs/demo.toml).
DEMO_KEYS = {"data": ("synthetic_frames", "synthetic_seed"), "run": ("out", "members_per_worker")}


def demo_differences(stored):
    """The config keys in which a run's config (`stored`) is not the demo's, apart from what the
    demo's flags and train set (DEMO_KEYS); [] for a run the demo wrote."""
    mine, theirs = demo_config("x").to_dict(), stored.to_dict()
    return [f"{section}.{key} {theirs[section][key]!r} (the demo's: {value!r})"
            for section, values in mine.items() for key, value in values.items()
            if key not in DEMO_KEYS.get(section, ()) and theirs[section][key] != value]


def _check_demo_run(out):
    """`out` is a run the demo wrote (its config the demo's), or one line: a trained run of the user's
    is never deleted to make room for the demo."""
    from raypose.errors import UserError
    from raypose.run import Run
    try:
        diff = demo_differences(Run(out).config)
    except UserError as e:
        diff = [f"its config.toml is unreadable ({e})"]
    if diff:
        raise UserError(f"--out {out}: a run the demo did not write ({'; '.join(diff[:2])}), which demo does not "
                        "replace; expected a new or empty directory, or a run an earlier demo wrote")


def run_demo(out="runs/demo", echo=print, **overrides):
    """Train the demo ensemble from scratch and print ensemble vs member errors."""
    from raypose.train.driver import train

    out = os.path.abspath(out)
    cfg = demo_config(out, **overrides)   # every argument checked before anything is deleted
    check_replaceable(out, overwrite=True, kind="run")   # only a raypose run is ever replaced
    if os.path.isdir(out) and os.listdir(out):
        from raypose.run import Run
        _check_demo_run(out)   # and only one the demo wrote
        Run(out).acquire()   # a run some driver is writing right now is refused, not deleted
        shutil.rmtree(out)   # an earlier run: the demo always starts fresh
    last = train(cfg, echo=echo)
    e = last["ensemble"]
    members = ", ".join(f"{x:.1f}" for x in last["member_p_mpjpe_mm"])
    mean_member = sum(last["member_p_mpjpe_mm"]) / len(last["member_p_mpjpe_mm"])
    echo(f"run directory: {out}")
    echo(f"ensemble of {last['members']} after iteration {last['iteration']}: "
         f"MPJPE {e['mpjpe_mm']:.1f} mm, P-MPJPE {e['p_mpjpe_mm']:.1f} mm; members P-MPJPE "
         f"{members} mm (mean {mean_member:.1f}); gain {mean_member - e['p_mpjpe_mm']:.1f} mm")
    return last

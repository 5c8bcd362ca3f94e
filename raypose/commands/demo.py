"""`raypose demo`: the main job on built-in synthetic data, end to end on a laptop CPU."""
import os
import shutil
from importlib import resources

from raypose import config as C
from raypose.outputs import check_replaceable


def demo_config(out, **overrides):
    cfg = C.load(resources.files("raypose") / "configs" / "demo.toml")
    return C.finalize(C.with_values(cfg, {"run.out": os.fspath(out), **overrides}))


def run_demo(out="runs/demo", echo=print, **overrides):
    """Train the demo ensemble from scratch and print ensemble vs member errors."""
    from raypose.train.driver import train

    out = os.path.abspath(out)
    cfg = demo_config(out, **overrides)   # every argument checked before anything is deleted
    check_replaceable(out, overwrite=True, kind="run")   # only a raypose run is ever replaced
    if os.path.isdir(out) and os.listdir(out):
        from raypose.run import Run
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

"""Benchmark: the ensemble fitted onto its input 2D, against the ensemble as the members predict
it, on exact 2D and with Gaussian pixel noise on the 2D.

    python scripts/bench_fit_2d.py [--run bench_out/budget] [--noise 0,1,2,5] [--json benchmarks/fit_2d.json]

--run: a finished run with cameras.json (default: the one scripts/bench_budget.py leaves). The
focal lengths are the run's own, fitted on its training windows; noise is added to the
evaluation 2D only (the members and the focal lengths stay), so the table shows where the 2D
stops being exact enough for the fit to pay. P-MPJPE: action-wise mean per subject, then over
subjects.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchlib import header, write  # noqa: E402

from raypose.ensemble.aggregate import DEFAULT_AGGREGATE, aggregate  # noqa: E402
from raypose.ensemble.corrupt import gaussian  # noqa: E402
from raypose.ensemble.ensemble import Ensemble  # noqa: E402
from raypose.evaluation.evaluate import eval_windows, protocol  # noqa: E402
from raypose.model.geometry import fit_windows  # noqa: E402
from raypose.run import Run  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="bench_out/budget")
    ap.add_argument("--noise", default="0,1,2,5", help="2D noise levels, pixels of a 640 px wide image")
    ap.add_argument("--json", default="benchmarks/fit_2d.json")
    args = ap.parse_args()
    run = Run.open(args.run)
    it, cfg = run.iteration(), run.config
    focals = run.focals()
    if focals is None:
        sys.exit(f"{run.path('cameras.json')}: not found; expected a run on 15-joint 2D trained by this version")
    windows, source = eval_windows(cfg)
    ensemble = Ensemble.load(run, it)
    rows = []
    for px in (float(x) for x in args.noise.split(",")):
        w = gaussian(windows, px) if px else windows
        ens = aggregate(ensemble.predict(w, tta=True), DEFAULT_AGGREGATE)
        plain, fitted = protocol(windows, ens)[1], protocol(windows, fit_windows(ens, w, focals))[1]
        rows.append({"noise_px": px, "p_mpjpe": plain["p_mpjpe"], "mpjpe": plain["mpjpe"],
                     "fit_2d_p_mpjpe": fitted["p_mpjpe"], "fit_2d_mpjpe": fitted["mpjpe"]})
        print(f"{px:g} px: P-MPJPE {plain['p_mpjpe']:.1f} mm, fitted to the 2D {fitted['p_mpjpe']:.1f} mm")
    res = {**header(), "run": args.run, "data": source.description, "iteration": it,
           "members": cfg.train.members, "channels": cfg.model.channels, "aggregate": DEFAULT_AGGREGATE,
           "focal": focals, "rows": rows}
    write(args.json, res)


if __name__ == "__main__":
    main()

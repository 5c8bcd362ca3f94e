"""`raypose plot`: a run's evaluation as pictures, and one sequence as an animation."""
import os
import tempfile

import numpy as np

from .cameras import CAMERA_NAMES, image_coordinates
from .data.source import open_source, read_sequences
from .data.windows import make_windows
from .ensemble import Ensemble
from .errors import UserError
from .outputs import check_out_file
from .run import Run


def run_plots(run_uri):
    """PNG figures into RUN/plots from the evaluation in metrics.json (evaluated first if needed);
    returns the paths (or URIs) written.

    Rendered into a temporary local directory, then written into the run through `Run`, so a run
    in S3 or GCS gets its plots too, each file whole under its real name (atomic writes).
    """
    from . import plots
    from .evaluate import evaluate

    run = Run.open(run_uri)
    ev = run.metrics().get("evaluation") or evaluate(run_uri, echo=lambda s: None)
    data = {"table": ev["table"], "ensemble_size": ev["ensemble_size"],
            "per_joint": ev["per_joint"], "sparsification": ev["calibration"]["sparsification"]}
    for key in ("iterations", "uncertainty"):
        if key in ev:
            data[key] = ev[key]
    written = []
    with tempfile.TemporaryDirectory(prefix="raypose-plots-") as tmp:
        for path in plots.save_all(data, tmp):
            name = os.path.basename(path)
            with open(path, "rb") as f:
                run.write_bytes(f"plots/{name}", f.read())
            written.append(_location(run, f"plots/{name}"))
    return written


def _location(run, rel):
    """What to tell the user: a local path as before, else the URI the run was given."""
    return os.path.join(run.root, *rel.split("/")) if run.local else f"{run.uri.rstrip('/')}/{rel}"


def animation(run_uri, sequence, camera, out, iteration=None, method=None, overwrite=False):
    """GIF of one (subject, action, camera): 2D input beside the ensemble's 3D and the ground truth."""
    from .animation import animate

    if not out:
        raise UserError("--animate needs --out FILE.gif")
    check_out_file(out, overwrite=overwrite, what="a GIF file")
    if "/" not in sequence:
        raise UserError(f"--animate {sequence!r}: expected SUBJECT/ACTION such as 'Validate/S1/Walking 1 chunk0'")
    subject, action = sequence.rsplit("/", 1)
    if camera not in CAMERA_NAMES:
        raise UserError(f"--camera {camera!r}: expected one of {', '.join(CAMERA_NAMES)}")
    run = Run.open(run_uri)
    ensemble = Ensemble.load(run, iteration)
    source = open_source(run.config.data)
    chunks = [(s, a) for s, a in source.chunks if s == subject and (a == action or a.startswith(action))]
    if not chunks:
        raise UserError(f"--animate {sequence!r}: no such subject/action in {source.description}")
    seqs = [s for s in read_sequences(source, chunks[:1]) if s[0][2] == camera and len(s[1])]
    if not seqs:
        raise UserError(f"--camera {camera}: {chunks[0][0]}/{chunks[0][1]} has no frames from it in "
                        f"{source.description}; expected one of its cameras")
    windows = make_windows(seqs, int(np.prod(run.config.model.widths)))
    _, ens, unc = ensemble.pose(windows, run.config.train.flip, method)
    sk = ensemble.layout.skeleton
    title = f"{chunks[0][0]} {chunks[0][1]} {camera}, {len(ensemble)} members, iteration {ensemble.iteration}"
    return animate(image_coordinates(seqs[0][1]), ens, out, gt3d=windows.targets, spread=unc, title=title,
                   parents=sk.parents, left=sk.left, right=sk.right)

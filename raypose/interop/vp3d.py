"""VideoPose3D checkpoints both ways: its trained models in as a run's members, a member out as its file.

VideoPose3D's run.py saves `{'epoch', 'lr', 'random_state', 'optimizer', 'model_pos', ...}`;
`model_pos` is the state dict of its TemporalModel, whose parameter names raypose's model shares
(raypose/model/temporal.py), so only the shapes need reading: expand_conv (C, J_in * 2, w0), one
(C, C, w_i) and one 1x1 conv per block, shrink (J_out * 3, C, 1). A dense (`--dense`) model's
kernel widths follow a pattern that is refused (`dense_filters`); causal (`--causal`) models have
weights of the same form and cannot be told apart (docs/usage.md says what becomes of them).
Files are unpickled with `weights_only=True`, allowing only what numpy's random state
(`random_state`) needs besides tensors and numbers.
"""
import hashlib
import json
import numbers
import os
import pickle
import re
import time
import warnings

from raypose import config as C
from raypose.datasets.keypoints import LAYOUTS
from raypose.datasets.layout import Layout
from raypose.errors import UserError
from raypose.npzfile import atomic_write
from raypose.outputs import KINDS, atomic_dir, check_out_file, check_replaceable
from raypose.run import Run, member_name, torch_bytes

VP3D_KEYS = ("epoch", "lr", "random_state", "optimizer", "model_pos")   # what export-member writes
# VideoPose3D also saves 'model_traj' and 'random_state_semi' (None unless semi-supervised); left out:
# its run.py --evaluate loads checkpoint['model_traj'] whenever the key is there, even when it is None.
EXPECTED = "expected a checkpoint VideoPose3D's run.py saved (epoch_N.bin, with model_pos)"
KEYPOINTS = {15: "humaneva15", 17: "coco"}   # the 2D layout of a model's input joints unless --keypoints says


def numpy_globals():
    """Exactly the numpy globals that numpy's RandomState.get_state() tuple needs when unpickled:
    its uint32 key array (ndarray, dtype and the dtype's class), under numpy 1's and 2's module names."""
    import numpy as np
    core = getattr(np, "_core", None) or np.core
    rebuild = core.multiarray._reconstruct
    return [(rebuild, "numpy.core.multiarray._reconstruct"), (rebuild, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def read_checkpoint(path):
    """The dict a VideoPose3D checkpoint holds, unpickled allow-listed, or one line naming what is wrong."""
    import torch
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{path}: a directory; expected a .bin checkpoint file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: not found; {EXPECTED}")
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(numpy_globals()):
            warnings.simplefilter("ignore")   # torch's notes on a file's pickle protocol: the one line says it
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_global(str(e))
        if refused:
            raise UserError(f"{path}: holds {refused}, which raypose does not unpickle (only tensors, numbers "
                            f"and numpy's random state); {EXPECTED}") from None
        raise UserError(f"{path}: not a torch checkpoint (unpickling failed); {EXPECTED}") from None
    except Exception as e:   # torch.load of an arbitrary file fails in many ways: all mean the same here
        raise UserError(f"{path}: not a torch checkpoint ({type(e).__name__}); {EXPECTED}") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint dict; {EXPECTED}")
    if "model_pos" not in ckpt:
        hint = " (a raypose member checkpoint: its run is already a run)" if "model_args" in ckpt else ""
        raise UserError(f"{path}: no 'model_pos' (keys: {', '.join(map(str, list(ckpt)[:6]))}){hint}; {EXPECTED}")
    return ckpt


def _refused_global(message):
    """The global torch's weights-only unpickler refused, from its message, or None."""
    m = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"but got <class '([\w.]+)'>", message)
    return m.group(1) if m else None


def architecture(state, where):
    """TemporalModel arguments read from a `model_pos` state dict's shapes: joints in and out,
    filter widths and channels; one line for anything that is not VideoPose3D's TemporalModel."""
    import torch
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{where}: model_pos is not a state dict of tensors; {EXPECTED}")
    missing = [k for k in ("expand_conv.weight", "shrink.weight") if k not in state]
    if missing:
        raise UserError(f"{where}: model_pos lacks {', '.join(missing)}; expected the state dict of VideoPose3D's "
                        "TemporalModel (expand_conv, layers_conv, layers_bn, shrink)")
    expand, shrink = state["expand_conv.weight"], state["shrink.weight"]
    if expand.dim() != 3 or expand.shape[1] % 2 or shrink.dim() != 3 or shrink.shape[0] % 3:
        raise UserError(f"{where}: expand_conv.weight {tuple(expand.shape)}, shrink.weight {tuple(shrink.shape)}; "
                        "expected (C, joints x 2, width) and (joints x 3, C, 1) as VideoPose3D's TemporalModel")
    widths = [int(expand.shape[2])]
    while f"layers_conv.{2 * (len(widths) - 1)}.weight" in state:
        w = state[f"layers_conv.{2 * (len(widths) - 1)}.weight"]
        widths.append(int(w.shape[-1]) if w.dim() == 3 else 0)
    if any(w < 1 or w % 2 == 0 for w in widths):
        raise UserError(f"{where}: filter widths {_csv(widths)}; expected odd widths as VideoPose3D's TemporalModel")
    dense = dense_filters(widths)
    if dense:
        raise UserError(f"{where}: looks like a --dense model: widths {', '.join(map(str, widths))} = dense "
                        f"{_csv(dense)}; expected VideoPose3D's default dilated model")
    return {"num_joints_in": int(expand.shape[1]) // 2, "num_joints_out": int(shrink.shape[0]) // 3,
            "widths": widths, "channels": int(expand.shape[0])}


def dense_filters(widths):
    """The filter widths f of VideoPose3D's `--dense` model whose kernels have these widths, or None.
    A dense layer i has the width of its dilated twin's span: w_0 = f_0, w_i = (f_i - 1) * prod(f_<i) + 1
    (3, 7, 19 for dense 3,3,3); widths that fit and differ from f (a dilated model's) are a dense model."""
    filters, span = [widths[0]], widths[0]
    for w in widths[1:]:
        f, rest = divmod(w - 1, span)
        if rest or f % 2:   # f_i - 1 is even: VideoPose3D's filter widths are odd
            return None
        filters.append(f + 1)
        span *= f + 1
    return filters if filters != widths else None


def load_model(state, arch, where):
    """raypose's TemporalModel with `state` loaded: every key and shape checked first, so a state
    dict of another model is one line naming the keys. Old PyTorch saved no `num_batches_tracked`."""
    from raypose.model.temporal import TemporalModel
    model = TemporalModel(**arch)
    own = model.state_dict()
    state = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **state}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise UserError(f"{where}: model_pos is not VideoPose3D's TemporalModel ("
                        + "; ".join(f"{what} keys {_few(keys)}" for what, keys in (("missing", missing),
                                                                                 ("unexpected", unexpected)) if keys)
                        + f"); expected the keys of its TemporalModel with widths {_csv(arch['widths'])}")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{where}: model_pos[{k!r}] has shape {tuple(state[k].shape)}; expected "
                            f"{tuple(v.shape)} (channels {arch['channels']}, widths {_csv(arch['widths'])})")
    model.load_state_dict(state)
    return model.eval()


def layout_for(arch, where, keypoints=None):
    """(2D layout name, the run's layout) for a model of these joint counts: HumanEva-15 3D from
    HumanEva-15 2D, or from COCO-17 detections (as VideoPose3D's published HumanEva model). The
    weights give only the count: `keypoints` names the layout, else KEYPOINTS assumes one."""
    j_in, j_out = arch["num_joints_in"], arch["num_joints_out"]
    if j_out != 15 or j_in not in KEYPOINTS:
        raise UserError(f"{where}: a model of {j_in} 2D joints -> {j_out} 3D joints; expected 15 -> 15 (HumanEva-15) "
                        "or 17 -> 15 (COCO-17 keypoints -> HumanEva-15): raypose has no layout for other skeletons")
    name = keypoints or KEYPOINTS[j_in]
    if name not in LAYOUTS or LAYOUTS[name].num_joints != j_in:
        raise UserError(f"--keypoints {name}: {where} takes {j_in} 2D joints; expected --keypoints {KEYPOINTS[j_in]} "
                        f"(the {j_in}-joint layout raypose knows)")
    return name, Layout.of(j_in, LAYOUTS[name].symmetry, name_2d=name)   # predict tells COCO-17 by name


def flags(arch):
    """VideoPose3D's command-line flags that rebuild this architecture."""
    return f"--architecture {_csv(arch['widths'])} --channels {arch['channels']}"


def _csv(values):
    return ",".join(str(v) for v in values)


def _few(keys, n=4):
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def _describe(arch):
    rf = 1
    for w in arch["widths"]:
        rf *= w
    return (f"{arch['num_joints_in']} -> {arch['num_joints_out']} joints, channels {arch['channels']}, "
            f"widths {_csv(arch['widths'])} (receptive field {rf} frames)")


# ---- import ------------------------------------------------------------------------------------

def read_members(paths):
    """[(path, checkpoint dict, arch, model)] for every file, all of one architecture, or one line."""
    members = []
    for path in paths:
        ckpt = read_checkpoint(path)
        arch = architecture(ckpt["model_pos"], os.fspath(path))
        members.append((os.fspath(path), ckpt, arch, load_model(ckpt["model_pos"], arch, os.fspath(path))))
    first_path, _, first, _ = members[0]
    for path, _, arch, _ in members[1:]:
        if arch != first:
            raise UserError(f"{path}: {_describe(arch)}, but {first_path}: {_describe(first)}; expected members "
                            "of one architecture in one run")
    return members


def import_members(paths, out, data="synthetic", overwrite=False, keypoints=None):
    """A run directory at `out` whose members (iteration 0) are VideoPose3D checkpoints; the lines to print."""
    from raypose.ensemble.ensemble import model_args
    if not paths:
        raise UserError("import-members: no checkpoint given; expected one or more FILE.bin")
    if "://" in os.fspath(out):
        raise UserError(f"--out {out}: import-members writes a local directory; expected a local path")
    check_replaceable(out, overwrite, paths, kind="run")   # before any file is read
    _check_replaceable_run(out)
    members = read_members(paths)
    arch = members[0][2]
    kp_name, layout = layout_for(arch, members[0][0], keypoints)
    values = {"data.path": _data_path(data, arch["num_joints_in"], kp_name), "model.channels": arch["channels"],
              "model.widths": arch["widths"], "train.members": len(members), "uncertainty.holdout": 0.0,
              "run.out": os.path.abspath(out)}
    cfg = C.finalize(C.with_values(C.Config(), values))
    sources = []
    with atomic_dir(out, overwrite, paths, kind="run") as tmp:
        run = Run(tmp)
        run.write_bytes("config.toml", _config_toml(cfg, values).encode())   # Run.describe's files, but only
        run.write_json("layout.json", layout.to_dict())                         # what the import knows
        files = {}
        for k, (path, ckpt, _, model) in enumerate(members):
            weights = {"model": model.state_dict(), "model_args": model_args(cfg.model, layout),   # Member.state_dict's
                       "epoch": _int(ckpt.get("epoch")), "index": k, "lr": _float(ckpt.get("lr"))}   # keys, and lr
            name = member_name(len(members), k, 0)
            files[name] = run.write_bytes(f"checkpoints/{name}", torch_bytes(weights))
            sources.append({"member": k, "file": os.path.basename(path), "path": os.path.abspath(path),
                            "sha256": _sha256(path), "epoch": weights["epoch"]})
        run.write_json("checkpoints/iter0.json", {   # the commit point, as a trained run's
            "iteration": 0, "members": len(members), "config_hash": cfg.hash(), "epochs_done": 0,
            "files": files, "time": time.time(),
            "imported": {"from": "VideoPose3D checkpoints (model_pos)", "members": sources,
                         "keypoints": kp_name, "keypoints_assumed": keypoints is None}})
    return _import_lines(out, arch, kp_name, keypoints is None, sources)


def _check_replaceable_run(out):
    """--overwrite replaces only a run import-members wrote that no driver is writing: never a
    trained run's iterations, nor a run whose training holds its lease (raypose/run.py)."""
    if not (os.path.isdir(out) and KINDS["run"][0](out, os.listdir(out))):
        return
    run = Run(out)
    owner = run.live_lease()
    if owner:
        raise UserError(f"--out {out}: a run being written now (lease.json: host {owner.get('host')}, pid "
                        f"{owner.get('pid')}); expected a run no driver is writing, or another --out")
    trained = [i for i in run.iterations() if not _imported(run, i)]
    if trained:
        raise UserError(f"--out {out}: a run trained by raypose (iterations {_csv(trained)}), which --overwrite does "
                        "not replace; expected a new or empty directory, or a run import-members wrote")


def _imported(run, i):
    try:
        return "imported" in run.record(i)
    except UserError:   # an unreadable record: nothing says it was imported
        return False


def _config_toml(cfg, values):
    """config.toml of an imported run: the keys the import sets (`values`) and those finalize derives;
    every other key is left to raypose's default, which says nothing of how the members were trained."""
    default = C.Config().to_dict()
    lines = ["# raypose import-members: VideoPose3D members. Only what the weights say (model, members) and",
             "# the import's own choices (data, no calibration) are written; any other key is raypose's default,",
             "# not how the members were trained. raypose train refuses this run (no fine-tuning).", ""]
    for section, items in cfg.to_dict().items():
        keep = {k: v for k, v in items.items() if f"{section}.{k}" in values or v != default[section][k]}
        if keep:
            lines += [f"[{section}]", *(f"{k} = {json.dumps(v)}" for k, v in keep.items()), ""]
    return "\n".join(lines)


def _import_lines(out, arch, kp_name, assumed, sources):
    kp = {"coco": "COCO-17", "humaneva15": "HumanEva-15"}[kp_name]
    lines = [f"wrote {out}: {len(sources)} VideoPose3D member(s), {_describe(arch)}, {kp} 2D -> HumanEva-15 3D"]
    if assumed and kp_name == "coco":
        lines.append(f"  2D keypoints: {kp_name} (assumed for {arch['num_joints_in']} input joints; --keypoints "
                     "states it), recorded in checkpoints/iter0.json")
    lines += [f"  member {s['member']}: {s['file']} (epoch {s['epoch']}, sha256 {s['sha256'][:16]})" for s in sources]
    lines.append("  no calibrated radii (predict writes no radius) and no cameras.json (a trajectory needs --focal)")
    return lines


def _data_path(data, joints, kp_name):
    """--data as config.toml keeps it ('synthetic', a URI, or an existing local path made absolute),
    checked to hold 2D of the model's input joints, which evaluate and plot feed it."""
    data = os.fspath(data or "synthetic")
    if data == "synthetic":
        if joints != 15:
            raise UserError(f"--data synthetic (the default): raypose's built-in synthetic 2D has 15 joints, but the "
                            f"model takes {joints} ({kp_name}); expected --data DIR holding {kp_name} 2D, e.g. from "
                            f"raypose synth --layout {kp_name} --out DIR")
        return data
    if "://" not in data:
        if not os.path.exists(data):
            raise UserError(f"--data {data}: not found; expected an npz or prepared directory, a URI, or 'synthetic'")
        data = os.path.abspath(data)
    from raypose.data.source import open_source
    found = open_source(C.DataConfig(path=data)).num_joints_2d
    if found != joints:
        raise UserError(f"--data {data}: its 2D has {found} joints; expected {joints} ({kp_name}) as the model takes")
    return data


def _int(value):
    """VideoPose3D's epoch as an int (0 where a file has none)."""
    return int(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else 0


def _float(value):
    """VideoPose3D's learning rate as a float (None where a file has none): nothing numpy goes into a member."""
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- export ------------------------------------------------------------------------------------

def export_member(run_uri, member, out, iteration=None, overwrite=False):
    """Member `member` of a run at `iteration` (default: the latest) as a file VideoPose3D's run.py
    loads with --evaluate; the lines to print (the file, and the flags that rebuild the model)."""
    from raypose.ensemble.ensemble import model_args
    check_out_file(out, overwrite=overwrite, what="a VideoPose3D checkpoint (.bin)",
                   runs=[] if "://" in os.fspath(run_uri) else [run_uri])   # a file in a run could replace its own
    run = Run.open(run_uri)
    i = run.iteration(iteration)
    n = run.config.train.members
    if not 0 <= member < n:
        raise UserError(f"--member {member}: the run has {n} members; expected 0 to {n - 1}")
    state = run.load_member(member, i)
    arch = state.get("model_args") or model_args(run.config.model, run.layout)
    arch = {k: arch[k] for k in ("num_joints_in", "num_joints_out", "widths", "channels")}
    model = load_model(state["model"], arch, run.path("checkpoints", member_name(n, member, i)))
    epoch = _int(state.get("epoch"))
    # VideoPose3D reads lr, optimizer and random_state only with --resume, which the None values here
    # would crash: the file is for --evaluate alone. lr is kept for the way back (import-members).
    lr = state.get("lr") or run.config.train.lr * run.config.train.lr_decay ** epoch
    ckpt = {"epoch": epoch, "lr": float(lr), "random_state": None, "optimizer": None,
            "model_pos": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    data = torch_bytes(ckpt)
    atomic_write(out, lambda f: f.write(data), ".bin.tmp")
    return _export_lines(out, run, member, i, epoch, arch)


def _export_lines(out, run, member, i, epoch, arch):
    lines = [f"wrote {out}: member {member} of {run.uri} at iteration {i} (epoch {epoch}), {_describe(arch)}",
             f"VideoPose3D flags: {flags(arch)} (for run.py --evaluate; --resume is not supported)"]
    dataset = {15: "gt", 17: "detectron_pt_coco"}.get(arch["num_joints_in"])
    if run.layout.skeleton.name == "humaneva15" and dataset:
        folder, name = os.path.split(os.path.abspath(out))
        lines.append(f"e.g. python run.py -d humaneva15 -k {dataset} -str Train/S1,Train/S2,Train/S3 "
                     f"-ste Validate/S1,Validate/S2,Validate/S3 -a Walk,Jog,Box -c {folder} --evaluate {name} "
                     f"{flags(arch)}")
    return lines

"""`raypose export`: a prediction file (`raypose predict`'s .npz or .parquet) as files for animation tools
and spreadsheets.

BVH: one file per track (subject/action/camera), solved by `bvh.build`. CSV: one table, a row
per frame. JSON: one object per track with per-frame lists. The prediction is read and checked
whole before anything is written; the output folder appears whole or not at all
(`outputs.atomic_dir`), with `raypose_export.json` saying what is in it.
"""
import json
import math
import os
from dataclasses import dataclass

import numpy as np

from raypose.datasets.cameras import FPS
from raypose.datasets.keypoints import LAYOUTS, layout_of
from raypose.errors import UserError
from raypose.interop import bvh as B
from raypose.interop.predfile import is_parquet, read_parquet
from raypose.npzfile import read_npz
from raypose.outputs import EXPORT_SUMMARY as SUMMARY
from raypose.outputs import atomic_dir, check_replaceable, plain

FORMATS = ("bvh", "csv", "json")   # the CLI's --format choices
DEFAULT_FPS = float(FPS)   # HumanEva-I's video rate, for predictions written before predict recorded "fps"
UNITS = "metres, camera coordinates (x right, y down, z forward), positions root-relative (root at 0)"
OPTIONAL = ("uncertainty", "radius", "filled", "trajectory")   # arrays a prediction may have beside positions_3d


@dataclass
class Track:
    subject: str
    action: str
    camera: str
    arrays: dict   # positions_3d (T, J, 3) and the OPTIONAL arrays the file has (filled: (T, J2))

    @property
    def frames(self):
        return len(self.arrays["positions_3d"])


@dataclass
class Prediction:
    path: str
    joint_names: tuple
    parents: tuple
    left: tuple
    right: tuple
    joint_names_2d: tuple   # the run's 2D joints, what `filled` is over
    quantiles: tuple
    tracks: list
    metadata: dict


def _meta(content, path):
    """(joint names, parents, left, right, 2D joint names, metadata) from metadata['layout'], checked."""
    meta = content.get("metadata")
    where = f"{path}: metadata['layout']['skeleton']"
    if not isinstance(meta, dict):
        raise UserError(f"{path}: not a raypose prediction: missing key 'metadata'; expected the npz "
                        "`raypose predict` writes")
    skel = meta.get("layout", {}).get("skeleton") if isinstance(meta.get("layout"), dict) else None
    if not isinstance(skel, dict) or "joint_names" not in skel or "parents" not in skel:
        raise UserError(f"{where}: missing (or without joint_names and parents); expected the layout "
                        "`raypose predict` records")
    names = tuple(str(n) for n in skel["joint_names"])
    parents = B.check_tree(skel["parents"], f"{where}['parents']")
    if len(parents) != len(names):
        raise UserError(f"{where}: {len(names)} joint names but {len(parents)} parents; expected one each")
    sides = []
    for side in ("left", "right"):
        try:
            sides.append(tuple(int(j) for j in skel.get(side, ())))
        except (TypeError, ValueError):
            sides.append(())
        if not all(0 <= j < len(names) for j in sides[-1]):
            raise UserError(f"{where}['{side}']: {list(sides[-1])}; expected joint indices below {len(names)}")
    return names, parents, sides[0], sides[1], names_2d(meta["layout"], names, path), meta


def names_2d(layout, names, path):
    """Names of the run's 2D joints (layout['joints_2d'], what `filled` is over; the skeleton's count
    where a file records none): the skeleton's own where the 2D joints are its joints (same count),
    a known layout's (COCO-17) where count and left/right match it, else kp0, kp1 ..."""
    n = layout.get("joints_2d", len(names))
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise UserError(f"{path}: metadata['layout']['joints_2d']: {n!r}; expected the run's number of 2D joints")
    if n == len(names):
        return names
    try:   # the recorded name, else the layout its left/right pairs are (runs from before names)
        name = layout.get("name_2d") or layout_of(n, layout.get("left_2d") or (), layout.get("right_2d") or ())
    except (TypeError, ValueError):
        name = None
    known = LAYOUTS.get(name)
    return tuple(known.names) if known and known.num_joints == n else tuple(f"kp{j}" for j in range(n))


def _array(a, where, shape):
    """`a` as a numeric array of `shape` (None: any length), finite where it must be."""
    if not isinstance(a, np.ndarray) or a.ndim != len(shape) or a.dtype.kind not in "biuf" or any(
            want is not None and got != want for got, want in zip(a.shape, shape)):
        got = getattr(a, "shape", type(a).__name__)
        raise UserError(f"{where}: {got} {getattr(a, 'dtype', '')}; expected a numeric array of shape "
                        f"{tuple('T' if s is None else s for s in shape)}")
    return a


def _track(content, path, key, shapes, camera):
    """One Track: positions_3d[subject][action][c] and the OPTIONAL arrays the file has, checked
    against `shapes` (per name, a frame's shape)."""
    subject, action, c = key
    arrays, frames = {}, None
    for name in ["positions_3d", *[n for n in OPTIONAL if n in content]]:
        where = f"{path}: {name}[{subject!r}][{action!r}][{c}]"
        try:
            a = content[name][subject][action][c]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"{where}: missing; expected one per track of positions_3d") from None
        arrays[name] = _array(a, where, (frames, *shapes[name]))
        frames = len(arrays["positions_3d"])
        if name in ("positions_3d", "trajectory") and not np.all(np.isfinite(a)):
            raise UserError(f"{where}: NaN or infinite values; expected finite coordinates")
    return Track(str(subject), str(action), camera, arrays)


def camera_names(meta, subject, action, count):
    """The names of the `count` cameras of subject/action: those predict recorded (the keys
    SUBJECT/ACTION/CAMERA of metadata['input']['tracks'], in the file's order), else C1, C2 ..."""
    tracks = meta["input"].get("tracks") if isinstance(meta.get("input"), dict) else None
    prefix = f"{subject}/{action}/"
    names = [k[len(prefix):] for k in tracks if isinstance(k, str) and k.startswith(prefix)
             and "/" not in k[len(prefix):]] if isinstance(tracks, dict) else []
    return names if len(names) == count else [f"C{c + 1}" for c in range(count)]


def _tracks(content, path, shapes, meta):
    """[Track] in the file's order, every array checked against positions_3d's nesting and frames."""
    pos = content["positions_3d"]
    if not isinstance(pos, dict) or not all(isinstance(a, dict) for a in pos.values()):
        raise UserError(f"{path}: positions_3d is not a dict subject -> action -> list per camera; "
                        "expected the npz `raypose predict` writes")
    tracks = []
    for subject, actions in pos.items():
        for action, cams in actions.items():
            if not isinstance(cams, (list, tuple, np.ndarray)):
                raise UserError(f"{path}: positions_3d[{subject!r}][{action!r}]: {type(cams).__name__}; expected "
                                "a list of (T, J, 3) arrays, one per camera")
            cameras = camera_names(meta, subject, action, len(cams))
            tracks += [_track(content, path, (subject, action, c), shapes, cameras[c]) for c in range(len(cams))]
    return tracks


def read_prediction(path):
    """The prediction at `path`, checked whole: one line for anything that is not one."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{path}: a directory; expected a prediction .npz or .parquet (the file `raypose predict` "
                        "writes)")
    # the same nested dicts either way; a missing file, not an npz: one line
    content = read_parquet(path) if is_parquet(path) else read_npz(path)
    if "positions_3d" not in content:
        raise UserError(f"{path}: not a raypose prediction: missing key 'positions_3d' (found "
                        f"{sorted(content)}); expected the npz `raypose predict` writes")
    names, parents, left, right, names2d, meta = _meta(content, path)
    quantiles = tuple(float(q) for q in (meta.get("quantiles") or ()))
    if "radius" in content and not quantiles:
        raise UserError(f"{path}: radius without metadata['quantiles']; expected the probabilities of the radii")
    j = len(names)
    shapes = {"positions_3d": (j, 3), "uncertainty": (j,), "radius": (j, len(quantiles)), "trajectory": (3,),
              "filled": (len(names2d),)}   # filled: over the 2D the run saw, not the 3D joints
    tracks = _tracks(content, path, shapes, meta)
    return Prediction(path, names, parents, left, right, names2d, quantiles if "radius" in content else (),
                      tracks, meta)


def recorded_fps(meta):
    """The frame rate the prediction records (`predict` writes the run's "fps"), else None."""
    v = meta.get("fps")
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 else None


def file_names(tracks, ext):
    """A file name per track, safe on every file system: SUBJECT__ACTION__CAMERA made safe (B.safe_names)."""
    return [f"{name}.{ext}" for name in B.safe_names("__".join((t.subject, t.action, t.camera)) for t in tracks)]


def _q(q):
    return f"{q:g}"


def _track_table(pred, t):
    """{column: values (T,)} of one track, the CSV's columns in order."""
    n = t.frames
    a = t.arrays
    cols = {"subject": [t.subject] * n, "action": [t.action] * n, "camera": [t.camera] * n,
            "frame": np.arange(n)}
    for j, name in enumerate(pred.joint_names):
        for k, axis in enumerate("xyz"):
            cols[f"{name}_{axis}"] = a["positions_3d"][:, j, k]
        if "uncertainty" in a:
            cols[f"{name}_uncertainty"] = a["uncertainty"][:, j]
        for i, q in enumerate(pred.quantiles):
            cols[f"{name}_radius_q{_q(q)}"] = a["radius"][:, j, i]
    for j, name in enumerate(pred.joint_names_2d if "filled" in a else ()):   # the 2D joints'
        cols[f"{name}_filled"] = a["filled"][:, j].astype(np.int8)
    if "trajectory" in a:
        for k, axis in enumerate("xyz"):
            cols[f"trajectory_{axis}"] = a["trajectory"][:, k]
    return cols


def write_csv(pred, folder):
    """One table, a row per frame of every track; its first line a '#' comment with the units."""
    import pandas as pd
    frames = [pd.DataFrame(_track_table(pred, t)) for t in pred.tracks]
    table = pd.concat(frames, ignore_index=True)
    with open(os.path.join(folder, "poses.csv"), "w", newline="") as f:
        f.write(f"# raypose export of {os.path.basename(pred.path)}: {UNITS}; uncertainty and radius_q<q> in "
                "metres; <2D joint>_filled 1 where the run's 2D joint was filled in from its neighbours in time; "
                "trajectory: the root's position in camera coordinates (metres)\n")
        table.to_csv(f, index=False)
    return ["poses.csv"]


def _listed(a):
    """Nested lists of a numeric array; float32 as its shortest decimal (what the CSV writes), NaN as null."""
    if a.dtype.kind != "f":
        return a.tolist()
    values = a.astype(str).astype(np.float64) if a.dtype == np.float32 else a.astype(np.float64)
    if np.all(np.isfinite(values)):
        return values.tolist()
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    return out.tolist()


def write_json(pred, folder):
    tracks = [{"subject": t.subject, "action": t.action, "camera": t.camera, "frames": t.frames,
               **{("positions" if k == "positions_3d" else k): _listed(v) for k, v in t.arrays.items()}}
              for t in pred.tracks]
    doc = {"format": "raypose poses", "version": 1, "source": os.path.basename(pred.path),
           "units": {"positions": UNITS, "uncertainty": "metres", "radius": "metres",
                     "trajectory": "metres, the root's position in camera coordinates",
                     "filled": "per 2D joint (joint_names_2d), true where the run's 2D joint was filled in "
                               "from its neighbours in time"},
           "joint_names": list(pred.joint_names), "parents": list(pred.parents),
           "joint_names_2d": list(pred.joint_names_2d), "quantiles": list(pred.quantiles) or None,
           "tracks": tracks, "metadata": plain(pred.metadata)}
    with open(os.path.join(folder, "poses.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
    return ["poses.json"]


def _error_mm(a, b):
    d = 1000 * np.linalg.norm(a - b, axis=-1)
    return {"mean": float(d.mean()), "max": float(d.max())}


def write_bvh(pred, folder, fps):
    """A BVH per track with frames (a BVH needs one); per track what the file reproduces: pybvh's
    forward kinematics against the bone-length-normalised and the raw positions (mm)."""
    done = []
    for t, name in zip(pred.tracks, file_names(pred.tracks, "bvh")):
        if not t.frames:
            done.append({"file": None, "skipped": "no frames (a BVH needs at least one)"})
            continue
        root = t.arrays.get("trajectory", np.zeros((t.frames, 3)))
        bvh, norm = B.build(t.arrays["positions_3d"], root, pred.joint_names, pred.parents, pred.left,
                            pred.right, fps)
        bvh.write(os.path.join(folder, name))
        fk = B.joint_positions(bvh, pred.parents)
        raw = t.arrays["positions_3d"] + root[:, None]
        done.append({"file": name, "fk_vs_normalised_mm": _error_mm(fk, norm), "fk_vs_raw_mm": _error_mm(fk, raw)})
    return done


def _bvh_conventions(pred, fps, fps_from):
    return {"axes": "X = camera x (right), Y = -camera y (up), Z = -camera z (towards the camera)",
            "units": "centimetres", "euler_order": "ZXY (CHANNELS Zrotation Xrotation Yrotation)",
            "frame_time_s": 1.0 / fps, "fps": fps, "fps_from": fps_from,
            "root": "the prediction's trajectory" if any("trajectory" in t.arrays for t in pred.tracks)
            else "at the origin (the prediction has no trajectory)",
            "rest_pose": "the sequence's mean pose in the root's frame, upright, facing +Z",
            "twist": "zero relative to the parent about a bone with one child joint",
            "bone_lengths": "each bone's median length over the track", "joint_names": list(B.safe_names(
                pred.joint_names))}


def _fps(fps, meta):
    """(frames per second, where it came from): --fps, else the prediction's own, else DEFAULT_FPS."""
    if fps is not None:
        if not (math.isfinite(fps) and fps > 0):
            raise UserError(f"--fps {fps}: expected a positive number of frames per second")
        return float(fps), "--fps"
    own = recorded_fps(meta)
    return (own, "the prediction's metadata") if own else (DEFAULT_FPS, f"the default ({DEFAULT_FPS:g}, HumanEva-I's)")


def export_file(path, fmt, out, overwrite=False, fps=None):
    """Write the prediction at `path` as `fmt` (bvh, csv or json) into the folder `out` (new or empty;
    a former export with `overwrite`); the summary written there as SUMMARY, with `out`."""
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    _fps(fps, {})   # a bad --fps or --out fails before the file is read
    check_replaceable(out, overwrite, [path], "export")
    pred = read_prediction(path)
    fps, fps_from = _fps(fps, pred.metadata)
    out = os.path.abspath(os.fspath(out))
    keys = [{"subject": t.subject, "action": t.action, "camera": t.camera, "frames": t.frames} for t in pred.tracks]
    summary = {"source": os.path.abspath(pred.path), "format": fmt, "units": UNITS, "tracks": keys}
    with atomic_dir(out, overwrite, inputs=[pred.path], kind="export") as tmp:
        if fmt == "bvh":
            summary["bvh"] = _bvh_conventions(pred, fps, fps_from)
            for key, done in zip(keys, write_bvh(pred, tmp, fps)):
                key.update(done)
            summary["files"] = [t["file"] for t in keys if t["file"]]
        else:
            summary["files"] = (write_csv if fmt == "csv" else write_json)(pred, tmp)
        with open(os.path.join(tmp, SUMMARY), "w") as f:
            json.dump(summary, f, indent=1)
    return {**summary, "out": out}


def format_summary(summary):
    """What the CLI prints: where, how many files, which tracks were left out and why."""
    skipped = [t for t in summary["tracks"] if t.get("skipped")]
    files = summary["files"]
    lines = [f"wrote {summary['out']}: {len(files)} {summary['format'].upper()} file(s) for "
             f"{len(summary['tracks'])} track(s), and {SUMMARY}"]
    lines += [f"skipped {t['subject']}/{t['action']}/{t['camera']}: {t['skipped']}" for t in skipped]
    return "\n".join(lines)

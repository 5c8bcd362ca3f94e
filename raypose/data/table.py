"""npz -> frame table (one row per subject, action, camera, frame) -> Parquet or the seed's CSV.

The table is what Ray Data reads: 2D in pixels and normalised, and the 3D pose in that camera's
coordinates, root-relative, so every row is a self-contained training target.
"""
import json
import os
import shutil
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from ..cameras import CAMERA_NAMES, normalize_screen, world_to_camera
from ..errors import UserError
from ..skeleton import ROOT

PARTITIONS = ["subject", "action", "camera"]


def camera_pose(pose_world, subject, cam):
    """World 3D (T, 15, 3) -> camera frame, root at 0: the target VideoPose3D trains on."""
    p = world_to_camera(pose_world, subject, cam)
    return p - p[:, ROOT:ROOT + 1]


def _fixed_list(arr):
    arr = np.ascontiguousarray(arr, dtype=np.float32).reshape(len(arr), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])


def frame_table(data, keys=None, split=None):
    """Arrow table of `data` (a PoseData); `keys` limits it to some (subject, action) chunks.

    `split` is an optional dict (subject, action) -> 'train' / 'test' stored as a column.
    """
    keep = None if keys is None else set(keys)
    parts = []
    for subject, action, cam, kp, pose in data.sequences():
        if keep is not None and (subject, action) not in keep:
            continue
        t = len(kp)
        cols = {
            "subject": pa.array([subject] * t),
            "action": pa.array([action] * t),
            "camera": pa.array([CAMERA_NAMES[cam]] * t),
            "frame": pa.array(np.arange(t, dtype=np.int32)),
            "keypoints_px": _fixed_list(kp),
            "keypoints": _fixed_list(normalize_screen(kp)),
        }
        if pose is not None:
            cols["pose_3d"] = _fixed_list(camera_pose(pose, subject, cam))
        if split is not None:
            cols["split"] = pa.array([split[(subject, action)]] * t)
        parts.append(pa.table(cols))
    if not parts:
        raise UserError("no frames selected; expected at least one (subject, action) chunk")
    return pa.concat_tables(parts)


def check_empty(out, overwrite):
    """An output path must be new or empty unless the user asked to overwrite it."""
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not overwrite:
        raise UserError(f"{out}: output path exists and is not empty; expected a new or empty "
                        "directory (or pass --overwrite)")


def _prepare_out(out, overwrite):
    out = os.path.abspath(os.fspath(out))
    check_empty(out, overwrite)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    return out, tempfile.mkdtemp(prefix=os.path.basename(out) + ".tmp-", dir=os.path.dirname(out))


def _commit(tmp, out):
    """Swap the finished temp directory into place, so no reader sees half an output."""
    old = None
    if os.path.lexists(out):
        old = tempfile.mkdtemp(prefix=os.path.basename(out) + ".old-", dir=os.path.dirname(out))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old) if os.path.isdir(old) else os.unlink(old)


def write_outputs(table, out, csv=False, overwrite=False, metadata=None):
    """Parquet dataset partitioned subject/action/camera (hive), plus frames.csv if asked.

    Written into a temporary sibling directory and renamed into place at the end.
    """
    out, tmp = _prepare_out(out, overwrite)
    try:
        pads.write_dataset(table, os.path.join(tmp, "frames"), format="parquet",
                           partitioning=PARTITIONS, partitioning_flavor="hive",
                           basename_template="part-{i}.parquet",
                           existing_data_behavior="overwrite_or_ignore")
        if csv:
            write_csv(table, os.path.join(tmp, "frames.csv"))
        with open(os.path.join(tmp, "metadata.json"), "w") as f:
            json.dump(metadata or {}, f, indent=1, default=_plain)
        _commit(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _plain(value):
    return value.tolist() if hasattr(value, "tolist") else str(value)


def read_metadata(path):
    """The 2D layout (joint count, left/right lists) a prepared table was made from."""
    try:
        with open(os.path.join(os.fspath(path), "metadata.json")) as f:
            return json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return {}


def write_csv(table, path):
    """The 2022 layout: Subject, Action, Camera, x1, y1 ... xJ, yJ, X1, Y1, Z1 ... X15, Y15, Z15.

    2D in pixels, 3D in the camera's coordinates (metres, root-relative).
    """
    import pandas as pd

    kp = _to_numpy(table.column("keypoints_px"))
    j = kp.shape[1] // 2
    cols = {"Subject": table.column("subject").to_numpy(zero_copy_only=False),
            "Action": table.column("action").to_numpy(zero_copy_only=False),
            "Camera": table.column("camera").to_numpy(zero_copy_only=False)}
    for i in range(j):
        cols[f"x{i + 1}"], cols[f"y{i + 1}"] = kp[:, 2 * i], kp[:, 2 * i + 1]
    if "pose_3d" in table.column_names:
        p = _to_numpy(table.column("pose_3d"))
        for i in range(p.shape[1] // 3):
            for c, name in enumerate("XYZ"):
                cols[f"{name}{i + 1}"] = p[:, 3 * i + c]
    pd.DataFrame(cols).to_csv(path, index=False, float_format="%.6g")


def _to_numpy(column):
    """A fixed-size-list column -> (rows, width) float32 without per-row Python objects."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32)


def read_frames(path):
    """The Parquet frame table written by `prepare` (a directory holding frames/, or frames/)."""
    path = os.fspath(path)
    root = os.path.join(path, "frames") if os.path.isdir(os.path.join(path, "frames")) else path
    if not os.path.isdir(root):
        raise UserError(f"{path}: not a prepared frame table; expected the output of raypose prepare")
    try:
        return pads.dataset(root, format="parquet", partitioning="hive").to_table()
    except Exception as e:
        raise UserError(f"{root}: unreadable Parquet frame table ({e})") from None


def table_sequences(table):
    """Frame table -> [((subject, action, camera), 2D (T,J,2) normalised, 3D (T,15,3) or None)].

    Sorted by key and frame, so the result does not depend on file or block order.
    """
    table = table.sort_by([("subject", "ascending"), ("action", "ascending"),
                           ("camera", "ascending"), ("frame", "ascending")])
    subj = table.column("subject").to_numpy(zero_copy_only=False)
    act = table.column("action").to_numpy(zero_copy_only=False)
    cam = table.column("camera").to_numpy(zero_copy_only=False)
    kp = _to_numpy(table.column("keypoints"))
    pose = _to_numpy(table.column("pose_3d")) if "pose_3d" in table.column_names else None
    change = np.flatnonzero((subj[1:] != subj[:-1]) | (act[1:] != act[:-1]) | (cam[1:] != cam[:-1])) + 1
    bounds = np.concatenate([[0], change, [len(subj)]])
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if hi == lo:
            continue
        key = (str(subj[lo]), str(act[lo]), str(cam[lo]))
        out.append((key, kp[lo:hi].reshape(hi - lo, -1, 2),
                    None if pose is None else pose[lo:hi].reshape(hi - lo, -1, 3)))
    return out


def data_sequences(data, keys=None):
    """The same sequences straight from a PoseData, without a table, for in-memory use."""
    keep = None if keys is None else set(keys)
    out = []
    for subject, action, cam, kp, pose in data.sequences():
        if keep is not None and (subject, action) not in keep:
            continue
        out.append(((subject, action, CAMERA_NAMES[cam]), normalize_screen(kp),
                    None if pose is None else camera_pose(pose, subject, cam)))
    return out

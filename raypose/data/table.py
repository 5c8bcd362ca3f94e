"""The frame table: one row per (subject, action, camera, frame), and its on-disk names.

The table is what Ray Data reads: 2D in pixels and normalised, and the 3D pose in that camera's
coordinates, root-relative, so every row is a self-contained training target.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..cameras import CAMERA_NAMES, normalize_screen, world_to_camera
from ..errors import UserError
from ..skeleton import ROOT

KEY = ["subject", "action", "camera"]  # a sequence; also the hive partitions on disk
# A prepared directory is itself the Parquet dataset; its side files start with '_' because
# Arrow, pandas and Ray (file_extensions) skip those when they list a dataset.
METADATA_FILE = "_raypose.json"
CSV_FILE = "_frames.csv"


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


def fixed_list_numpy(column):
    """A fixed-size-list column -> (rows, width) float32 without per-row Python objects."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    width = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32)


def chunk_filter(table, chunks):
    """The rows of `table` whose (subject, action) is in `chunks`: driver and Ray workers alike."""
    key = pc.binary_join_element_wise(table.column("subject"), table.column("action"), "\x00")
    wanted = pa.array(sorted({f"{s}\x00{a}" for s, a in chunks}), pa.string())
    return table.filter(pc.is_in(key, value_set=wanted))


def table_sequences(table):
    """Frame table -> [((subject, action, camera), 2D (T,J,2) normalised, 3D (T,15,3) or None)].

    Sorted by key and frame, so the result does not depend on file or block order.
    """
    table = table.sort_by([("subject", "ascending"), ("action", "ascending"),
                           ("camera", "ascending"), ("frame", "ascending")])
    subj = table.column("subject").to_numpy(zero_copy_only=False)
    act = table.column("action").to_numpy(zero_copy_only=False)
    cam = table.column("camera").to_numpy(zero_copy_only=False)
    kp = fixed_list_numpy(table.column("keypoints"))
    pose = fixed_list_numpy(table.column("pose_3d")) if "pose_3d" in table.column_names else None
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

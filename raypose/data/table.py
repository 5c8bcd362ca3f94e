"""The frame table: one row per (subject, action, camera, frame), and its on-disk names.

The table is what Ray Data reads: 2D in pixels and normalised by that camera's image size, and
the 3D pose in that camera's coordinates, root-relative, so every row is a self-contained training
target. Cameras are named C1..Cn in the order of the 2D arrays.
"""
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from raypose.datasets.cameras import HUMANEVA_CAMERAS, normalize_screen
from raypose.datasets.skeleton import ROOT
from raypose.errors import UserError

KEY = ["subject", "action", "camera"]  # a sequence; also the hive partitions on disk
# A prepared directory is itself the Parquet dataset; its side files start with '_' because
# Arrow, pandas and Ray (file_extensions) skip those when they list a dataset.
METADATA_FILE = "_raypose.json"
CSV_FILE = "_frames.csv"


def camera_pose(pose_world, subject, cam, cameras=None):
    """World 3D (T, J, 3) -> camera `cam`'s frame (of `cameras`, HumanEva's if None), root at 0:
    the target VideoPose3D trains on."""
    p = (cameras or HUMANEVA_CAMERAS).get(subject, cam, f"subject {subject!r}").to_camera(pose_world)
    return p - p[:, ROOT:ROOT + 1]


def root_relative(pose_cam):
    p = np.asarray(pose_cam, dtype=np.float32)
    return p - p[:, ROOT:ROOT + 1]


def camera_sequences(data, keys=None):
    """(subject, action, camera name, 2D pixels, 2D normalised, camera 3D root-relative or None) of a
    PoseData, limited to the (subject, action) `keys` if given, in key order."""
    keep = None if keys is None else set(keys)
    for subject, action, cam, kp, pose in data.sequences():
        if keep is not None and (subject, action) not in keep:
            continue
        w, h = data.dataset.image_size(subject, cam)
        if pose is not None:
            pose = (root_relative(pose) if data.per_camera(subject, action)
                    else camera_pose(pose, subject, cam, data.dataset.cameras))
        yield subject, action, f"C{cam + 1}", kp, normalize_screen(kp, w, h), pose


def _fixed_list(arr):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    arr = arr.reshape(len(arr), int(np.prod(arr.shape[1:])))   # -1 cannot be inferred for 0 frames
    return pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), arr.shape[1])


def frame_table(data, keys=None, split=None):
    """Arrow table of `data` (a PoseData); `keys` limits it to some (subject, action) chunks.

    `split` is an optional dict (subject, action) -> 'train' / 'test' stored as a column.
    """
    parts = []
    for subject, action, camera, kp, kp_norm, pose in camera_sequences(data, keys):
        t = len(kp)
        if not t:   # a camera without frames (3D given per camera) has no rows
            continue
        cols = {
            "subject": pa.array([subject] * t),
            "action": pa.array([action] * t),
            "camera": pa.array([camera] * t),
            "frame": pa.array(np.arange(t, dtype=np.int32)),
            "keypoints_px": _fixed_list(kp),
            "keypoints": _fixed_list(kp_norm),
        }
        if pose is not None:
            cols["pose_3d"] = _fixed_list(pose)
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
    """Frame table -> [((subject, action, camera), 2D (T,J,2) normalised, 3D (T,J,3) or None)].

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
    return [((subject, action, camera), kp_norm, pose)
            for subject, action, camera, _, kp_norm, pose in camera_sequences(data, keys)]

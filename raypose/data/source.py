"""Where a run's frames come from: synthetic, an npz directory, or a prepared Parquet table.

A prepared table is its directory (hive partitions plus _raypose.json); directories written
before that layout hold the partitions under frames/ and the metadata in metadata.json.

The driver needs the chunk list and the 2D layout before anything runs; evaluation reads the
frames of some chunks straight into memory, without Ray.
"""
import json
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from ..errors import UserError
from ..skeleton import LEFT, RIGHT
from .npz import FILE_3D, PoseData, load_humaneva
from .table import METADATA_FILE, chunk_filter, frame_table, table_sequences


@dataclass
class Source:
    """Where frames come from, with what the driver must know before any worker starts."""
    chunks: list            # every (subject, action) in key order
    num_joints_2d: int
    symmetry: tuple         # (left, right) of the 2D layout
    table: pa.Table | None  # in-memory frames (npz or synthetic input)
    parquet: str | None     # or a prepared Parquet dataset (local path or URI)
    description: str


def open_source(data_cfg):
    path = data_cfg.path
    if path == "synthetic":
        from .synthetic import generate
        pos2d, pos3d, meta = generate(frames=data_cfg.synthetic_frames, seed=data_cfg.synthetic_seed)
        what = f"synthetic ({data_cfg.synthetic_frames} frames, seed {data_cfg.synthetic_seed})"
        return _from_pose_data(PoseData(pos2d, pos3d, meta), what)
    if "://" not in path and os.path.isfile(os.path.join(path, FILE_3D)):
        return _from_pose_data(load_humaneva(path, data_cfg.keypoints), f"npz {path}")
    return _from_parquet(path)


def _from_pose_data(data, description):
    chunks = [(s, a) for s in data.positions_2d for a in data.positions_2d[s]]
    return Source(chunks, data.num_joints_2d, data.symmetry, frame_table(data), None, description)


def _from_parquet(path):
    if "://" in path:
        fs, root = pafs.FileSystem.from_uri(path)
    else:
        if not os.path.isdir(path):
            raise UserError(f"{path}: data not found; expected 'synthetic', an npz directory with "
                            f"{FILE_3D}, or a directory written by raypose prepare")
        fs, root = pafs.LocalFileSystem(), os.path.abspath(path)
    root = root.rstrip("/")
    frames, meta = _layout(fs, root)
    expected = "expected a directory written by raypose prepare"
    try:
        ds = pads.dataset(frames, filesystem=fs, format="parquet", partitioning="hive")
        keys = ds.to_table(columns=["subject", "action"]) if ds.files else None
    except Exception as e:  # Arrow's messages run over several lines: keep the first
        first = (str(e).strip().splitlines() or [""])[0]
        raise UserError(f"{path}: not a prepared frame table ({type(e).__name__}: {first}); {expected}") from None
    if keys is None:
        raise UserError(f"{path}: no Parquet files found; {expected}")
    meta = read_metadata(fs, meta)
    pairs = list(dict.fromkeys(zip(keys.column("subject").to_pylist(), keys.column("action").to_pylist())))
    sym = meta.get("keypoints_symmetry") or [LEFT, RIGHT]
    nj = int(meta.get("num_joints", 15))
    uri = frames if "://" not in path else path.rstrip("/") + frames[len(root):]
    return Source(pairs, nj, (list(sym[0]), list(sym[1])), None, uri, f"parquet {path}")


def _layout(fs, root):
    """(Parquet root, metadata file): `root` itself, or frames/ + metadata.json in older directories."""
    if fs.get_file_info(root + "/frames").type == pafs.FileType.Directory:
        return root + "/frames", root + "/metadata.json"
    return root, root + "/" + METADATA_FILE


def read_metadata(fs, path):
    """The 2D layout (joint count, left/right lists) a table was prepared with; {} if it has none."""
    try:
        with fs.open_input_stream(path) as f:
            meta = json.loads(f.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable metadata ({e}); expected the JSON written by raypose prepare") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: metadata is not a JSON object; expected the JSON written by raypose prepare")
    return meta


def read_sequences(source, chunks):
    """[((subject, action, camera), 2D, 3D)] of the given chunks, read in this process."""
    if source.table is not None:
        table = source.table
    else:
        fs, root = (pafs.FileSystem.from_uri(source.parquet) if "://" in source.parquet
                    else (pafs.LocalFileSystem(), source.parquet))
        table = pads.dataset(root, filesystem=fs, format="parquet", partitioning="hive").to_table()
    return table_sequences(chunk_filter(table, chunks))

"""Where a run's frames come from: synthetic, an npz directory, or a prepared Parquet table,
and the dataset (skeleton, cameras, subjects) they belong to.

A prepared table is its directory (hive partitions plus _raypose.json); directories written
before that layout hold the partitions under frames/ and the metadata in metadata.json.

The driver needs the chunk list and the 2D layout before anything runs; evaluation reads the
frames of some chunks straight into memory, without Ray.
"""
import json
import os
from dataclasses import dataclass

import pyarrow.dataset as pads
import pyarrow.fs as pafs

from raypose.data.npz import PoseData, load_dataset
from raypose.data.table import METADATA_FILE, chunk_filter, data_sequences, table_sequences
from raypose.datasets.keypoints import LAYOUTS
from raypose.datasets.layout import Layout
from raypose.datasets.registry import HUMANEVA_DATASET, Dataset, has_npz_files, resolve
from raypose.datasets.skeleton import LEFT, RIGHT, check_symmetry
from raypose.errors import UserError


@dataclass
class Source:
    """Where frames come from, with what the driver must know before any worker starts."""
    chunks: list            # every (subject, action) in key order
    num_joints_2d: int
    symmetry: tuple         # (left, right) of the 2D layout
    poses: PoseData | None  # in-memory frames (npz or synthetic input), as the files hold them
    parquet: str | None     # or a prepared Parquet dataset (local path or URI)
    description: str
    dataset: Dataset = None  # skeleton, cameras, subjects; HumanEva if not given

    def __post_init__(self):
        if self.dataset is None:
            self.dataset = HUMANEVA_DATASET

    def drop_frames(self):
        """Let the in-memory frames go once the run's windows are built (the driver keeps only what
        it must know), and hand the freed heap back to the system: numpy's many mid-sized arrays
        sit in malloc's arenas, which glibc keeps for the process unless asked (malloc_trim)."""
        self.poses = None
        release_memory()


def release_memory():
    """Return freed heap memory to the operating system where the C library can (glibc)."""
    import gc
    gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc: nothing to ask
        pass


def open_source(data_cfg, dataset=None):
    """The Source of data.path; data.dataset / data.skeleton / data.cameras override what an npz
    directory's file names and the built-in datasets give. `dataset`: a run's own (raypose.datasets.registry.of_run)
    to read the run's data with: those three keys and the files they name are then not read."""
    path = data_cfg.path
    files = {} if dataset is not None else {
        key: getattr(data_cfg, key, "") or None for key in ("dataset", "skeleton", "cameras")}
    if path == "synthetic":
        if files.get("dataset") not in (None, HUMANEVA_DATASET.name):
            raise UserError(f"data.dataset {files['dataset']!r}: --data synthetic is HumanEva's; expected a "
                            f"directory written by raypose synth --layout {files['dataset']} --out DIR")
        from raypose.data.synthetic import generate
        pos2d, pos3d, meta = generate(frames=data_cfg.synthetic_frames, seed=data_cfg.synthetic_seed)
        what = f"synthetic ({data_cfg.synthetic_frames} frames, seed {data_cfg.synthetic_seed})"
        return _from_pose_data(PoseData(pos2d, pos3d, meta), what)
    if "://" not in path and has_npz_files(path):
        dataset = dataset or resolve(path, files["dataset"], files["skeleton"], files["cameras"])
        data = load_dataset(path, data_cfg.keypoints, dataset)   # checks the subjects its metadata names
        empty = data.metadata.get("empty_actions") or []
        note = f" ({len(empty)} action(s) of 0 frames left out: {', '.join(empty[:3])}{', ...' * bool(empty[3:])})"
        return _from_pose_data(data, f"npz {path}" + (note if empty else ""))
    return _from_parquet(path, files, dataset)


def _from_pose_data(data, description):
    chunks = [(s, a) for s in data.positions_2d for a in data.positions_2d[s]]
    return Source(chunks, data.num_joints_2d, data.symmetry, data, None, description, data.dataset)


def _from_parquet(path, files=None, run_dataset=None):
    """A prepared table: its frames, 2D layout and the dataset stored with it (a run's own
    `run_dataset` where given). `files` (data.dataset, skeleton, cameras) must not ask for another."""
    if "://" in path:
        fs, root = pafs.FileSystem.from_uri(path)
    else:
        if not os.path.isdir(path):
            raise UserError(f"{path}: data not found; expected 'synthetic', an npz directory with "
                            "data_3d_<name>.npz, or a directory written by raypose prepare")
        fs, root = pafs.LocalFileSystem(), os.path.abspath(path)
    root = root.rstrip("/")
    frames, meta_path = _layout(fs, root)
    expected = "expected a directory written by raypose prepare"
    try:
        ds = pads.dataset(frames, filesystem=fs, format="parquet", partitioning="hive")
        pairs = _chunks_of(ds) if ds.files else None
        kp = ds.schema.field("keypoints").type if "keypoints" in ds.schema.names else None
        width = getattr(kp, "list_size", None)
    except Exception as e:  # Arrow's messages run over several lines: keep the first
        first = (str(e).strip().splitlines() or [""])[0]
        raise UserError(f"{path}: not a prepared frame table ({type(e).__name__}: {first}); {expected}") from None
    if pairs is None:
        raise UserError(f"{path}: no Parquet files found; {expected}")
    meta = read_metadata(fs, meta_path)
    dataset = (Dataset.from_dict(meta["dataset"], f"{meta_path}: dataset") if meta.get("dataset") is not None
               else HUMANEVA_DATASET)   # tables prepared before other datasets: HumanEva
    _check_table_files(files or {}, dataset, path)
    nj = meta.get("num_joints", 15)
    if isinstance(nj, bool) or not isinstance(nj, int) or nj < 1:
        raise UserError(f"{meta_path}: num_joints is {nj!r}; expected the 2D's joint count (an integer >= 1), as "
                        "raypose prepare wrote it")
    if width is not None and width != 2 * nj:
        raise UserError(f"{meta_path}: num_joints is {nj}, but the table's keypoints hold {width // 2} joints; "
                        "expected them to agree, as raypose prepare wrote them")
    sym = check_symmetry(meta.get("keypoints_symmetry") or [LEFT, RIGHT], nj, f"{meta_path}: keypoints_symmetry")
    uri = frames if "://" not in path else path.rstrip("/") + frames[len(root):]
    return Source(pairs, nj, sym, None, uri, f"parquet {path}", run_dataset or dataset)


def _chunks_of(ds):
    """Every (subject, action) of a hive-partitioned table in file order, from the partition
    folders alone (a file the writer made per sequence): no frame is read. Reading the two
    columns instead cost the driver ~2 GB of Python strings at 4x Human3.6M's size."""
    pairs = []
    for fragment in ds.get_fragments():
        keys = pads.get_partition_keys(fragment.partition_expression)
        if "subject" not in keys or "action" not in keys:   # not raypose's layout: ask the rows
            table = ds.to_table(columns=["subject", "action"])
            return list(dict.fromkeys(zip(table.column("subject").to_pylist(), table.column("action").to_pylist())))
        if fragment.count_rows():
            pairs.append((keys["subject"], keys["action"]))
    return list(dict.fromkeys(pairs))


def _check_table_files(files, dataset, path):
    """A prepared table holds its dataset, skeleton and cameras: a data.dataset naming another, or
    any skeleton or cameras file, would be silently ignored, so it is refused."""
    name = files.get("dataset")
    if name not in (None, dataset.name):
        raise UserError(f"data.dataset {name!r}: {path} was prepared from dataset {dataset.name!r}; expected "
                        f"{dataset.name!r} or no --dataset")
    for key in ("skeleton", "cameras"):
        if files.get(key):
            raise UserError(f"data.{key} {files[key]}: {path} is a prepared table, which holds dataset "
                            f"{dataset.name!r}'s {key} already; expected no --{key} (give it to raypose prepare "
                            "--npz-dir, or point --data at the npz directory)")


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
    except (OSError, ValueError, RecursionError) as e:
        raise UserError(f"{path}: unreadable metadata ({e}); expected the JSON written by raypose prepare") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: metadata is not a JSON object; expected the JSON written by raypose prepare")
    return meta


def read_sequences(source, chunks):
    """[((subject, action, camera), 2D, 3D)] of the given chunks, read in this process, in key order.

    In-memory frames go straight from the files' arrays to float32 sequences (no frame table: at
    Human3.6M's size its per-row columns cost several times the frames); a table is read whole."""
    if source.poses is not None:
        return sorted((s for s in data_sequences(source.poses, chunks) if len(s[1])), key=lambda s: s[0])
    fs, root = (pafs.FileSystem.from_uri(source.parquet) if "://" in source.parquet
                else (pafs.LocalFileSystem(), source.parquet))
    table = pads.dataset(root, filesystem=fs, format="parquet", partitioning="hive").to_table()
    return table_sequences(chunk_filter(table, chunks))


def source_layout(source):
    """The run's layout from its data: the 2D joints and their symmetry, the dataset's skeleton,
    frame rate and image sizes, and the 2D layout's name, which the data gives in the dataset's
    layout_2d (data.npz.load_dataset: the 2D file's metadata['layout_name'], else the dataset's own
    for its ground truth; None for unnamed detections; a prepared table keeps it). A known name of
    another joint count than the 2D's (a table prepared from detections before names were kept) is
    dropped: unnamed, the 2D is taken by its joint count."""
    dataset = source.dataset
    name_2d = dataset.layout_2d
    known = LAYOUTS.get(name_2d)
    if known is not None and known.num_joints != source.num_joints_2d:
        name_2d = None
    return Layout.of(source.num_joints_2d, source.symmetry, dataset.skeleton, dataset.to_dict(), name_2d)

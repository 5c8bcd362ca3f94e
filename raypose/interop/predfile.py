"""A prediction's file, written track by track as `raypose predict` finishes them, and read back.

Two forms, chosen by the suffix of --out:
  - .npz: VideoPose3D's nesting (name -> subject -> action -> list per camera), the form every
    raypose reader takes. An npz member is one pickle, so the tracks are gathered and the file is
    written at the end: the output is then the only thing of its full size in memory.
  - .parquet: a row per frame and camera, a row group per track written as soon as it is done, so
    an output larger than memory can be written; pandas, DuckDB and Arrow read it as a table.
    Per-frame arrays are fixed-size lists of their values flattened (each column's `shape` field
    metadata says how to unflatten them); the file's key-value metadata holds the npz's metadata
    dict as JSON under b"raypose", and the tracks in order with their frame counts under
    b"raypose.tracks" (a 0-frame track has no rows, but is a track of the prediction).
Both are written to a temporary file beside --out and renamed at the end (`npzfile.atomic_write`).
"""
import json
import os

import numpy as np

from raypose.errors import UserError
from raypose.npzfile import _object, write_npz
from raypose.outputs import plain

FORMATS = {".npz": "npz", ".parquet": "parquet"}
COLUMNS = {"positions_3d": "pose_3d"}          # Parquet column names where they are not the npz key's
KEYS = ("subject", "action", "camera", "frame")
META_KEY, TRACKS_KEY = b"raypose", b"raypose.tracks"
PARQUET_MAGIC = b"PAR1"
ROW_GROUP = 65536   # rows: about 40 MB of a 17-joint prediction


def output_format(path):
    """'npz' or 'parquet' by the suffix of `path`, or the user's one line."""
    fmt = FORMATS.get(os.path.splitext(os.fspath(path))[1].lower())
    if fmt is None:
        raise UserError(f"--out {os.fspath(path)}: unknown suffix; expected OUT.npz (VideoPose3D's nesting) or "
                        "OUT.parquet (a row per frame, written as it goes)")
    return fmt


def sink(fmt, f, where):
    """The writer for `fmt` into the open binary file `f` (`where`: --out, for messages)."""
    return NpzSink(f, where) if fmt == "npz" else ParquetSink(f, where)


class _Sink:
    """`add(key, arrays)` per track in order, then `finish(metadata)`; used as a context manager,
    which lets go of a half-written file quietly where the prediction failed (the temporary file
    is removed by `atomic_write`)."""

    def __init__(self, f, where):
        self.f, self.where = f, where

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()

    def abort(self):
        pass

    def _failed(self, e):
        """What the checks up front could not foresee: a full disk, a folder gone meanwhile."""
        return UserError(f"--out {self.where}: cannot write ({e.strerror or e}); expected a writable path with "
                         "free space")


class NpzSink(_Sink):
    """Gathers each track's arrays under name -> subject -> action -> [per camera], in the order
    given; `finish` writes them with the metadata."""

    def __init__(self, f, where):
        super().__init__(f, where)
        self.arrays = {}

    def add(self, key, arrays):
        subject, action, _ = key
        for name, a in arrays.items():
            self.arrays.setdefault(name, {}).setdefault(subject, {}).setdefault(action, []).append(a)

    def finish(self, metadata):
        try:
            write_npz(self.f, metadata=_object(metadata), **{k: _object(v) for k, v in self.arrays.items()})
        except OSError as e:
            raise self._failed(e) from None


class ParquetSink(_Sink):
    """Writes the tracks as they are added, a row group whenever ROW_GROUP rows are waiting (a
    track larger than that is a row group of its own): small row groups compress worse and read
    slower, larger ones hold more in memory."""

    def __init__(self, f, where):
        super().__init__(f, where)
        self.writer, self.tracks, self.waiting = None, [], []

    def add(self, key, arrays):
        import pyarrow.parquet as pq
        table = _table(key, arrays)
        try:
            if self.writer is None:   # float values byte by byte in streams: they compress a third smaller
                floats = [f.name for f in table.schema if f.name not in KEYS and f.type.value_type == "float"]
                self.writer = pq.ParquetWriter(self.f, table.schema, compression="zstd", use_dictionary=list(KEYS[:3]),
                                               use_byte_stream_split=floats)
            self.waiting.append(table)
            if sum(len(t) for t in self.waiting) >= ROW_GROUP:
                self._flush()
        except OSError as e:
            raise self._failed(e) from None
        self.tracks.append([*key, len(table)])

    def _flush(self):
        import pyarrow as pa
        if not self.waiting:   # the last track filled a row group: nothing left for `finish`
            return
        table = pa.concat_tables(self.waiting)
        self.waiting = []
        if len(table):
            self.writer.write_table(table, row_group_size=len(table))

    def abort(self):
        """Close a writer that `finish` did not (its __del__ would write to a closed file)."""
        if getattr(self.writer, "is_open", False):
            try:
                self.writer.close()
            except (OSError, ValueError):
                pass

    def finish(self, metadata):
        try:
            self._flush()
            self.writer.add_key_value_metadata({META_KEY: json.dumps(plain(metadata)),
                                                TRACKS_KEY: json.dumps(self.tracks)})
            self.writer.close()
        except OSError as e:
            raise self._failed(e) from None


def _table(key, arrays):
    """One track's rows: its key and frame number, then a fixed-size list per array."""
    import pyarrow as pa
    n = len(arrays["positions_3d"])
    columns = [pa.array([key[0]] * n, pa.string()), pa.array([key[1]] * n, pa.string()),
               pa.array([key[2]] * n, pa.string()), pa.array(np.arange(n, dtype=np.int32))]
    fields = [pa.field(k, pa.string() if k != "frame" else pa.int32(), nullable=False) for k in KEYS]
    for name, a in arrays.items():
        shape = a.shape[1:]
        flat = pa.array(np.ascontiguousarray(a).reshape(-1))
        columns.append(pa.FixedSizeListArray.from_arrays(flat, int(np.prod(shape))))
        fields.append(pa.field(COLUMNS.get(name, name), columns[-1].type, nullable=False,
                               metadata={b"shape": json.dumps(list(shape)).encode()}))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def is_parquet(path):
    """Whether the file at `path` starts as a Parquet file does."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def read_parquet(path):
    """A Parquet prediction as `npzfile.read_npz` reads an npz one: {name: {subject: {action:
    [per camera]}}, "metadata": dict}; one line for a file that is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        kv = pf.metadata.metadata or {}
        if META_KEY not in kv or TRACKS_KEY not in kv:
            raise UserError(f"{path}: a Parquet file without raypose's metadata (key b'raypose'); expected the "
                            "file `raypose predict --out OUT.parquet` writes (a table rewritten by other tools "
                            "loses it)")
        meta, tracks = json.loads(kv[META_KEY]), json.loads(kv[TRACKS_KEY])
        table = pf.read()
    except UserError:
        raise
    except (OSError, ValueError, pa.ArrowException) as e:
        raise UserError(f"{path}: unreadable Parquet ({type(e).__name__}: {e}); expected the file `raypose "
                        "predict --out OUT.parquet` writes") from None
    if sum(n for *_, n in tracks) != table.num_rows:
        raise UserError(f"{path}: {table.num_rows} rows but its tracks (metadata b'raypose.tracks') have "
                        f"{sum(n for *_, n in tracks)} frames; expected the file as predict wrote it")
    names = {v: k for k, v in COLUMNS.items()}
    arrays = {}
    for field in table.schema:
        if field.name in KEYS:
            continue
        shape = json.loads((field.metadata or {}).get(b"shape", b"null"))
        values = table.column(field.name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
        arrays[names.get(field.name, field.name)] = values.reshape(-1, *shape) if shape is not None else values
    _check_keys(table, tracks, path)
    out, lo = {name: {} for name in arrays}, 0
    for subject, action, _, n in tracks:
        for name, a in arrays.items():
            out[name].setdefault(subject, {}).setdefault(action, []).append(a[lo:lo + n])
        lo += n
    return {**out, "metadata": meta}


def _check_keys(table, tracks, path):
    """Every row where its track's rows should be, frames 0, 1 ... in order: the file as written."""
    import pyarrow.compute as pc
    frame, lo = table.column("frame").to_numpy(), 0
    for subject, action, camera, n in tracks:
        part = table.slice(lo, n)
        same = all(pc.all(pc.equal(part.column(k), v)).as_py() is not False
                   for k, v in (("subject", subject), ("action", action), ("camera", camera)))
        if not same or not np.array_equal(frame[lo:lo + n], np.arange(n)):
            raise UserError(f"{path}: the rows of {subject}/{action}/{camera} are not where its metadata "
                            "(b'raypose.tracks') puts them; expected the file as predict wrote it, rows unsorted")
        lo += n

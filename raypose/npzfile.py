"""npz files read without running code from them, and written whole or not at all.

VideoPose3D's npz files hold pickled dicts. `np.load(allow_pickle=True)` would run whatever a hostile
file asks for, so object arrays go through an unpickler that only builds numpy arrays, scalars and
plain containers. This sits below every package: datasets' own files (skeletons, cameras), the data,
users' 2D and the predictions are all read through it.
"""
import io
import os
import pickle
import tempfile
import zipfile

import numpy as np
import numpy.lib.format as npformat

from raypose.errors import UserError

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "str"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "bool"), ("builtins", "complex"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED or (module == "numpy" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_npz(path, keys=None):
    """All arrays of an npz (or only those named in `keys`) as Python objects; object arrays are
    unpickled with the allow-list."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: file not found")
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy") or (keys is not None and name[:-4] not in keys):
                    continue
                fp = io.BytesIO(zf.read(name))
                version = npformat.read_magic(fp)
                read_header = (npformat.read_array_header_1_0 if version == (1, 0)
                               else npformat.read_array_header_2_0)
                shape, fortran, dtype = read_header(fp)
                if dtype.hasobject:
                    obj = _SafeUnpickler(fp).load()
                    if isinstance(obj, np.ndarray) and obj.shape == () and obj.dtype.hasobject:
                        obj = obj.item()
                else:
                    fp.seek(0)
                    obj = npformat.read_array(fp, allow_pickle=False)
                out[name[:-4]] = obj
    except UserError:
        raise
    except pickle.UnpicklingError as e:
        raise UserError(f"{path}: unsafe or corrupt pickled object ({e}); expected numpy arrays, dicts, "
                        "lists, strings and numbers only") from None
    except zipfile.BadZipFile:
        raise UserError(f"{path}: not an npz file (expected a zip archive of .npy arrays)") from None
    except Exception as e:  # truncated members, bad headers, zlib errors
        raise UserError(f"{path}: unreadable or truncated npz ({type(e).__name__}: {e})") from None
    return out


def _umask():
    """The process's umask. Reading it means setting it: os.umask is process-global, so another
    thread creating a file in between would get mode 0o666/0o777; fine in the CLI and the driver,
    which create files from one thread."""
    old = os.umask(0)
    os.umask(old)
    return old


def atomic_write(path, write, suffix=".tmp"):
    """`write(f)` fills a temporary file in `path`'s folder, which is then renamed to `path`: readers
    see all or nothing. The file gets the user's usual mode (0o666 & ~umask), not mkstemp's 0o600."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=suffix)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_npz(f, **arrays):
    """`np.savez_compressed(f, **arrays)`, but an object array is pickled without the pickler's memo.
    numpy pickles an array as a copy of its bytes, and the memo keeps every such copy alive until
    the whole object is written: a nested dict of arrays (a prediction) took twice its size in
    memory to save. Nothing in these objects is referenced twice, so the memo saves nothing."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for key, value in arrays.items():
            value = np.asanyarray(value)
            with zf.open(key + ".npy", "w", force_zip64=True) as fp:
                if not value.dtype.hasobject:
                    npformat.write_array(fp, value, allow_pickle=False)
                    continue
                npformat.write_array_header_1_0(fp, npformat.header_data_from_array_1_0(value))
                pickler = pickle.Pickler(fp, protocol=4)   # np.save's protocol
                pickler.fast = True
                pickler.dump(value)


def _atomic_savez(path, **arrays):
    return atomic_write(path, lambda f: write_npz(f, **arrays), ".npz.tmp")


def _object(value):
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


def save_npz(path, **objects):
    """Write dicts/arrays as an npz in the VideoPose3D style (dicts become object arrays)."""
    return _atomic_savez(path, **{k: _object(v) if isinstance(v, (dict, list)) else v
                                  for k, v in objects.items()})

"""Read and write the VideoPose3D HumanEva npz layout, with schema checks and safe unpickling.

The npz files hold pickled dicts. `np.load(allow_pickle=True)` would run whatever a hostile
file asks for, so object arrays go through an unpickler that only builds numpy arrays,
scalars and plain containers.
"""
import io
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field

import numpy as np
import numpy.lib.format as npformat

from ..errors import UserError
from ..skeleton import LEFT, NUM_JOINTS, RIGHT

FILE_2D = "data_2d_humaneva15_{}.npz"
FILE_3D = "data_3d_humaneva15.npz"

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


def read_npz(path):
    """All arrays of an npz as Python objects; object arrays are unpickled with the allow-list."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: file not found")
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if not name.endswith(".npy"):
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


def _atomic_savez(path, **arrays):
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays), ".npz.tmp")


def _object(value):
    arr = np.empty((), dtype=object)
    arr[()] = value
    return arr


def save_2d(path, positions_2d, metadata):
    return _atomic_savez(path, positions_2d=_object(positions_2d), metadata=_object(metadata))


def save_3d(path, positions_3d):
    return _atomic_savez(path, positions_3d=_object(positions_3d))


def save_npz(path, **objects):
    """Write dicts/arrays as an npz in the VideoPose3D style (dicts become object arrays)."""
    return _atomic_savez(path, **{k: _object(v) if isinstance(v, (dict, list)) else v
                                  for k, v in objects.items()})


@dataclass
class PoseData:
    """2D tracks per camera and world 3D poses, keyed subject -> action, checked for consistency."""
    positions_2d: dict
    positions_3d: dict | None
    metadata: dict = field(default_factory=dict)

    @property
    def num_joints_2d(self):
        for actions in self.positions_2d.values():
            for cams in actions.values():
                return cams[0].shape[1]
        return NUM_JOINTS

    @property
    def symmetry(self):
        """(left, right) joint lists of the 2D layout, for flip augmentation of the input."""
        sym = self.metadata.get("keypoints_symmetry")
        if sym is not None and len(sym) == 2:
            return [int(j) for j in sym[0]], [int(j) for j in sym[1]]
        return LEFT, RIGHT

    def sequences(self):
        """(subject, action, camera index, 2D (T,J,2), world 3D (T,15,3) or None), in key order."""
        for subject in self.positions_2d:
            for action in self.positions_2d[subject]:
                pos3d = None if self.positions_3d is None else self.positions_3d[subject][action]
                for cam, kp in enumerate(self.positions_2d[subject][action]):
                    yield subject, action, cam, kp, pos3d


# The largest |x| or |y| a 2D keypoint may have, in pixels. HumanEva's images are 640 x 480 and
# the widest video sensors ~16k pixels; a joint a little outside the frame is normal, but 1e5
# pixels is 150 HumanEva image widths off: not a point of any image. Such input gives members
# trained on [-1, 1] (cameras.normalize_screen) poses kilometres away, and ~1e20 overflows
# float32 inside the network to NaN, so it is refused at the door.
MAX_PIXELS = 1e5


def _check_array(arr, where, last_dim, joints=None, max_abs=None, allow_nan=False):
    """`arr` as float32 (frames, joints, last_dim): real numbers, finite as float32, and (with
    `max_abs`) no coordinate beyond +-max_abs. With `allow_nan`, NaN passes: a user's 2D detector
    marks a joint it missed that way (data.inputs); infinities are still refused."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 3 or arr.shape[2] != last_dim:
        shape = getattr(arr, "shape", type(arr).__name__)
        raise UserError(f"{where}: expected an array (frames, joints, {last_dim}), got {shape}")
    if joints is not None and arr.shape[1] != joints:
        raise UserError(f"{where}: expected {joints} joints, got {arr.shape[1]}")
    if arr.dtype.kind == "c":   # before any cast: numpy would drop the imaginary part with a warning
        raise UserError(f"{where}: complex numbers (dtype {arr.dtype}); expected real coordinates")
    if arr.dtype.kind not in "iuf":   # bool, str, object, datetime, timedelta, ...
        raise UserError(f"{where}: expected integer or float coordinates, got dtype {arr.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):   # overflow is checked just below
        out = arr.astype(np.float32, copy=False)
    if allow_nan and np.isinf(out).any():
        raise UserError(f"{where}: infinite coordinates (as float32); expected finite values or NaN "
                        "for a missing joint")
    if not allow_nan and not np.all(np.isfinite(out)):
        raise UserError(f"{where}: NaN or infinite coordinates (as float32); expected finite values")
    if max_abs is not None and out.size:
        peak = np.abs(out[~np.isnan(out)]).max(initial=0.0)   # NaN only where allow_nan let it in
        if peak > max_abs:
            raise UserError(f"{where}: a coordinate of {peak:.3g}; expected |value| <= "
                            f"{max_abs:g} (pixels of an image)")
    return out


def _nested(obj, where, what):
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"{where}: expected a non-empty dict subject -> action -> {what}")
    for subject, actions in obj.items():
        if not isinstance(actions, dict) or not actions:
            raise UserError(f"{where}[{subject!r}]: expected a non-empty dict action -> {what}")


def _read_nested(path, key, what):
    """The npz's content, its `key` checked to be a dict subject -> action -> `what`."""
    content = read_npz(path)
    if key not in content:
        raise UserError(f"{path}: missing key {key!r}; found {sorted(content)}")
    _nested(content[key], f"{path}: {key}", what)
    return content


def load_2d(path):
    """2D tracks (and metadata) from one npz; used for training input and for `predict`."""
    path = os.fspath(path)
    content = _read_nested(path, "positions_2d", "list of per-camera (frames, joints, 2) arrays")
    pos2d = content["positions_2d"]
    joints = None
    for subject, actions in pos2d.items():
        for action, cams in actions.items():
            where = f"{path}: positions_2d[{subject!r}][{action!r}]"
            if isinstance(cams, np.ndarray) and cams.dtype == object:
                cams = list(cams)
            if not isinstance(cams, (list, tuple)) or not 1 <= len(cams) <= 3:
                raise UserError(f"{where}: expected a list of 1 to 3 camera arrays")
            cams = [_check_array(kp, f"{where}[{c}]", 2, max_abs=MAX_PIXELS) for c, kp in enumerate(cams)]
            for c, kp in enumerate(cams):
                if joints is None:
                    joints = kp.shape[1]
                elif kp.shape[1] != joints:
                    raise UserError(f"{where}[{c}]: {kp.shape[1]} 2D joints, but other cameras "
                                    f"have {joints}; expected the same joint count everywhere")
            actions[action] = cams
    meta = content.get("metadata", {})
    return pos2d, meta if isinstance(meta, dict) else {}


def load_3d(path):
    path = os.fspath(path)
    pos3d = _read_nested(path, "positions_3d", "(frames, 15, 3) array")["positions_3d"]
    for subject, actions in pos3d.items():
        for action, arr in actions.items():
            actions[action] = _check_array(arr, f"{path}: positions_3d[{subject!r}][{action!r}]",
                                           3, joints=NUM_JOINTS)
    return pos3d


def load_humaneva(npz_dir, keypoints="gt"):
    """Both files of a HumanEva npz directory, checked against each other."""
    npz_dir = os.fspath(npz_dir)
    if not os.path.isdir(npz_dir):
        raise UserError(f"{npz_dir}: directory not found; expected the folder holding "
                        f"{FILE_2D.format(keypoints)} and {FILE_3D}")
    path_2d = os.path.join(npz_dir, FILE_2D.format(keypoints))
    path_3d = os.path.join(npz_dir, FILE_3D)
    pos2d, meta = load_2d(path_2d)
    pos3d = load_3d(path_3d)
    for a, b, pa, pb in ((pos2d, pos3d, path_2d, path_3d), (pos3d, pos2d, path_3d, path_2d)):
        for subject in a:
            if subject not in b:
                raise UserError(f"{pb}: subject {subject!r} is missing; it is in {pa}")
            for action in a[subject]:
                if action not in b[subject]:
                    raise UserError(f"{pb}: action {subject!r}/{action!r} is missing; it is in {pa}")
    for subject, actions in pos2d.items():
        for action, cams in actions.items():
            n3 = len(pos3d[subject][action])
            for c, kp in enumerate(cams):
                if len(kp) != n3:
                    raise UserError(f"{path_2d}: positions_2d[{subject!r}][{action!r}][{c}] has "
                                    f"{len(kp)} frames, expected {n3} as in {path_3d}")
    return PoseData(pos2d, pos3d, meta)

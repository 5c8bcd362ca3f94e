"""Read and write VideoPose3D's npz layout (data_3d_<name>.npz, data_2d_<name>_<keypoints>.npz),
checked against each other, the dataset's skeleton and its cameras, with safe unpickling.

The npz files hold pickled dicts. `np.load(allow_pickle=True)` would run whatever a hostile
file asks for, so object arrays go through an unpickler that only builds numpy arrays,
scalars and plain containers.
"""
import os
from dataclasses import dataclass, field, replace

import numpy as np

from raypose.datasets import h36m
from raypose.datasets.cameras import Camera, CameraSet
from raypose.datasets.keypoints import LAYOUTS
from raypose.datasets.registry import DATASETS, HUMANEVA_DATASET, check_subjects, resolve
from raypose.datasets.skeleton import LEFT, NUM_JOINTS, RIGHT, check_symmetry
from raypose.errors import UserError
from raypose.npzfile import _atomic_savez, _object, read_npz, save_npz  # noqa: F401 (save_npz: this module's writers)

FILE_2D = "data_2d_humaneva15_{}.npz"
FILE_3D = "data_3d_humaneva15.npz"
FULL_JOINTS = len(h36m.PARENTS_32)   # the joints of a 3D file that a dataset's keep list selects from

def save_2d(path, positions_2d, metadata):
    return _atomic_savez(path, positions_2d=_object(positions_2d), metadata=_object(metadata))


def save_3d(path, positions_3d):
    return _atomic_savez(path, positions_3d=_object(positions_3d))


@dataclass
class PoseData:
    """2D tracks per camera and 3D poses, keyed subject -> action, checked for consistency.

    positions_3d[subject][action] is a world (T, J, 3) array shared by the cameras, or a list of
    (T, J, 3) arrays already in each camera's frame; `dataset` (raypose.datasets.registry.Dataset, HumanEva
    if not given) holds the skeleton and the cameras that turn world 3D into camera 3D."""
    positions_2d: dict
    positions_3d: dict | None
    metadata: dict = field(default_factory=dict)
    dataset: object = None

    def __post_init__(self):
        if self.dataset is None:
            self.dataset = HUMANEVA_DATASET

    @property
    def num_joints_2d(self):
        for actions in self.positions_2d.values():
            for cams in actions.values():
                return cams[0].shape[1]
        return NUM_JOINTS

    @property
    def symmetry(self):
        """(left, right) joint lists of the 2D layout, for flip augmentation of the input: the
        metadata's, else the skeleton's where the 2D has its joints, else HumanEva's."""
        sym = self.metadata.get("keypoints_symmetry")
        if sym is not None:
            return check_symmetry(sym, self.num_joints_2d, "metadata['keypoints_symmetry']")
        skeleton = self.dataset.skeleton
        if self.num_joints_2d == skeleton.num_joints:
            return list(skeleton.left), list(skeleton.right)
        return LEFT, RIGHT

    def per_camera(self, subject, action):
        """Whether that action's 3D is given per camera (camera coordinates) rather than in the world."""
        return isinstance(self.positions_3d[subject][action], list)

    def frames(self, subject, action):
        """Frames of 3D of an action (its first camera's where the 3D is per camera)."""
        pose = self.positions_3d[subject][action]
        return len(pose[0] if isinstance(pose, list) else pose)

    def sequences(self):
        """(subject, action, camera index, 2D (T,J,2), 3D (T,J,3) or None), in key order; the 3D is
        the world pose, or that camera's pose where `per_camera`."""
        for subject in self.positions_2d:
            for action in self.positions_2d[subject]:
                pos3d = None if self.positions_3d is None else self.positions_3d[subject][action]
                for cam, kp in enumerate(self.positions_2d[subject][action]):
                    yield subject, action, cam, kp, pos3d[cam] if isinstance(pos3d, list) else pos3d


# The largest |x| or |y| a 2D keypoint may have, in pixels. HumanEva's images are 640 x 480 and
# the widest video sensors ~16k pixels; a joint a little outside the frame is normal, but 1e5
# pixels is 150 HumanEva image widths off: not a point of any image. Such input gives members
# trained on [-1, 1] (cameras.normalize_screen) poses kilometres away, and ~1e20 overflows
# float32 inside the network to NaN, so it is refused at the door.
MAX_PIXELS = 1e5
# The largest |x|, |y| or |z| of a 3D joint, in the file's units: 10 km in metres, 10 m in millimetres,
# beyond any pose of a person in a capture room. 1e30 would pass as float32 and train to `loss inf`.
MAX_3D = 1e4


def _check_array(arr, where, last_dim, joints=None, max_abs=None, allow_nan=False, units="pixels of an image"):
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
                            f"{max_abs:g} ({units})")
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


def camera_arrays(pos2d, path, check):
    """(subject, action, camera index, array) for every track of `positions_2d`, each array as
    `check(array, where)` returns it; one line for an action that is not a list of cameras, or for
    joint counts that differ between tracks. Training's reader and predict's (data.inputs) share it."""
    joints = None
    for subject, actions in pos2d.items():
        for action, cams in actions.items():
            where = f"{path}: positions_2d[{subject!r}][{action!r}]"
            if isinstance(cams, np.ndarray) and cams.dtype == object:
                cams = list(cams)
            if not isinstance(cams, (list, tuple)) or not cams:
                raise UserError(f"{where}: expected a non-empty list of per-camera (frames, joints, 2) arrays")
            for c, arr in enumerate(cams):
                kp = check(arr, f"{where}[{c}]")
                if joints is None:
                    joints = kp.shape[1]
                elif kp.shape[1] != joints:
                    raise UserError(f"{where}[{c}]: {kp.shape[1]} joints, but other tracks have {joints}; "
                                    "expected the same joint count everywhere")
                yield subject, action, c, kp


def load_2d(path):
    """2D tracks (and metadata) from one npz; used for training input and for `predict`."""
    path = os.fspath(path)
    content = _read_nested(path, "positions_2d", "list of per-camera (frames, joints, 2) arrays")
    pos2d = {}
    for subject, action, _, kp in camera_arrays(content["positions_2d"], path,
                                                lambda arr, where: _check_array(arr, where, 2, max_abs=MAX_PIXELS)):
        pos2d.setdefault(subject, {}).setdefault(action, []).append(kp)
    meta = content.get("metadata", {})
    meta = meta if isinstance(meta, dict) else {}
    joints = next(cams[0].shape[1] for actions in pos2d.values() for cams in actions.values())
    if "num_joints" in meta and not (_is_int(meta["num_joints"]) and int(meta["num_joints"]) == joints):
        raise UserError(f"{path}: metadata['num_joints'] is {meta['num_joints']!r} but the 2D has {joints} joints; "
                        "expected them to agree")
    if meta.get("keypoints_symmetry") is not None:
        check_symmetry(meta["keypoints_symmetry"], joints, f"{path}: metadata['keypoints_symmetry']")
    return pos2d, meta


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _poses(value, where):
    """One action's 3D: a world (T, J, 3) array, or a list of them per camera."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1:
        value = list(value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise UserError(f"{where}: an empty list; expected a (frames, joints, 3) array or one per camera")
        return [_check_3d(a, f"{where}[{c}]") for c, a in enumerate(value)]
    return _check_3d(value, where)


def _check_3d(arr, where):
    return _check_array(arr, where, 3, max_abs=MAX_3D, units="metres or millimetres of a human pose")


def _joint_check(counts, dataset, path):
    """`counts` {where: joints}: each the skeleton's count, or (with a keep list) the full file's, exactly
    FULL_JOINTS (Human3.6M's 32): a file of 28..31 joints has the keep list's indices, but not its joints."""
    n = dataset.skeleton.num_joints
    keep = dataset.keep if dataset.keep is not None and len(dataset.keep) == n else None
    bad = [(w, j) for w, j in counts.items() if j != n and not (keep is not None and j == FULL_JOINTS)]
    if not bad:
        return keep
    also = f" (or {FULL_JOINTS}, of which {dataset.name} keeps {n})" if keep is not None else ""
    if len(set(counts.values())) == 1:
        raise UserError(f"{path}: 3D has {bad[0][1]} joints; expected the skeleton's {n}{also}")
    raise UserError(f"{bad[0][0]}: 3D has {bad[0][1]} joints; expected {n} joints, the skeleton's{also}")


def load_3d(path, dataset=None):
    """3D poses subject -> action -> world (T, J, 3) array or per-camera list, reduced to the skeleton's
    joints (the dataset's keep list: 32 -> 17 for h36m) and checked against its joint count."""
    dataset = dataset or HUMANEVA_DATASET
    path = os.fspath(path)
    pos3d = _read_nested(path, "positions_3d", "(frames, joints, 3) array or a list of them per camera")
    pos3d, counts = pos3d["positions_3d"], {}
    for subject, actions in pos3d.items():
        for action, value in actions.items():
            where = f"{path}: positions_3d[{subject!r}][{action!r}]"
            actions[action] = value = _poses(value, where)
            counts.update({f"{where}[{c}]": a.shape[1] for c, a in enumerate(value)} if isinstance(value, list)
                          else {where: value.shape[1]})
    keep = _joint_check(counts, dataset, path)
    n = dataset.skeleton.num_joints

    def reduce(a):
        return a if a.shape[1] == n else np.ascontiguousarray(a[:, list(keep)])
    for actions in pos3d.values():
        for action, value in actions.items():
            actions[action] = [reduce(a) for a in value] if isinstance(value, list) else reduce(value)
    return pos3d


def _match_keys(pos2d, pos3d, path_2d, path_3d, strict):
    """Every 3D subject and action has 2D and the other way round; subjects with 2D only are left out
    (returned), except with `strict` (HumanEva, whose two files hold the same subjects)."""
    only_2d = [s for s in pos2d if s not in pos3d]
    if only_2d and strict:
        raise UserError(f"{path_3d}: subject {only_2d[0]!r} is missing; it is in {path_2d}")
    for subject in only_2d:
        del pos2d[subject]
    for a, b, pa, pb in ((pos2d, pos3d, path_2d, path_3d), (pos3d, pos2d, path_3d, path_2d)):
        for subject in a:
            if subject not in b:
                raise UserError(f"{pb}: subject {subject!r} is missing; it is in {pa}")
            for action in a[subject]:
                if action not in b[subject]:
                    raise UserError(f"{pb}: action {subject!r}/{action!r} is missing; it is in {pa}")
    return only_2d


def _match_frames(pos2d, pos3d, path_2d, path_3d):
    """Each camera's 2D has at least its 3D's frames; extra 2D frames at the end are cut off, as
    VideoPose3D does for Human3.6M's videos. Returns the number of 2D frames cut."""
    cut = 0
    for subject, actions in pos2d.items():
        for action, cams in actions.items():
            pose = pos3d[subject][action]
            if isinstance(pose, list) and len(pose) != len(cams):
                raise UserError(f"{path_3d}: positions_3d[{subject!r}][{action!r}] has {len(pose)} cameras; "
                                f"expected {len(cams)} as the 2D in {path_2d}")
            for c, kp in enumerate(cams):
                n3 = len(pose[c] if isinstance(pose, list) else pose)
                if len(kp) < n3:
                    raise UserError(f"{path_2d}: positions_2d[{subject!r}][{action!r}][{c}] has {len(kp)} "
                                    f"frames, expected {n3} as in {path_3d} (or more: extra frames are cut)")
                cut += len(kp) - n3
                cams[c] = kp[:n3]
    return cut


def _drop_empty(pos2d, pos3d, path_3d):
    """Leave out the actions with 0 frames of 3D (and so of 2D), and subjects left with none; their
    "subject/action" names, for a note. Nothing left at all is the user's one line."""
    empty = []
    for subject in list(pos2d):
        for action in list(pos2d[subject]):
            if not any(len(kp) for kp in pos2d[subject][action]):
                empty.append(f"{subject}/{action}")
                del pos2d[subject][action], pos3d[subject][action]
        if not pos2d[subject]:
            del pos2d[subject]
            pos3d.pop(subject, None)
    if not pos2d:
        raise UserError(f"{path_3d}: every action has 0 frames; expected at least one action with frames")
    return empty


def _sizes_from_metadata(pos2d, meta, path_2d, path_3d):
    """Image sizes of 3D given per camera, from the 2D's metadata['video_metadata'][subject] {w, h}
    (VideoPose3D's custom 2D files), as cameras without extrinsics."""
    videos = meta.get("video_metadata") if isinstance(meta.get("video_metadata"), dict) else {}
    per_subject = {}
    for subject, actions in pos2d.items():
        size = videos.get(subject)
        if not (isinstance(size, dict) and all(_is_int(size.get(k)) and size[k] > 0 for k in "wh")):
            raise UserError(f"{path_3d}: 3D per camera, but no image size for subject {subject!r}; expected "
                            f"--cameras FILE with res_w and res_h, or metadata['video_metadata'] in {path_2d}")
        count = max(len(cams) for cams in actions.values())
        per_subject[subject] = tuple(Camera(f"C{i + 1}", int(size["w"]), int(size["h"])) for i in range(count))
    return CameraSet(f"{path_2d}: video_metadata", per_subject, in_camera_frame=True)


def _check_cameras(data, path_2d, path_3d):
    """Every camera the data uses is in the dataset's cameras, with extrinsics where its 3D is in
    the world; 3D per camera without cameras takes image sizes from the 2D's metadata."""
    dataset = data.dataset
    world = [(s, a) for s in data.positions_3d for a in data.positions_3d[s] if not data.per_camera(s, a)]
    if dataset.cameras is None:
        if world:
            raise UserError(f"{path_3d}: positions_3d[{world[0][0]!r}][{world[0][1]!r}] is in world coordinates "
                            f"and dataset {dataset.name!r} has no cameras; expected --cameras FILE (or one "
                            "3D array per camera)")
        data.dataset = replace(dataset, cameras=_sizes_from_metadata(data.positions_2d, data.metadata,
                                                                     path_2d, path_3d))
        return
    world = set(world)
    for subject, actions in data.positions_2d.items():
        for action, cams in actions.items():
            for c in range(len(cams)):
                cam = dataset.cameras.get(subject, c, f"{path_2d}: positions_2d[{subject!r}][{action!r}]")
                if (subject, action) in world and not cam.has_pose:
                    raise UserError(f"{dataset.cameras.name}: camera C{c + 1} of subject {subject!r} has no "
                                    f"orientation and translation; expected them for the world 3D of {path_3d}")


def _layout_name(pos2d, meta, keypoints, dataset, path_2d):
    """The 2D's layout name, which a run keeps (Layout.name_2d) to tell COCO-17 from its own 17 joints:
    the file's metadata['layout_name'] (VideoPose3D names its Human3.6M detections 'h36m' for CPN's and
    'coco' for Detectron's COCO-pretrained ones), else the dataset's for its ground truth, else None
    (unnamed detections). A known name whose joint count is not the 2D's is refused."""
    name = meta.get("layout_name")
    if name is not None and not isinstance(name, str):
        raise UserError(f"{path_2d}: metadata['layout_name'] is {str(name)[:80]}; expected a 2D layout name such as "
                        "'coco', or none")
    if not name:
        return dataset.layout_2d if keypoints == "gt" else None
    joints = next(cams[0].shape[1] for actions in pos2d.values() for cams in actions.values())
    known = LAYOUTS.get(name)
    if known is not None and known.num_joints != joints:
        raise UserError(f"{path_2d}: metadata['layout_name'] is {name!r}, a layout of {known.num_joints} joints, "
                        f"but the 2D has {joints}; expected the layout of its joints, or no layout_name")
    return name


def load_dataset(npz_dir, keypoints="gt", dataset=None):
    """A dataset directory's 2D and 3D files, checked against each other, the skeleton and the
    cameras. `dataset` (raypose.datasets.registry.Dataset) defaults to the one the file names give."""
    npz_dir = os.fspath(npz_dir)
    dataset = dataset or resolve(npz_dir)
    path_2d, path_3d = dataset.file_2d(npz_dir, keypoints), dataset.file_3d(npz_dir)
    if not os.path.isdir(npz_dir):
        raise UserError(f"{npz_dir}: directory not found; expected the folder holding "
                        f"{os.path.basename(path_2d)} and {os.path.basename(path_3d)}")
    pos2d, meta = load_2d(path_2d)
    dataset = replace(dataset, layout_2d=_layout_name(pos2d, meta, keypoints, dataset, path_2d))
    pos3d = load_3d(path_3d, dataset)
    left_out = _match_keys(pos2d, pos3d, path_2d, path_3d, strict=dataset.name == "humaneva15")
    cut = _match_frames(pos2d, pos3d, path_2d, path_3d)
    empty = _drop_empty(pos2d, pos3d, path_3d)
    check_subjects(dataset, set(pos2d), path_3d)
    meta = dict(meta, **({"left_out_subjects": left_out} if left_out else {}),
                **({"frames_cut_2d": cut} if cut else {}), **({"empty_actions": empty} if empty else {}))
    data = PoseData(pos2d, pos3d, meta, dataset)
    _check_cameras(data, path_2d, path_3d)
    return data


def load_humaneva(npz_dir, keypoints="gt"):
    """Both files of a HumanEva npz directory (data_2d_humaneva15_<keypoints>.npz, data_3d_humaneva15.npz)."""
    return load_dataset(npz_dir, keypoints, DATASETS["humaneva15"])

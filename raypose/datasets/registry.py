"""Datasets: what a directory of VideoPose3D-style npz files needs besides its arrays.

A Dataset bundles the 3D skeleton, the cameras (world 3D -> each camera's frame, image sizes), the
joints kept from the 3D file, the train/test subjects, the frame rate and the action order.
HumanEva-I (`humaneva15`) and Human3.6M (`h36m`) are built in; any other name needs a skeleton
(--skeleton FILE or a "skeleton" in the 3D file's metadata) and, for world 3D, cameras (--cameras).
The name comes from the files: data_3d_<name>.npz and data_2d_<name>_<keypoints>.npz.
"""
import math
import os
import re
from dataclasses import dataclass, replace

from raypose.datasets import h36m
from raypose.datasets.cameras import FPS as HUMANEVA_FPS
from raypose.datasets.cameras import H36M_CAMERAS, HUMANEVA_CAMERAS, CameraSet, read_cameras
from raypose.datasets.skeleton import HUMANEVA, Skeleton, read_skeleton
from raypose.errors import UserError

FILE_3D = "data_3d_{}.npz"
FILE_2D = "data_2d_{}_{}.npz"
DEFAULT_FPS = 50   # a dataset that names none (VideoPose3D's custom datasets carry no frame rate)


@dataclass(frozen=True)
class Dataset:
    name: str
    skeleton: Skeleton
    cameras: CameraSet | None      # None: 3D given per camera and image sizes not known yet
    keep: tuple | None = None      # the 3D file's joints that make the skeleton's, in order
    train_subjects: tuple | None = None   # None: HumanEva's rule, Train/* trains and Validate/* tests
    test_subjects: tuple | None = None
    fps: float = DEFAULT_FPS
    action_order: tuple = ()       # report columns: these first, any other after them
    layout_2d: str | None = None   # the ground-truth 2D's layout name (keypoints.LAYOUTS)

    def file_3d(self, folder):
        return os.path.join(os.fspath(folder), FILE_3D.format(self.name))

    def file_2d(self, folder, keypoints):
        return os.path.join(os.fspath(folder), FILE_2D.format(self.name, keypoints))

    def image_size(self, subject, index):
        """(w, h) in pixels of that subject's camera `index`."""
        if self.cameras is None:
            raise UserError(f"dataset {self.name!r}: no cameras, so no image sizes; expected --cameras FILE "
                            "with res_w and res_h per subject and camera")
        cam = self.cameras.get(subject, index, f"dataset {self.name!r}")
        return cam.res_w, cam.res_h

    def image_sizes(self):
        """{camera name: [w, h]} over every subject (the first subject's where they differ)."""
        sizes = {}
        for cams in (self.cameras.per_subject.values() if self.cameras else ()):
            for i, cam in enumerate(cams):
                sizes.setdefault(f"C{i + 1}", [cam.res_w, cam.res_h])
        return sizes

    def to_dict(self):
        """Plain JSON: what Layout keeps (name, fps, image_sizes) and what from_dict needs."""
        def listed(v):
            return None if v is None else list(v)
        return {"name": self.name, "fps": self.fps, "image_sizes": self.image_sizes(),
                "skeleton": self.skeleton.to_dict(), "cameras": self.cameras and self.cameras.to_dict(),
                "keep": listed(self.keep), "train_subjects": listed(self.train_subjects),
                "test_subjects": listed(self.test_subjects), "action_order": list(self.action_order),
                "layout_2d": self.layout_2d}

    @classmethod
    def from_dict(cls, d, where="dataset"):
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise UserError(f"{where}: dataset is {str(d)[:80]}; expected a dict with name, skeleton, cameras, fps")
        try:
            def tupled(key):
                return None if d.get(key) is None else tuple(d[key])
            cams = None if d.get("cameras") is None else CameraSet.from_dict(d["cameras"], f"{where}: cameras")
            train, test = _subjects(d, where, "dataset")   # both lists of names, or neither
            if d.get("layout_2d") is not None and not isinstance(d["layout_2d"], str):
                raise UserError(f"{where}: layout_2d is {str(d['layout_2d'])[:80]}; expected a 2D layout name or none")
            return cls(d["name"], Skeleton.from_dict(d["skeleton"], f"{where}: skeleton"), cams,
                       tupled("keep"), train, test, _fps(d, where, key="fps"), tuple(d.get("action_order") or ()),
                       d.get("layout_2d"))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: malformed dataset ({type(e).__name__}: {e}); expected name, skeleton, "
                            "cameras, fps") from None


DATASETS = {
    "humaneva15": Dataset("humaneva15", HUMANEVA, HUMANEVA_CAMERAS, None, None, None, HUMANEVA_FPS,
                          ("Walking", "Jog", "Box", "Gestures", "ThrowCatch", "Combo"), "humaneva15"),
    "h36m": Dataset("h36m", h36m.SKELETON, H36M_CAMERAS, h36m.KEEP_32, h36m.TRAIN_SUBJECTS,
                    h36m.TEST_SUBJECTS, h36m.FPS, h36m.ACTIONS, "h36m"),
}
HUMANEVA_DATASET = DATASETS["humaneva15"]


def _names(folder):
    """Dataset names that the folder's file names give: its 3D files', else its 2D files'."""
    files = sorted(os.listdir(folder))
    names = [m.group(1) for m in map(re.compile(r"data_3d_(.+)\.npz$").match, files) if m]
    if names:
        return names
    found = []
    for f in files:   # keypoint names hold underscores (cpn_ft_h36m_dbb): built-in names first
        if f.startswith("data_2d_") and f.endswith(".npz"):
            stem = f[len("data_2d_"):-len(".npz")]
            name = next((n for n in DATASETS if stem.startswith(n + "_")), stem.split("_")[0])
            found.append(name)
    return list(dict.fromkeys(found))


def recognise(path):
    """The dataset's name from the file names in directory `path` (data_3d_<name>.npz)."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise UserError(f"{path}: directory not found; expected the folder holding data_3d_<name>.npz and "
                        "data_2d_<name>_<keypoints>.npz")
    names = _names(path)
    if not names:
        raise UserError(f"{path}: no data_3d_<name>.npz or data_2d_<name>_<keypoints>.npz; expected "
                        "VideoPose3D's files such as data_3d_humaneva15.npz and data_2d_humaneva15_gt.npz")
    if len(names) > 1:
        raise UserError(f"{path}: files of several datasets ({', '.join(names)}); expected --dataset NAME")
    return names[0]


def _metadata(path):
    """The 3D file's metadata dict ({} without the file or the key); only that member is read."""
    from raypose.npzfile import read_npz
    if not os.path.isfile(path):
        return {}
    meta = read_npz(path, keys=("metadata",)).get("metadata")
    return meta if isinstance(meta, dict) else {}


def resolve(path, name=None, skeleton=None, cameras=None):
    """The Dataset of npz directory `path`: `name` (or the files' name), its skeleton (`skeleton`
    file, else the 3D file's metadata["skeleton"], else the built-in one) and its cameras
    (`cameras` file, else the built-in ones, else none: 3D per camera). A dataset of one's own
    takes its frame rate and train/test subjects from the 3D file's metadata too."""
    name = name or recognise(path)
    base = DATASETS.get(name)
    file_3d = os.path.join(os.fspath(path), FILE_3D.format(name))
    meta = _metadata(file_3d) if os.path.isdir(path) else {}
    if skeleton:
        skel = read_skeleton(skeleton)
    elif meta.get("skeleton") is not None:
        skel = Skeleton.from_dict(meta["skeleton"], f"{file_3d}: metadata['skeleton']", name=name)
    elif base is not None:
        skel = base.skeleton
    else:
        raise UserError(f"{file_3d}: dataset {name!r} is not built in and has no skeleton; expected --skeleton "
                        f"FILE or a 'skeleton' in its metadata (built in: {', '.join(DATASETS)})")
    cams = read_cameras(cameras) if cameras else (base.cameras if base else None)
    train, test = _subjects(meta, file_3d)   # checked for a built-in dataset too, and then its own replaced
    if base is not None:
        given = {"train_subjects": train, "test_subjects": test} if train is not None else {}
        return replace(base, skeleton=skel, cameras=cams, fps=_fps(meta, file_3d, base.fps), **given)
    return Dataset(name, skel, cams, train_subjects=train, test_subjects=test, fps=_fps(meta, file_3d))


def _fps(meta, file_3d, default=DEFAULT_FPS, key="metadata['fps']"):
    fps = meta.get("fps", default)
    try:
        ok = not isinstance(fps, bool) and math.isfinite(float(fps)) and float(fps) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{file_3d}: {key} is {fps!r}; expected a number > 0 (frames per second)")
    return float(fps)


def _subjects(meta, file_3d, of="metadata"):
    """(train, test) subjects named by the metadata, or (None, None): both lists of distinct
    subject names that do not overlap, or neither (the split then needs Train/ and Validate/ names)."""
    given = {key: meta.get(key) for key in ("train_subjects", "test_subjects")}
    if all(v is None for v in given.values()):
        return None, None
    expected = "expected both train_subjects and test_subjects, non-empty lists of distinct subject names"
    for key, value in given.items():
        if hasattr(value, "tolist"):
            value = given[key] = value.tolist()
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
            raise UserError(f"{file_3d}: {of}[{key!r}] is {str(value)[:80]}; {expected}")
        if len(set(value)) != len(value):
            raise UserError(f"{file_3d}: {of}[{key!r}] names a subject twice; {expected}")
    both = sorted(set(given["train_subjects"]) & set(given["test_subjects"]))
    if both:
        raise UserError(f"{file_3d}: subjects {both} are in both {of}['train_subjects'] and "
                        f"{of}['test_subjects']; expected each subject to train or test, not both")
    return tuple(given["train_subjects"]), tuple(given["test_subjects"])


def check_subjects(dataset, subjects, where):
    """The train and test subjects a 3D file's metadata names are all in its data (a misspelt one would
    drop out of the split silently); a built-in dataset's own lists (Human3.6M's) are not checked."""
    base = DATASETS.get(dataset.name)
    if dataset.train_subjects is None or (base is not None and (dataset.train_subjects, dataset.test_subjects)
                                          == (base.train_subjects, base.test_subjects)):
        return
    for key in ("train_subjects", "test_subjects"):
        missing = [s for s in getattr(dataset, key) if s not in subjects]
        if missing:
            raise UserError(f"{where}: metadata[{key!r}] names {missing} which the data does not have; expected "
                            f"subjects of its positions_3d ({', '.join(sorted(subjects))})")


def of_run(layout, where="layout.json"):
    """The Dataset a run was trained on, from its layout alone (its skeleton and cameras files are
    never read again: they may have moved or changed). None for a run from before datasets (no
    dataset in layout.json: HumanEva, whose data's file names then decide as they did)."""
    d = layout.dataset
    if d is None:
        return None
    if d.get("skeleton") is not None:
        return replace(Dataset.from_dict(d, f"{where}: dataset"), skeleton=layout.skeleton)
    if d.get("name") in DATASETS:
        return replace(DATASETS[d["name"]], skeleton=layout.skeleton)
    raise UserError(f"{where}: dataset {d.get('name')!r} has no skeleton and cameras; expected the dataset "
                    "that raypose train saves (train the run again)")


def has_npz_files(path):
    """Whether `path` is a local directory holding a data_3d_<name>.npz."""
    return os.path.isdir(path) and any(re.match(r"data_3d_.+\.npz$", f) for f in os.listdir(path))

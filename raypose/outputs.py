"""Output directories that appear whole or not at all.

A directory is written under a temporary name in the same parent and renamed into place at
the end, so a reader never sees half an output and a failed write leaves nothing behind.
"""
import contextlib
import json
import math
import os
import re
import shutil
import tempfile

from raypose.errors import UserError
from raypose.npzfile import _umask, read_npz


def _has(path, files=(), dirs=()):
    return (all(os.path.isfile(os.path.join(path, f)) for f in files)
            and all(os.path.isdir(os.path.join(path, d)) for d in dirs))


def _is_prepared(path, names):   # _raypose.json, or the old layout: metadata.json + frames/
    return _has(path, ["_raypose.json"]) or _has(path, ["metadata.json"], ["frames"])


PREPARED_FILES = {"_raypose.json", "_frames.csv", "frames", "metadata.json", "frames.csv"}   # and subject=.../


def _prepared_foreign(path, names):
    """The first entry of a former prepared table that prepare does not write (a run, a user's notes),
    or None: --overwrite replaces the table whole, so nothing else may be in it."""
    foreign = next((n for n in sorted(names) if n not in PREPARED_FILES and not (
        n.startswith("subject=") and os.path.isdir(os.path.join(path, n)))), None)
    return None if foreign is None else f"it holds {foreign}, which raypose prepare does not write"


def _is_synthetic(path, names):
    """Only raypose synth's files: every name a data_2d_<dataset>_*.npz or data_3d_<dataset>.npz, and each
    dataset's 2D gt file present and marked synthetic in its metadata (real HumanEva or Human3.6M files
    have the same names, never the mark)."""
    used = set()
    for name in names:
        m = _SYNTH_NAME.fullmatch(name)
        if not m or not os.path.isfile(os.path.join(path, name)):
            return False
        used.add(m.group(1) or m.group(2))
    for dataset in used:
        try:
            meta = read_npz(os.path.join(path, f"data_2d_{dataset}_gt.npz"), keys=("metadata",)).get("metadata")
        except UserError:
            return False
        if not (isinstance(meta, dict) and meta.get("synthetic") is True):
            return False
    return bool(used)


_SYNTH_NAME = re.compile(r"data_2d_([A-Za-z0-9]+)_\w+\.npz|data_3d_([A-Za-z0-9]+)\.npz")


EXPORT_SUMMARY = "raypose_export.json"   # raypose export's summary: "files" lists what it wrote


def _is_export(path, names):
    return _has(path, [EXPORT_SUMMARY])


def _export_foreign(path, names):
    """Why a former export is not replaced whole: the first entry its summary does not list as a file
    it wrote (a user's .blend saved beside the BVHs), or an unreadable summary; None if all are its own."""
    try:
        with open(os.path.join(path, EXPORT_SUMMARY)) as f:
            listed = {EXPORT_SUMMARY, *(str(n) for n in json.load(f)["files"])}
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return f"its {EXPORT_SUMMARY} is unreadable or lists no files"
    foreign = next((n for n in sorted(names) if n not in listed or not os.path.isfile(os.path.join(path, n))), None)
    return None if foreign is None else f"{foreign} is not listed in its {EXPORT_SUMMARY}"


def _is_run(path, names):   # checkpoints/ may not exist yet in a run stopped early
    return _has(path, ["config.toml", "layout.json"])


# kind -> (test on the directory and its entry names, what the kind looks like, for messages)
KINDS = {
    "prepared": (_is_prepared, "prepared frame table (_raypose.json, or metadata.json + frames/)"),
    "synthetic": (_is_synthetic, "synthetic npz directory (only raypose synth's data_2d_humaneva15_gt.npz and "
                                 "data_3d_humaneva15.npz, or data_2d_h36m_gt.npz and data_3d_h36m.npz)"),
    "run": (_is_run, "raypose run (config.toml, layout.json)"),
    "export": (_is_export, "raypose export (raypose_export.json)"),
}
# kind -> why a directory of that kind still holds something that is not the kind's own (None: it does not)
FOREIGN = {"export": _export_foreign, "prepared": _prepared_foreign}


def plain(obj):
    """`obj` as strict JSON holds it: numpy values as numbers and lists, NaN and infinities as null,
    anything else as its str."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return plain(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj if obj is None or isinstance(obj, (str, int, float, bool)) else str(obj)


def _check_writable_parent(out):
    """`out`'s nearest existing ancestor is a folder in which something can be made: the writers
    (atomic_dir, save_npz) make the missing folders there and a temporary sibling; tried up front."""
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.lexists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"--out {out}: {parent} is a file, not a folder; expected a path in a folder")
    try:   # os.access says yes to root on read-only file systems: try it
        tempfile.TemporaryDirectory(dir=parent).cleanup()
    except OSError as e:
        raise UserError(f"--out {out}: cannot write in {parent} ({e.strerror or e}); expected a writable "
                        "folder") from None


def check_outside_runs(out, flag="--out", also=()):
    """`out` lies in no raypose run directory (its parent folders, compared by resolved real paths; a
    link into a run counts as in it), nor in any folder of `also` (a run being read): a file or folder
    written there could replace a run's config, layout or members, and its checksums would no longer
    hold. `out` itself may be a run: whether it may be replaced is check_replaceable's `kind`. A folder
    of `also` without a config.toml is no run: the command's own check of it names what is missing."""
    out = os.fspath(out)
    real = os.path.realpath(out)
    roots = {os.path.realpath(os.fspath(a)) for a in also   # a run from before layout.json has its config
             if os.path.isfile(os.path.join(os.fspath(a), "config.toml"))}
    folder = os.path.dirname(real)
    while True:
        if folder in roots or (os.path.isdir(folder) and _is_run(folder, ())):
            raise UserError(f"{flag} {out}: inside the run directory {folder}; expected a path outside any "
                            "raypose run (a file written there could replace the run's own)")
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


def check_replaceable(out, overwrite, inputs=(), kind=None):
    """The one rule for writing the directory `out`, checked before anything is read or written.

    `out` may be new or an empty directory. With `overwrite` it may also be a non-empty
    directory that is a raypose output of the same `kind` (a key of KINDS; None: no kind, so
    nothing non-empty is ever replaced). Never an existing file, never an input (a file or a
    directory in `inputs`) or a directory holding one, compared by resolved real paths; and its
    nearest existing ancestor a folder where a temporary directory can be made.
    """
    out = os.fspath(out)
    real = os.path.realpath(out)
    for inp in inputs:
        inp_real = os.path.realpath(os.fspath(inp))
        if inp_real == real or inp_real.startswith(real.rstrip(os.sep) + os.sep):
            what = "is" if inp_real == real else "holds"
            raise UserError(f"{out}: output {what} the input {os.fspath(inp)}; expected an output "
                            "path apart from the input")
    check_outside_runs(out)
    _check_writable_parent(out)
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out):
        raise UserError(f"{out}: exists and is not a directory; expected a new or empty directory")
    names = set(os.listdir(out))
    if not names:
        return
    if kind is None:
        raise UserError(f"{out}: output path exists and is not empty; expected a new or empty directory")
    if not KINDS[kind][0](out, names):
        raise UserError(f"{out}: not empty and not a {KINDS[kind][1]}, so it is not replaced; "
                        "expected a new or empty directory")
    foreign = FOREIGN[kind](out, names) if kind in FOREIGN else None
    if foreign:
        raise UserError(f"{out}: {foreign}, so it is not replaced (--overwrite replaces only what a former "
                        f"{KINDS[kind][1].split(' (')[0]} holds of its own); expected a new or empty directory, or "
                        f"a former {kind} output alone")
    if not overwrite:
        raise UserError(f"{out}: output path exists and is not empty; expected a new or empty "
                        "directory (or pass --overwrite to replace it)")


@contextlib.contextmanager
def atomic_dir(out, overwrite=False, inputs=(), kind=None):
    """Yields a temporary sibling of `out` to fill; on success it replaces `out`, on error it goes.

    `out` must pass check_replaceable(out, overwrite, inputs, kind). Same parent, so the final
    rename stays on one file system and is atomic. The folder gets the user's usual mode
    (0o777 & ~umask), not mkdtemp's private 0o700.
    """
    out = os.path.abspath(os.fspath(out))
    check_replaceable(out, overwrite, inputs, kind)
    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=name + ".tmp-", dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        _swap(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(tmp, out):
    """Move what is at `out` aside, rename `tmp` into place, then delete the old one."""
    old = None
    if os.path.lexists(out):
        old = tempfile.mkdtemp(prefix=os.path.basename(out) + ".old-", dir=os.path.dirname(out))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(tmp, out)
    if old:
        shutil.rmtree(old) if os.path.isdir(old) and not os.path.islink(old) else os.unlink(old)


def check_out_file(out_path, input_path=None, overwrite=False, what="an npz file", input_flag="--input",
                   runs=()):
    """`out_path` can take an output file: a new one (an existing one with `overwrite`), never an input
    (`input_path`, given as `input_flag`; or several {flag: path}) nor in any raypose run directory
    (check_outside_runs; `runs`: runs being read), whose folder is, or can be made, writable.
    Checked before any loading."""
    out = os.fspath(out_path)
    if os.path.isdir(out):
        raise UserError(f"--out {out}: is a directory; expected the path of {what}")
    if not out or out.endswith(os.sep):
        raise UserError(f"--out {out!r}: names no file; expected the path of {what}")
    inputs = input_path if isinstance(input_path, dict) else {input_flag: input_path}
    for flag, path in inputs.items():
        if path is not None and os.path.realpath(out) == os.path.realpath(os.fspath(path)):
            raise UserError(f"--out {out}: is the {flag} file; expected a path apart from {flag}")
    check_outside_runs(out, also=runs)
    if os.path.lexists(out) and not overwrite:
        raise UserError(f"--out {out}: file exists; expected a new path (or pass --overwrite to replace it)")
    _check_writable_parent(out)

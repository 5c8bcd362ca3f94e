"""Output directories that appear whole or not at all.

A directory is written under a temporary name in the same parent and renamed into place at
the end, so a reader never sees half an output and a failed write leaves nothing behind.
"""
import contextlib
import fnmatch
import os
import shutil
import tempfile

from .errors import UserError


def _has(path, files=(), dirs=()):
    return (all(os.path.isfile(os.path.join(path, f)) for f in files)
            and all(os.path.isdir(os.path.join(path, d)) for d in dirs))


def _is_prepared(path, names):   # _raypose.json, or the old layout: metadata.json + frames/
    return _has(path, ["_raypose.json"]) or _has(path, ["metadata.json"], ["frames"])


def _is_synthetic(path, names):
    """Only the synthetic pair, its 2D marked synthetic (real HumanEva files have the same names)."""
    from .data.npz import read_npz
    if not all((fnmatch.fnmatchcase(n, "data_2d_humaneva15_*.npz") or n == "data_3d_humaneva15.npz")
               and _has(path, [n]) for n in names):
        return False
    try:
        meta = read_npz(os.path.join(path, "data_2d_humaneva15_gt.npz")).get("metadata")
    except UserError:
        return False
    return isinstance(meta, dict) and meta.get("synthetic") is True


def _is_export(path, names):   # raypose export's summary beside what it wrote
    return _has(path, ["raypose_export.json"])


def _is_run(path, names):   # checkpoints/ may not exist yet in a run stopped early
    return _has(path, ["config.toml", "layout.json"])


# kind -> (test on the directory and its entry names, what the kind looks like, for messages)
KINDS = {
    "prepared": (_is_prepared, "prepared frame table (_raypose.json, or metadata.json + frames/)"),
    "synthetic": (_is_synthetic, "synthetic npz directory (only raypose synth's data_2d_humaneva15_gt.npz, "
                                 "data_3d_humaneva15.npz)"),
    "run": (_is_run, "raypose run (config.toml, layout.json)"),
    "export": (_is_export, "raypose export (raypose_export.json)"),
}


def check_replaceable(out, overwrite, inputs=(), kind=None):
    """The one rule for writing the directory `out`, checked before anything is read or written.

    `out` may be new or an empty directory. With `overwrite` it may also be a non-empty
    directory that is a raypose output of the same `kind` (a key of KINDS; None: no kind, so
    nothing non-empty is ever replaced). Never an existing file, never an input (a file or a
    directory in `inputs`) or a directory holding one, compared by resolved real paths.
    """
    out = os.fspath(out)
    real = os.path.realpath(out)
    for inp in inputs:
        inp_real = os.path.realpath(os.fspath(inp))
        if inp_real == real or inp_real.startswith(real.rstrip(os.sep) + os.sep):
            what = "is" if inp_real == real else "holds"
            raise UserError(f"{out}: output {what} the input {os.fspath(inp)}; expected an output "
                            "path apart from the input")
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
    if not overwrite:
        raise UserError(f"{out}: output path exists and is not empty; expected a new or empty "
                        "directory (or pass --overwrite to replace it)")


@contextlib.contextmanager
def atomic_dir(out, overwrite=False, inputs=(), kind=None):
    """Yields a temporary sibling of `out` to fill; on success it replaces `out`, on error it goes.

    `out` must pass check_replaceable(out, overwrite, inputs, kind). Same parent, so the final
    rename stays on one file system and is atomic.
    """
    out = os.path.abspath(os.fspath(out))
    check_replaceable(out, overwrite, inputs, kind)
    parent, name = os.path.split(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=name + ".tmp-", dir=parent)
    try:
        yield tmp
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


def check_out_file(out_path, input_path=None, overwrite=False, what="an npz file"):
    """`out_path` can take an output file: a new one (an existing one with `overwrite`, never the
    input itself) whose folder is, or can be made, writable. Checked before any loading."""
    out = os.fspath(out_path)
    if os.path.isdir(out):
        raise UserError(f"--out {out}: is a directory; expected the path of {what}")
    if not out or out.endswith(os.sep):
        raise UserError(f"--out {out!r}: names no file; expected the path of {what}")
    if input_path is not None and os.path.realpath(out) == os.path.realpath(os.fspath(input_path)):
        raise UserError(f"--out {out}: is the input file; expected a path apart from --input")
    if os.path.lexists(out) and not overwrite:
        raise UserError(f"--out {out}: file exists; expected a new path (or pass --overwrite to replace it)")
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.lexists(parent):   # the writer makes the missing folders in the nearest existing one
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise UserError(f"--out {out}: {parent} is a file, not a folder; expected a path in a folder")
    try:   # os.access says yes to root on read-only file systems: try a nameless temporary file
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as e:
        raise UserError(f"--out {out}: cannot write in {parent} ({e.strerror}); expected a writable "
                        "folder") from None

"""Output directories that appear whole or not at all.

A directory is written under a temporary name in the same parent and renamed into place at
the end, so a reader never sees half an output and a failed write leaves nothing behind.
"""
import contextlib
import os
import shutil
import tempfile

from .errors import UserError


def check_empty(out, overwrite):
    """An output path must be new or empty unless the user asked to overwrite it."""
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)) and not overwrite:
        raise UserError(f"{out}: output path exists and is not empty; expected a new or empty "
                        "directory (or pass --overwrite)")


@contextlib.contextmanager
def atomic_dir(out, overwrite=False):
    """Yields a temporary sibling of `out` to fill; on success it replaces `out`, on error it goes.

    Same parent, so the final rename stays on one file system and is atomic.
    """
    out = os.path.abspath(os.fspath(out))
    check_empty(out, overwrite)
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

"""The run directory's files: member checkpoints, per-iteration records, and which iteration is complete.

An iteration is complete when `checkpoints/iter{i}.json` exists: it is written last, after every
member's file, and records each file's SHA-256. Every file is written under a temporary name and
renamed into place, so a killed process never leaves a partial file under a real name, and a
member file of an iteration without its record is never loaded.
Paths may be local or URIs that pyarrow.fs understands (s3://, gs://).
"""
import hashlib
import io
import json
import os
import re
import uuid

import numpy as np
import pyarrow.fs as pafs
import torch

from ..errors import UserError

_ITER = re.compile(r"^iter(\d+)\.json$")
CAMERAS = "cameras.json"   # focal lengths fitted on the training windows (geometry.focal_table)


def member_name(n, k, i):
    return f"{n}_members_ensemble{k}_iter{i}.ckpt"


class RunDir:
    def __init__(self, uri):
        uri = os.fspath(uri)
        if "://" in uri:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.uri = uri

    def path(self, *parts):
        return "/".join([self.root.rstrip("/"), *parts])

    def exists(self, *parts):
        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def write_bytes(self, rel, data):
        dst = self.path(rel)
        self.fs.create_dir(dst.rsplit("/", 1)[0], recursive=True)
        tmp = f"{dst}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, dst)
        return dst

    def read_bytes(self, rel):
        with self.fs.open_input_stream(self.path(rel)) as f:
            return f.read()

    def write_json(self, rel, obj):
        return self.write_bytes(rel, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())

    def read_json(self, rel):
        return json.loads(self.read_bytes(rel))

    def listdir(self, rel):
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return [info.base_name for info in self.fs.get_file_info(sel)]

    def delete(self, rel):
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

    def focals(self):
        """{camera: focal length} the run fitted on its training windows; None where it has none
        (2D not in the 3D skeleton's joint order, or a run from before the file existed)."""
        return self.read_json(CAMERAS)["focal"] if self.exists(CAMERAS) else None

    # ---- checkpoints ----------------------------------------------------------------------

    def save_member(self, n, k, i, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        self.write_bytes(f"checkpoints/{member_name(n, k, i)}", data)
        return hashlib.sha256(data).hexdigest()

    def load_member(self, n, k, i, map_location="cpu"):
        record = self.read_json(f"checkpoints/iter{i}.json")
        data = self.read_bytes(f"checkpoints/{member_name(n, k, i)}")
        expected = record["files"][member_name(n, k, i)]
        if hashlib.sha256(data).hexdigest() != expected:
            raise UserError(f"{self.path('checkpoints', member_name(n, k, i))}: checksum differs "
                            "from its iteration record; the file is corrupt")
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)

    def save_npz(self, rel, **arrays):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        data = buf.getvalue()
        self.write_bytes(rel, data)
        return hashlib.sha256(data).hexdigest()

    def load_npz(self, rel, iteration):
        """An npz listed in iteration `iteration`'s record, checksum verified."""
        data = self.read_bytes(rel)
        if hashlib.sha256(data).hexdigest() != self.record(iteration)["files"][rel.rsplit("/", 1)[-1]]:
            raise UserError(f"{self.path(rel)}: checksum differs from its iteration record")
        return dict(np.load(io.BytesIO(data)))

    def iterations(self):
        """Complete iterations, ascending."""
        found = (_ITER.match(name) for name in self.listdir("checkpoints"))
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self):
        its = self.iterations()
        return its[-1] if its else 0

    def record(self, i):
        return self.read_json(f"checkpoints/iter{i}.json")

    def clean_incomplete(self, n):
        """Drop member files and temporaries of iterations that never got their record."""
        done = set(self.iterations())
        for name in self.listdir("checkpoints"):
            m = re.match(r"^(?:\d+_members_ensemble\d+_iter|pseudo_iter)(\d+)\.(?:ckpt|npz)$", name)
            if ".tmp-" in name or (m and int(m.group(1)) not in done):
                self.delete(f"checkpoints/{name}")

    def prune(self, n, keep_last):
        """Keep the newest `keep_last` complete iterations (0 keeps all, as the 2022 method)."""
        its = self.iterations()
        if keep_last <= 0 or len(its) <= keep_last:
            return
        for i in its[:-keep_last]:
            self.delete(f"checkpoints/iter{i}.json")   # record first: the iteration stops counting
            for k in range(n):
                self.delete(f"checkpoints/{member_name(n, k, i)}")
            self.delete(f"checkpoints/pseudo_iter{i}.npz")

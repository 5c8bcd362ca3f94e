"""The run directory: the one place that reads and writes it.

    config.toml  layout.json  cameras.json  metrics.json  evaluation.md  plots/  tensorboard/
    checkpoints/{n}_members_ensemble{k}_iter{i}.ckpt     weights + model_args: every iteration
    checkpoints/{n}_members_ensemble{k}_iter{i}.resume   optimiser and RNG: the latest only
    checkpoints/pseudo_iter{i}.npz                       semi-supervised pseudo-labels
    checkpoints/iter{i}.json                             the record: written last, the commit point

An iteration is complete when its record exists; the record holds each file's SHA-256. Every
file is written under a temporary name and renamed into place, so a killed process never
leaves a partial file under a real name. Paths may be local or URIs pyarrow.fs understands.
"""
import hashlib
import io
import json
import os
import re
import uuid

import numpy as np
import pyarrow.fs as pafs

from . import config as C
from .errors import UserError
from .layout import Layout

CAMERAS = "cameras.json"   # focal lengths fitted on the training windows (geometry.focal_table)
_ITER = re.compile(r"^iter(\d+)\.json$")
_ITER_FILE = re.compile(r"^(?:\d+_members_ensemble\d+_iter|pseudo_iter)(\d+)\.(?:ckpt|resume|npz)$")


def member_name(n, k, i, kind="ckpt"):
    return f"{n}_members_ensemble{k}_iter{i}.{kind}"


def _torch_bytes(obj):
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class Run:
    def __init__(self, uri):
        uri = os.fspath(uri)
        if "://" in uri:
            self.fs, self.root = pafs.FileSystem.from_uri(uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(uri)
        self.uri = uri
        self._config = None

    @classmethod
    def open(cls, uri):
        """An existing run with at least one complete iteration, for reading."""
        run = cls(uri)
        run.config   # noqa: B018  (checks config.toml)
        if not run.iterations():
            raise UserError(f"{run.path('checkpoints')}: no complete iteration yet")
        return run

    # ---- files ---------------------------------------------------------------------------

    @property
    def local(self):
        return "://" not in self.uri

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
        return hashlib.sha256(data).hexdigest()

    def read_bytes(self, rel):
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise UserError(f"{self.path(rel)}: not found; the run directory is incomplete") from None

    def write_json(self, rel, obj):
        return self.write_bytes(rel, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())

    def read_json(self, rel):
        try:
            return json.loads(self.read_bytes(rel))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{self.path(rel)}: malformed JSON ({e}); expected the file raypose wrote") from None

    def listdir(self, rel):
        sel = pafs.FileSelector(self.path(rel), allow_not_found=True)
        return [info.base_name for info in self.fs.get_file_info(sel)]

    def delete(self, rel):
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

    def _checked(self, rel, iteration):
        """A file listed in iteration `iteration`'s record, its checksum verified."""
        data = self.read_bytes(rel)
        expected = self.record(iteration).get("files", {}).get(rel.rsplit("/", 1)[-1])
        if hashlib.sha256(data).hexdigest() != expected:
            raise UserError(f"{self.path(rel)}: checksum differs from its iteration record; the file is corrupt")
        return data

    # ---- what describes the run ----------------------------------------------------------

    @property
    def config(self):
        if self._config is None:
            if not self.exists("config.toml"):
                raise UserError(f"{self.path('config.toml')}: not found; expected a run directory written "
                                "by raypose train")
            self._config = C.loads(self.read_bytes("config.toml").decode(), source=self.path("config.toml"))
        return self._config

    def check_config(self, cfg):
        """Refuse to resume a run made with another config; True if the run is new."""
        if not self.exists("config.toml"):
            return True
        if self.config.hash() != cfg.hash():
            raise UserError(f"{self.path('config.toml')}: this run directory holds a different config "
                            f"(hash {self.config.hash()} vs {cfg.hash()}); expected the same config to "
                            "resume, or choose another --out")
        return False

    def describe(self, cfg, layout):
        """A new run's config and layout, written before any member file."""
        self.write_bytes("config.toml", C.to_toml(cfg).encode())
        self.write_json("layout.json", layout.to_dict())
        self._config = cfg

    @property
    def layout(self):
        if self.exists("layout.json"):
            return Layout.from_dict(self.read_json("layout.json"), source=self.path("layout.json"))
        from .data.source import open_source  # a run from before layout.json: its data's layout
        source = open_source(self.config.data)
        return Layout.of(source.num_joints_2d, source.symmetry)

    def focals(self):
        """{camera: focal length} the run fitted on its training windows; None where it has none
        (2D not in the 3D skeleton's joint order, or a run from before the file existed)."""
        return self.read_json(CAMERAS)["focal"] if self.exists(CAMERAS) else None

    # ---- iterations ----------------------------------------------------------------------

    def iterations(self):
        """Complete iterations, ascending."""
        found = (_ITER.match(name) for name in self.listdir("checkpoints"))
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self):
        its = self.iterations()
        return its[-1] if its else 0

    def iteration(self, asked=None):
        """The asked iteration if complete, else the latest."""
        its = self.iterations()
        if asked is None:
            return its[-1]
        if asked not in its:
            raise UserError(f"--iteration {asked}: not in {self.uri}; expected one of {its}")
        return asked

    def record(self, i):
        r = self.read_json(f"checkpoints/iter{i}.json")
        if not isinstance(r, dict) or "files" not in r:
            raise UserError(f"{self.path(f'checkpoints/iter{i}.json')}: not an iteration record")
        return r

    def save_member(self, k, i, weights, resume):
        """{file name: SHA-256} of member k's weights (kept) and resume state (latest only)."""
        n = self.config.train.members
        return {member_name(n, k, i): self.write_bytes(f"checkpoints/{member_name(n, k, i)}", _torch_bytes(weights)),
                member_name(n, k, i, "resume"): self.write_bytes(f"checkpoints/{member_name(n, k, i, 'resume')}",
                                                                  _torch_bytes(resume))}

    def load_member(self, k, i, kind="ckpt", map_location="cpu"):
        import torch
        data = self._checked(f"checkpoints/{member_name(self.config.train.members, k, i, kind)}", i)
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)

    def save_npz(self, rel, **arrays):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return self.write_bytes(rel, buf.getvalue())

    def load_npz(self, rel, iteration):
        return dict(np.load(io.BytesIO(self._checked(rel, iteration))))

    def clean_incomplete(self):
        """Drop member files and temporaries of iterations that never got their record."""
        done = set(self.iterations())
        for name in self.listdir("checkpoints"):
            m = _ITER_FILE.match(name)
            if ".tmp-" in name or (m and int(m.group(1)) not in done):
                self.delete(f"checkpoints/{name}")

    def prune(self, latest, keep_last):
        """After committing `latest`: older iterations keep their weights only, and only the
        newest `keep_last` iterations are kept (0 keeps all, as the 2022 method)."""
        n = self.config.train.members
        its = self.iterations()
        for i in its:
            if i < latest:
                for k in range(n):
                    self.delete(f"checkpoints/{member_name(n, k, i, 'resume')}")
        if keep_last <= 0 or len(its) <= keep_last:
            return
        for i in its[:-keep_last]:
            self.delete(f"checkpoints/iter{i}.json")   # record first: the iteration stops counting
            for k in range(n):
                self.delete(f"checkpoints/{member_name(n, k, i)}")
            self.delete(f"checkpoints/pseudo_iter{i}.npz")

    # ---- metrics -------------------------------------------------------------------------

    def metrics(self):
        return self.read_json("metrics.json") if self.exists("metrics.json") else {}

    def update_metrics(self, parts):
        """metrics.json with `parts` merged in: training and evaluation never clobber each other."""
        self.write_json("metrics.json", {**self.metrics(), **parts})

"""The run directory: the one place that reads and writes it.

    config.toml  layout.json  cameras.json  metrics.json  evaluation.md  plots/  tensorboard/
    lease.json                                           the one driver writing it, while it runs
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
import socket
import time
import uuid

import numpy as np
import pyarrow.fs as pafs

from raypose import config as C
from raypose.datasets.cameras import check_focals
from raypose.datasets.layout import Layout
from raypose.errors import UserError

CAMERAS = "cameras.json"   # focal lengths fitted on the training windows (geometry.focal_table)
LEASE = "lease.json"       # the one driver that may write the run (host, pid, start, last renewal)
LEASE_STALE_S = 120.0      # another host's lease not renewed for this long: its driver is gone
LEASE_RENEW_S = 30.0
LEASE_SETTLE_S = 1.0       # S3/GCS: how long a racing writer has to overwrite our lease before we read it back
_ITER = re.compile(r"^iter(\d+)\.json$")
_ITER_FILE = re.compile(r"^(?:\d+_members_ensemble\d+_iter|pseudo_iter)(\d+)\.(?:ckpt|resume|npz)$")


def member_name(n, k, i, kind="ckpt"):
    return f"{n}_members_ensemble{k}_iter{i}.{kind}"


def torch_bytes(obj):
    """`obj` as the bytes torch.save writes (a member file's content)."""
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
        self._records = {}

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
        except (ValueError, RecursionError) as e:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
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

    # ---- one writer ----------------------------------------------------------------------

    def acquire(self):
        """Take the run's lease, or raise the user's one-line error naming its owner. A lease
        whose driver is gone (a dead pid on this host, no renewal from another) is taken over."""
        self._lease = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
                       "renewed": time.time(), "token": uuid.uuid4().hex}
        for _ in range(3):
            if self._create_lease():
                return
            owner = self._owner()
            if owner is not None and not _gone(owner):
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
                raise UserError(f"{self.path(LEASE)}: this run directory is being written by another driver "
                                f"(host {owner.get('host')}, pid {owner.get('pid')}, since {since}); expected one "
                                "driver per run directory: wait for it to finish, or choose another --out")
            self._set_aside(owner)   # its driver is gone
        raise UserError(f"{self.path(LEASE)}: could not take the lease; expected to be the only driver here")

    def _created_here(self):
        """The lease made this directory and nothing else is in it: it goes with the lease."""
        return self.local and getattr(self, "_made_dir", False) and os.listdir(self.root) == []

    def _create_lease(self):
        """Create lease.json only if absent: O_EXCL on a local disk; elsewhere (S3, GCS: no
        create-if-absent in pyarrow) write, then read back after a moment to see who won."""
        data = json.dumps(self._lease).encode()
        self._made_dir = self.local and not os.path.exists(self.root)
        self.fs.create_dir(self.root, recursive=True)
        if self.local:   # written whole under another name, then linked: never seen empty
            tmp = self.path(f"{LEASE}.tmp-{self._lease['token']}")
            with open(tmp, "wb") as f:
                f.write(data)
            try:
                os.link(tmp, self.path(LEASE))
                return True
            except FileExistsError:
                return False
            finally:
                os.unlink(tmp)
        if self.exists(LEASE):
            return False
        self.write_bytes(LEASE, data)
        time.sleep(LEASE_SETTLE_S)
        return (self._owner() or {}).get("token") == self._lease["token"]

    def _set_aside(self, owner):
        """Remove a gone driver's lease; locally by renaming it, which only one taker can do."""
        if not self.local:
            self.delete(LEASE)
            return
        try:
            os.rename(self.path(LEASE), self.path(f"{LEASE}.gone-{uuid.uuid4().hex[:8]}"))
        except FileNotFoundError:
            return   # another taker was first
        for name in os.listdir(self.root):
            if name.startswith(f"{LEASE}.gone-"):
                os.unlink(self.path(name))

    @property
    def lease_token(self):
        return (getattr(self, "_lease", None) or {}).get("token")

    def check_lease(self, token=None):
        """Still ours (or the driver's whose `token` a worker holds)? Workers of a killed driver
        must not commit into its successor's run."""
        token = token or self.lease_token
        if token and (self._owner() or {}).get("token") != token:
            raise UserError(f"{self.path(LEASE)}: another driver took over this run directory; stopping")

    def live_lease(self):
        """The lease of a driver still writing this run ({host, pid, started, ...}), or None."""
        owner = self._owner()
        return owner if owner is not None and not _gone(owner) else None

    def _owner(self):
        try:
            return json.loads(self.read_bytes(LEASE))
        except (UserError, json.JSONDecodeError, UnicodeDecodeError):
            return None   # gone meanwhile, or not a lease raypose wrote

    def renew(self):
        """Keep the lease fresh for other hosts (at most every LEASE_RENEW_S seconds)."""
        lease = getattr(self, "_lease", None)
        if lease and time.time() - lease["renewed"] > LEASE_RENEW_S:
            self.check_lease()
            lease["renewed"] = time.time()
            self.write_bytes(LEASE, json.dumps(lease).encode())

    def release(self):
        lease = getattr(self, "_lease", None)
        if lease and (self._owner() or {}).get("token") == lease["token"]:
            self.delete(LEASE)
            if self._created_here():   # a run that failed before writing anything leaves no trace
                os.rmdir(self.root)
        self._lease = None

    # ---- what describes the run ----------------------------------------------------------

    @property
    def config(self):
        if self._config is None:
            if not self.exists("config.toml"):
                raise UserError(f"{self.path('config.toml')}: not found; expected a run directory written "
                                "by raypose train")
            self._config, tables = C.loads_run(self.read_bytes("config.toml"), self.path("config.toml"))
            if "uncertainty" not in tables:   # trained before calibration splits: on every labelled frame
                self._config = C.with_values(self._config, {"uncertainty.holdout": 0.0})
        return self._config

    def check_config(self, cfg):
        """Refuse to resume a run made with another config, or members imported from VideoPose3D
        (their iteration 0 has no optimiser or sampling state); True if the run is new."""
        if not self.exists("config.toml"):
            self._check_no_strangers()
            return True
        if 0 in self.iterations() and "imported" in self.record(0):
            raise UserError(f"{self.uri}: members imported from VideoPose3D (checkpoints/iter0.json `imported`); "
                            "expected a run trained by raypose (fine-tuning imported members is not supported)")
        if self.config.hash() != cfg.hash() and not self.iterations():
            self.delete(CAMERAS)   # nothing was trained with the old config: the new one replaces it
            return True
        if self.config.hash() != cfg.hash():
            diff = C.differences(self.config, cfg)
            raise UserError(f"{self.path('config.toml')}: this run directory holds a different config "
                            f"(hash {self.config.hash()} vs {cfg.hash()}"
                            + (f"; {', '.join(diff[:3])}" if diff else "") + "); expected the same config to "
                            "resume, or choose another --out")
        return False

    def _check_no_strangers(self):
        """A new run goes into a new or empty directory, never among a user's own files."""
        if self.local and os.path.isdir(self.root):
            strangers = sorted(n for n in os.listdir(self.root) if not n.startswith(LEASE))
            if strangers:
                raise UserError(f"--out {self.root}: holds {', '.join(strangers[:3])}"
                                f"{', ...' if len(strangers) > 3 else ''} but no run; expected a new or empty "
                                "directory, or a run directory to resume")

    def describe(self, cfg, layout):
        """A new run's config and layout, written before any member file."""
        self.write_bytes("config.toml", C.to_toml(cfg).encode())
        self.write_json("layout.json", layout.to_dict())
        self._config = cfg

    @property
    def layout(self):
        if self.exists("layout.json"):
            return Layout.from_dict(self.read_json("layout.json"), source=self.path("layout.json"))
        data = self.config.data   # a run from before layout.json (HumanEva's): its data's layout
        named = [key for key in ("dataset", "skeleton", "cameras") if getattr(data, key)]
        if named:   # runs of other datasets keep theirs in layout.json: their files are never read again
            raise UserError(f"{self.path('layout.json')}: not found in a run of data.{named[0]} "
                            f"{getattr(data, named[0])!r}; expected the layout.json that raypose train writes")
        from raypose.data.source import open_source, source_layout
        return source_layout(open_source(data))

    def focals(self):
        """{camera: focal length} the run fitted on its training windows; None where it has none
        (2D not in the 3D skeleton's joint order, or a run from before the file existed)."""
        return check_focals(self.read_json(CAMERAS), self.path(CAMERAS)) if self.exists(CAMERAS) else None

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
        """Iteration i's record, read once: a committed record never changes (member loads check
        their checksums against it, K times per ensemble)."""
        if i not in self._records:
            r = self.read_json(f"checkpoints/iter{i}.json")
            if not isinstance(r, dict) or "files" not in r:
                raise UserError(f"{self.path(f'checkpoints/iter{i}.json')}: not an iteration record")
            self._records[i] = r
        return self._records[i]

    def save_member(self, k, i, weights, resume):
        """{file name: SHA-256} of member k's weights (kept) and resume state (latest only)."""
        n = self.config.train.members
        return {member_name(n, k, i): self.write_bytes(f"checkpoints/{member_name(n, k, i)}", torch_bytes(weights)),
                member_name(n, k, i, "resume"): self.write_bytes(f"checkpoints/{member_name(n, k, i, 'resume')}",
                                                                  torch_bytes(resume))}

    def load_member(self, k, i, kind="ckpt", map_location="cpu"):
        import torch
        data = self._checked(f"checkpoints/{member_name(self.config.train.members, k, i, kind)}", i)
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)   # never runs code

    def verify(self, i):
        """Every file of iteration i's record is there and whole (checksums), or one line."""
        for name in self.record(i)["files"]:
            if self.exists("checkpoints", name):   # older iterations' resume files are pruned
                self._checked(f"checkpoints/{name}", i)
            elif name.endswith(".ckpt") or i == self.latest():
                raise UserError(f"{self.path('checkpoints', name)}: not found; iteration {i}'s record "
                                "lists it, expected the run directory as raypose left it")

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
        m = self.read_json("metrics.json") if self.exists("metrics.json") else {}
        if not isinstance(m, dict):
            raise UserError(f"{self.path('metrics.json')}: a JSON {type(m).__name__}; expected the object raypose "
                            "wrote")
        return m

    def update_metrics(self, parts):
        """metrics.json with `parts` merged in: training and evaluation never clobber each other."""
        self.write_json("metrics.json", {**self.metrics(), **parts})


def _gone(owner):
    """Whether a lease's driver has stopped: its pid is dead on this host, or it has not
    renewed the lease for LEASE_STALE_S seconds from another host."""
    try:
        if owner.get("host") != socket.gethostname():
            return time.time() - float(owner.get("renewed", 0)) > LEASE_STALE_S
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:   # alive, another user's
        return False
    except (KeyError, TypeError, ValueError, AttributeError):
        return True           # not a lease raypose wrote
    return False

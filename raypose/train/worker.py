"""One worker's share of the ensemble, in plain PyTorch: no Ray here.

An `EnsembleWorker` owns the members k with k % world == rank, the training and evaluation
windows, the sampling and the epochs. Each iteration it trains its members, saves them and
predicts the evaluation windows (`train_iteration` -> a `WorkerReport`); the reports of every
worker are then gathered (by Ray Train's all-gather, or trivially in local mode) and
`finish_iteration` makes the pseudo-labels and, on rank 0, commits the iteration record.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from raypose.ensemble import uncertainty as U
from raypose.model import device as D
from raypose.model.geometry import focal_table, subject_bones, window_focals
from raypose.run import CAMERAS
from raypose.train.member import Member, TrainSet, draw_sample, train_members
from raypose.train.record import iteration_record
from raypose.train.semi import due, select


@dataclass
class WorkerReport:
    """What one worker did in one iteration; every field is per member index."""
    rank: int
    started: float
    over_budget: bool
    losses: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)      # file name -> SHA-256
    preds: dict = field(default_factory=dict)      # evaluation windows (N, J, 3)
    calib_preds: dict = field(default_factory=dict)  # [(V, N, J, 3)] per calibration variant
    train_preds: dict = field(default_factory=dict)  # training windows, when pseudo-labels are due
    timing: dict = field(default_factory=dict)
    nodes: dict = field(default_factory=dict)
    devices: dict = field(default_factory=dict)    # {"device": "cuda:0 NVIDIA H200", "peak_mem_mib": 812.0}


class EnsembleWorker:
    def __init__(self, cfg, layout, run, windows, rank=0, world=1, device="cpu", node="local", deadline=0.0,
                 lease=None):
        """`windows`: the run's WindowSet (`windowset.build`), shared read-only by every worker of a node."""
        self.cfg, self.layout, self.run, self.rank, self.node = cfg, layout, run, rank, node
        self.lease = lease   # the driver's lease token: a record is committed only while it holds
        self.deadline, self.semi = deadline, cfg.semi.mode != "off"
        D.set_precision(device, cfg.train.precision)   # TF32 or not: a setting of the whole process
        self.train_w, self.eval_w, self.calib = windows.train, windows.eval, windows.calib
        self.data = TrainSet(self.train_w, cfg.train.flip, layout, device)
        self.members = [Member(k, cfg, layout, device) for k in range(cfg.train.members) if k % world == rank]
        self.pack = cfg.run.pack and cfg.run.members_per_worker > 1 and len(self.members) > 1
        self._geometry()

    def _geometry(self):
        """Focal lengths and subjects' bones from the labelled windows, fixed for the whole run.
        Focal lengths go into the run (cameras.json) for evaluate and predict's 2D fit."""
        w, semi, same = self.train_w, self.cfg.semi, self.layout.same_joints
        self.focal = self.bones = None
        fit_2d = self.semi and semi.fit_2d and same
        table = self.run.focals()   # a resumed run's own
        fit_table = table is None and same and w.labelled.any() and (self.rank == 0 or fit_2d)
        # every target's own 2D frame, a copy of the 2D's size: kept only where pseudo-labels need it
        centre = w.centre() if same and (self.semi or fit_table) else None
        self.centre = centre if self.semi else None
        cams = w.key_per_target(2)
        if fit_table:
            table = focal_table(w.targets, centre, w.labelled, cams, seed=self.cfg.train.seed)
            if self.rank == 0:
                self.run.write_json(CAMERAS, {"focal": table, "fitted_on": "labelled training windows",
                                              "units": "normalised: pixels x 2 / image width"})
        if fit_2d and table is not None:
            self.focal = window_focals(table, cams)
        if self.semi and semi.fit_bones:
            self.bones = subject_bones(w.targets, w.labelled, w.key_per_target(0), self.layout.skeleton.parents)

    def resume(self):
        """Members (and pseudo-labels) from the latest complete iteration; that iteration.
        Checkpoints load on the CPU, whatever device wrote them: the members copy them over."""
        start = self.run.latest()
        if start:
            for m in self.members:
                m.load_state_dict(self.run.load_member(m.index, start, map_location="cpu"),
                                  self.run.load_member(m.index, start, "resume", map_location="cpu"))
            if self.run.exists(f"checkpoints/pseudo_iter{start}.npz"):
                p = self.run.load_npz(f"checkpoints/pseudo_iter{start}.npz", start)
                self.data.set_pseudo(p["index"], p["pose"], p["weight"])
        return start

    def _inject_fault(self, i):
        fault = self.cfg.fault()
        for m in self.members:
            if fault == (m.index, i) and not self.run.exists(f"debug/fault-{m.index}-{i}"):
                self.run.write_bytes(f"debug/fault-{m.index}-{i}", b"injected\n")
                raise RuntimeError(f"injected crash of member {m.index} at iteration {i}")

    def train_iteration(self, i):
        """Train, save and evaluate this worker's members for iteration i."""
        t, n = self.cfg.train, self.cfg.train.members
        report = WorkerReport(self.rank, time.time(), False)
        D.reset_peak_memory(self.data.device)   # each iteration's own peak
        pool = self.data.pool()
        samples = [pool[draw_sample(len(pool), m.index, n, i, t.sampling, t.subset_size, t.seed)]
                   for m in self.members]
        self._inject_fault(i)
        if self.pack:   # one stacked model; the time is shared out evenly
            t0 = time.time()
            losses = train_members(self.members, self.data, samples, i, t.epochs, pack=True)
            train_s = (time.time() - t0) / len(self.members)
            for m, s, loss in zip(self.members, samples, losses):
                self._save_and_predict(i, m, s, loss, train_s, report)
        else:   # each member saved straight after its training: its RNG state is its own
            for m, s in zip(self.members, samples):
                t0 = time.time()
                loss = train_members([m], self.data, [s], i, t.epochs)[0]
                self._save_and_predict(i, m, s, loss, time.time() - t0, report)
        report.over_budget = self.deadline > 0 and time.time() > self.deadline
        return report

    def _save_and_predict(self, i, m, sample, loss, train_s, report):
        t = self.cfg.train
        t1 = time.time()
        report.files.update(self.run.save_member(m.index, i, *m.state_dict()))
        t2 = time.time()
        report.preds[m.index] = m.predict(self.eval_w, t.flip)
        report.calib_preds[m.index] = [m.predict(w, t.flip, views=True) for _, w in self.calib]
        if due(self.cfg.semi, i):
            report.train_preds[m.index] = m.predict(self.train_w, t.flip)
        report.losses[m.index], report.nodes[m.index] = loss, self.node
        report.devices[m.index] = {"device": D.describe(m.device), "peak_mem_mib": D.peak_memory_mib(m.device)}
        report.timing[m.index] = {"train_s": train_s, "save_s": t2 - t1, "eval_s": time.time() - t2,
                                  "samples": len(sample) * (2 if t.flip else 1) * t.epochs, "worker": self.rank}

    def _pseudo_labels(self, i, reports):
        """(arrays to save, info) after iteration i; every rank computes the same labels."""
        if due(self.cfg.semi, i):
            preds = {k: p for r in reports for k, p in r.train_preds.items()}
            idx, pose, weight, info = select(self.cfg.semi, i, np.stack([preds[k] for k in sorted(preds)]),
                                             self.data.labelled, self.cfg.train.seed, self.centre,
                                             self.bones, self.focal, self.layout.skeleton.parents)
            self.data.set_pseudo(idx, pose, weight)
        elif self.semi and self.data.pseudo.any():   # kept from an earlier iteration, saved again
            idx, pose, weight = self.data.pseudo_labels()
            info = {"mode": self.cfg.semi.mode, "pseudo": len(idx), "kept": True}
        else:
            return None, None
        return {"index": idx, "pose": pose, "weight": weight}, info

    def finish_iteration(self, i, reports):
        """Pseudo-labels on every rank; on rank 0 the record (the commit point) and pruning.
        Returns (record or None, whether the run stops here)."""
        t_gathered = time.time()
        pseudo, semi_info = self._pseudo_labels(i, reports)
        stop = any(r.over_budget for r in reports) or i == self.cfg.train.iterations
        if self.rank != 0:
            return None, stop
        files = {}
        if pseudo is not None:
            files[f"pseudo_iter{i}.npz"] = self.run.save_npz(f"checkpoints/pseudo_iter{i}.npz", **pseudo)
        record = iteration_record(self.cfg, i, reports, self.eval_w.targets, self.data.labelled, files,
                                  semi_info, t_gathered)
        if self.calib:
            record["calibration"] = self._calibration(reports)
        self.run.check_lease(self.lease)
        self.run.write_json(f"checkpoints/iter{i}.json", record)   # the commit point
        self.run.prune(i, self.cfg.run.keep_last)
        return record, stop

    def _calibration(self, reports):
        """This iteration's radii model, fitted on the members' predictions of the held-out frames."""
        preds = {k: p for r in reports for k, p in r.calib_preds.items()}
        order = sorted(preds)
        per_variant = [np.stack([preds[k][v] for k in order]) for v in range(len(self.calib))]
        clean = self.calib[0][1]
        u = self.cfg.uncertainty
        what = "whole chunks" if u.holdout_by == "chunk" else "the last frames of every sequence"
        info = {"fitted_on": f"{u.holdout:g} of the training frames held out ({what}: {len(clean)} windows of "
                             f"{len(clean.keys)} sequences), clean and corrupted",
                "tta": self.cfg.train.flip}
        return U.fit_from_predictions(per_variant, self.calib, info=info).to_dict()

    def run_iterations(self, gather=lambda r: [r], after=lambda i, record, stop: None):
        """Every remaining iteration: train, gather the reports, finish, then `after`."""
        for i in range(self.resume() + 1, self.cfg.train.iterations + 1):
            record, stop = self.finish_iteration(i, gather(self.train_iteration(i)))
            after(i, record, stop)
            if stop:
                break

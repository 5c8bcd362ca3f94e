"""What the driver shows while a run trains: one line per committed iteration, and TensorBoard."""
import os
import signal
import time
from collections import Counter


def devices(record):
    """' on cpu, peak 812 MiB': where the members trained and their highest peak memory; '' for
    records from before the key existed. Several GPUs of one model show as '4 x NVIDIA H200'."""
    found = [d for d in record.get("member_devices") or [] if d]
    if not found:
        return ""
    names = list(dict.fromkeys(d["device"] for d in found))
    if len(names) > 1:   # 'cuda:3 NVIDIA H200' -> 'NVIDIA H200', counted
        kinds = Counter(n.split(" ", 1)[-1] if n.startswith("cuda:") else n for n in names)
        names = [f"{c} x {kind}" if c > 1 else kind for kind, c in kinds.items()]
    return f" on {', '.join(names)}, peak {max(d['peak_mem_mib'] for d in found):.0f} MiB"


class Progress:
    """Watches the run directory; works the same whether members run on Ray or in this process."""

    def __init__(self, run, cfg, first, echo=print, on_record=None):
        self.run, self.cfg, self.seen, self.echo = run, cfg, first, echo
        self.on_record = on_record
        self.first, self.t0 = first, time.time()
        self.writer = None
        if run.local:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(os.path.join(run.root, "tensorboard"))
            except ImportError:  # tensorboard is optional at run time
                pass

    def _where(self, i, elapsed):
        """`iter 3/10 ... ETA` or, under a time budget, `iter 3 ... 200 s of the 545 s budget left`."""
        budget = self.cfg.run.time_budget
        if budget:
            left = max(0.0, budget - elapsed)
            return f"iter {i}", f"elapsed {elapsed:.0f}s, {left:.0f}s of the {budget:g}s budget left"
        left = self.cfg.train.iterations - i
        eta = elapsed / max(i - self.first, 1) * left
        return f"iter {i}/{self.cfg.train.iterations}", f"elapsed {elapsed:.0f}s  ETA {eta:.0f}s"

    def poll(self):
        self.run.renew()   # the lease stays ours while this driver watches
        for i in self.run.iterations():
            if i <= self.seen:
                continue
            r = self.run.record(i)
            self.seen = i
            head, tail = self._where(i, time.time() - self.t0)
            e = r["ensemble"]
            self.echo(f"{head}  loss " + " ".join(f"{1000 * x:.1f}" for x in r["train_loss"])
                      + f" mm  ensemble over {r.get('eval_frames', 0):,} eval frames MPJPE {e['mpjpe_mm']:.1f} mm"
                      + f"  P-MPJPE {e['p_mpjpe_mm']:.1f} mm"
                      + f"  (best member {min(r['member_p_mpjpe_mm']):.1f}){devices(r)}  {tail}")
            self._tensorboard(i, r)
            if self.on_record:
                self.on_record(i, r)
            if i == self.cfg.debug.kill_driver_at:   # tests: a driver killed at a known point
                os.kill(os.getpid(), signal.SIGKILL)

    def close(self):
        if self.writer:
            self.writer.close()

    def _tensorboard(self, i, r):
        if not self.writer:
            return
        w = self.writer
        for k, loss in enumerate(r["train_loss"]):
            w.add_scalar(f"train_loss_mm/member{k}", 1000 * loss, i)
            w.add_scalar(f"p_mpjpe_mm/member{k}", r["member_p_mpjpe_mm"][k], i)
        w.add_scalar("mpjpe_mm/ensemble", r["ensemble"]["mpjpe_mm"], i)
        w.add_scalar("p_mpjpe_mm/ensemble", r["ensemble"]["p_mpjpe_mm"], i)
        w.flush()

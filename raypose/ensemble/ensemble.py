"""An ensemble of a run: its members at one iteration, loaded from their self-describing
checkpoints, predicting windows and aggregating by the run's default."""
import numpy as np
import torch

from raypose.ensemble.aggregate import aggregate, check, spread
from raypose.ensemble.uncertainty import Calibration, view_spread
from raypose.errors import UserError
from raypose.model.device import check_device, set_precision
from raypose.model.inference import predict_sequence, predict_windows
from raypose.model.temporal import TemporalModel


def model_args(model_cfg, layout):
    """What builds a member's network; saved in every checkpoint (nanoGPT's `model_args`)."""
    return {"num_joints_in": layout.joints_2d, "num_joints_out": layout.joints_3d,
            "widths": list(model_cfg.widths), "channels": model_cfg.channels, "dropout": model_cfg.dropout}


class Ensemble:
    def __init__(self, models, layout, iteration=None, config_hash=None, device="cpu", precision="fp32",
                 calibration=None):
        self.models, self.layout, self.iteration = models, layout, iteration
        self.config_hash, self.device, self.precision = config_hash, device, precision
        self.calibration = calibration   # uncertainty.Calibration fitted at this iteration, or None

    def __len__(self):
        return len(self.models)

    @classmethod
    def load(cls, run, iteration=None, device="cpu"):
        """The run's N members at `iteration` (default: the latest), eval mode, checksums verified,
        on `device` (`--device`: checked first). Only the weights are read, on the CPU, whatever
        device wrote them; the model then moves to `device`."""
        device = check_device("--device", device)
        iteration = run.iteration(iteration)
        cfg, layout = run.config, run.layout
        set_precision(device, cfg.train.precision)   # the arithmetic the run's own records used
        models = []
        for k in range(cfg.train.members):
            state = run.load_member(k, iteration, map_location="cpu")
            model = TemporalModel(**state.get("model_args") or model_args(cfg.model, layout))
            try:
                model.load_state_dict(state["model"])
            except (KeyError, RuntimeError) as e:
                raise UserError(f"{run.path('checkpoints')}: member {k} at iteration {iteration} does not "
                                f"fit the run's config ({type(e).__name__}); expected its own checkpoints") from None
            models.append(model.to(device).eval())
        cal = run.record(iteration).get("calibration")
        return cls(models, layout, iteration, cfg.hash(), device, cfg.train.precision,
                   Calibration.from_dict(cal) if cal else None)

    @torch.no_grad()
    def predict(self, windows, tta=True):
        """(K, N, J, 3): every member's root-relative pose for every target of `windows`, the mean
        of its views (`predict_views`), one sequence at a time (never every view of every frame)."""
        out = np.empty((len(self), len(windows), self.layout.joints_3d, 3), np.float32)
        for s, lo, hi in _sequences(windows):
            out[:, lo:hi] = self._views(windows, s, tta).mean(1)
        return out

    @torch.no_grad()
    def predict_views(self, windows, tta=True):
        """(K, V, N, J, 3): every member's pose for the input (and, with `tta`, the mirrored input)."""
        return np.stack([predict_windows(m, windows, self.layout, tta, self.device, self.precision, views=True)
                         for m in self.models])

    def _views(self, windows, s, tta):
        """(K, V, T, J, 3) `predict_views` of sequence s alone."""
        return np.stack([predict_sequence(m, windows, s, self.layout, tta, self.device, self.precision, views=True)
                         for m in self.models])

    def aggregate(self, preds, method=None):
        return aggregate(preds, check(method))

    def pose(self, windows, tta=True, method=None):
        """(members' predictions, aggregate pose, per-joint spread around it)."""
        preds, ens, unc, _ = self.estimate(windows, tta, method)
        return preds, ens, unc

    def estimate(self, windows, tta=True, method=None):
        """`pose` and the spread of every member's every view (input and mirrored input) around the
        aggregate, which feeds the calibrated radii (`uncertainty.view_spread`).

        One sequence at a time: every step is per frame, so the numbers are those of all frames at
        once without every member's every view of every frame in memory. Not for the geometric
        median, whose iterations stop when every frame given has converged: all frames at once."""
        if check(method) == "geomedian":
            views = self.predict_views(windows, tta)
            preds = views.mean(1)
            ens = self.aggregate(preds, method)
            return preds, ens, spread(preds, ens), view_spread(views, ens)
        n, j = len(windows), self.layout.joints_3d
        preds = np.empty((len(self), n, j, 3), np.float32)
        ens, unc, vspread = np.empty((n, j, 3), np.float32), np.empty((n, j), np.float32), np.empty((n, j), np.float32)
        for s, lo, hi in _sequences(windows):
            views = self._views(windows, s, tta)
            preds[:, lo:hi] = views.mean(1)
            ens[lo:hi] = self.aggregate(preds[:, lo:hi], method)
            unc[lo:hi] = spread(preds[:, lo:hi], ens[lo:hi])
            vspread[lo:hi] = view_spread(views, ens[lo:hi])
        return preds, ens, unc, vspread


def _sequences(windows):
    """(sequence index, first target, end) per sequence of `windows`."""
    return zip(range(len(windows.keys)), windows.offsets[:-1], windows.offsets[1:])

"""Training and inference ready for CUDA workers without a GPU here (issue 13): the epoch loop
runs on `meta`, where any wait for the device (.item(), .cpu(), float(t)) raises; checkpoints
from another device resume; device choice, precision and `--device` fail as one line."""
import contextlib
import copy
import io
import json
import types

import numpy as np
import pytest
import torch
from runs import tiny_config

from raypose import config as C
from raypose.cli import main
from raypose.data.npz import PoseData, save_2d
from raypose.data.synthetic import generate
from raypose.data.table import data_sequences
from raypose.data.windows import make_windows
from raypose.datasets.layout import Layout
from raypose.datasets.skeleton import LEFT, RIGHT
from raypose.ensemble.ensemble import Ensemble
from raypose.errors import UserError
from raypose.model import device as D
from raypose.model.inference import predict_windows
from raypose.run import Run
from raypose.train.driver import train
from raypose.train.member import Member, TrainSet, batch_bounds, draw_sample, train_on_device
from raypose.train.progress import devices
from raypose.train.worker import EnsembleWorker

LAYOUT = Layout.of(15, (LEFT, RIGHT))


@pytest.fixture(scope="module")
def windows():
    return make_windows(data_sequences(PoseData(*generate(frames=600, seed=0))))


def small_cfg(**kw):
    return C.with_values(C.Config(), {"model.channels": 16, "model.dropout": 0.1, "train.batch_size": 40,
                                      "train.iterations": 2, "train.epochs": 2, **kw})


def _watch(monkeypatch, data):
    """Count the host-to-device copies of the loop and record the shape of every batch index."""
    copies, shapes = [], []
    real_copy, real_batch = D.to_device, data.batch

    def to_device(array, device):
        copies.append(array.shape)
        return real_copy(array, device)

    def batch(idx):
        assert isinstance(idx, torch.Tensor) and idx.device == data.device, type(idx)
        shapes.append(tuple(idx.shape))
        return real_batch(idx)
    monkeypatch.setattr(D, "to_device", to_device)
    monkeypatch.setattr(data, "batch", batch)
    return copies, shapes


@pytest.mark.parametrize("pack", [False, True])
def test_epochs_run_on_meta_without_waiting_for_the_device(windows, monkeypatch, pack):
    """On meta every host sync raises, so a loop that finishes has none; one copy per epoch and
    member group, and the packed step gathers all members' batches with one (M, B) index."""
    cfg = small_cfg()
    data = TrainSet(windows, True, LAYOUT, "meta")
    members = [Member(k, cfg, LAYOUT, "meta") for k in range(2)]
    samples = [draw_sample(data.n, k, 2, 1, "bootstrap", 150, 0) for k in range(2)]
    copies, shapes = _watch(monkeypatch, data)
    losses = train_on_device(members, data, samples, 1, 2, pack=pack)
    assert losses.device.type == "meta" and losses.shape == (2,) and losses.dtype == torch.float64
    with pytest.raises(NotImplementedError):   # what any sync inside the loop would have met
        losses.tolist()
    length = 2 * 150   # flip twins
    per_epoch = len(batch_bounds(length, cfg.train.batch_size))
    assert [m.epoch for m in members] == [2, 2]
    if pack:
        assert copies == [(2, length)] * 2 and len(shapes) == 2 * per_epoch
        assert all(len(s) == 2 and s[0] == 2 for s in shapes) and sum(s[1] for s in shapes) == 2 * length
        assert next(members[0].model.parameters()).device.type == "meta"   # unpacked back
    else:
        assert copies == [(1, length)] * 4 and len(shapes) == 4 * per_epoch
        assert all(len(s) == 1 for s in shapes) and sum(s[0] for s in shapes) == 4 * length


def test_batches_are_array_split_parts_and_a_lone_window_waits(windows):
    for n, b in [(0, 4), (1, 4), (7, 3), (602, 50), (1000, 128), (128, 128)]:
        parts = np.array_split(np.arange(n), max(1, -(-n // b)))
        assert [(int(p[0]), int(p[-1]) + 1) for p in parts if len(p)] == [x for x in batch_bounds(n, b) if x[1] > x[0]]
    cfg = small_cfg()
    data = TrainSet(windows, False, LAYOUT, "meta")
    m, steps = Member(0, cfg, LAYOUT, "meta"), []
    m.step = lambda *a: steps.append(a)
    loss = train_on_device([m], data, [np.array([5])], 1, 1)   # one window: no step, the epoch counts
    assert steps == [] and m.epoch == 1 and loss.shape == (1,)


def test_adam_is_fused_where_torch_fuses_it():
    cpu, meta = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).to("meta")
    assert D.adam(cpu.parameters(), 1e-3, "cpu").defaults["fused"] is True
    opt = D.adam(meta.parameters(), 1e-3, torch.device("meta"))
    assert not opt.defaults["fused"] and opt.defaults["foreach"] and opt.defaults["amsgrad"]


def _as_if_saved_on_cuda(obj):
    """torch.save bytes whose every tensor is tagged cuda:0, as a GPU worker's checkpoint is."""
    entry = (0, lambda storage: "cuda:0", lambda storage, location: None)
    torch.serialization._package_registry.insert(0, entry)
    try:
        buf = io.BytesIO()
        torch.save(obj, buf)
    finally:
        torch.serialization._package_registry.remove(entry)
    return buf.getvalue()


@pytest.fixture(scope="module")
def trained(windows):
    """(cfg, data, a member trained one iteration, its (weights, resume) as a GPU would save them)."""
    cfg = small_cfg()
    data = TrainSet(windows, True, LAYOUT)
    m = Member(0, cfg, LAYOUT)
    m.train_iteration(data, draw_sample(data.n, 0, 1, 1, "bootstrap", 200, 0), 1, 2)
    return cfg, data, m, [_as_if_saved_on_cuda(s) for s in m.state_dict()]


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_resume_loads_a_gpu_checkpoint_for_any_device(trained):
    """worker.resume loads on the CPU: a cuda-tagged checkpoint resumes a member on another device
    (meta here), its optimiser state moved there and torch's CPU RNG state restored."""
    cfg, _, src, blobs = trained
    if not torch.cuda.is_available():   # the bytes really say cuda
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(io.BytesIO(blobs[0]), weights_only=True)
    kinds = {"ckpt": blobs[0], "resume": blobs[1]}
    run = types.SimpleNamespace(latest=lambda: 1, exists=lambda rel: False,
                                load_member=lambda k, i, kind="ckpt", map_location=None: torch.load(
                                    io.BytesIO(kinds[kind]), map_location=map_location, weights_only=True))
    dst = Member(0, cfg, LAYOUT, "meta")
    torch.manual_seed(123)
    assert EnsembleWorker.resume(types.SimpleNamespace(run=run, members=[dst], data=None)) == 1
    assert torch.equal(torch.get_rng_state(), src.state_dict()[1]["torch_rng"]) and dst.epoch == src.epoch == 2
    state = next(iter(dst.optimizer.state.values()))
    assert state["exp_avg"].device.type == "meta" and state["max_exp_avg_sq"].device.type == "meta"


def test_gpu_checkpoint_continues_on_cpu_exactly(trained):
    """Weights and Adam state from a cuda-tagged checkpoint, in a CPU member: it trains on exactly
    as the member that wrote them."""
    cfg, data, src, blobs = trained
    dst = Member(0, cfg, LAYOUT)
    dst.load_state_dict(*(torch.load(io.BytesIO(b), map_location="cpu", weights_only=True) for b in blobs))
    ref = copy.deepcopy(src)
    sample = draw_sample(data.n, 0, 1, 2, "bootstrap", 200, 0)
    assert dst.train_iteration(data, sample, 2, 1) == ref.train_iteration(data, sample, 2, 1)
    for a, b in zip(ref.model.state_dict().values(), dst.model.state_dict().values()):
        assert torch.equal(a, b)


class _OnAnotherDevice:
    """A stand-in for a CUDA ByteTensor: torch.set_rng_state refuses it; .cpu() gives the bytes."""

    def __init__(self, t):
        self.t = t

    def cpu(self):
        return self.t.clone()


def test_rng_state_loaded_on_another_device_is_moved_to_the_cpu(trained):
    cfg, _, src, _ = trained
    weights, resume = copy.deepcopy(src.state_dict())
    with pytest.raises(TypeError):
        torch.set_rng_state(_OnAnotherDevice(resume["torch_rng"]))
    resume["torch_rng"] = _OnAnotherDevice(resume["torch_rng"])
    torch.manual_seed(7)
    Member(0, cfg, LAYOUT).load_state_dict(weights, resume)
    assert torch.equal(torch.get_rng_state(), resume["torch_rng"].t)


def test_worker_device_cases(monkeypatch):
    assert D.worker_device([], "cuda:0", False, "n1") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert D.worker_device([0], torch.device("cuda:0"), False, "n1") == torch.device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert D.worker_device([1], "cuda:0", True, "n1") == torch.device("cpu")
    monkeypatch.setattr(torch.version, "cuda", None)
    with pytest.raises(UserError) as e:
        D.worker_device([0], "cuda:0", False, "10.0.0.5")
    msg = str(e.value)
    assert msg.startswith("node 10.0.0.5: Ray gave this worker GPU(s) [0] but torch ") and "CPU-only build" in msg
    monkeypatch.setattr(torch.version, "cuda", "12.8")

    def no_driver():
        raise RuntimeError("Found no NVIDIA driver on your system.\n  Please check that you have a GPU")
    monkeypatch.setattr(torch.cuda, "init", no_driver)
    with pytest.raises(UserError) as e:
        D.worker_device([0, 1], "cuda:0", False, "n2")
    msg = str(e.value)
    assert "\n" not in msg and "[0, 1]" in msg and "Found no NVIDIA driver on your system. Please check" in msg


def test_precision_is_cuda_only(windows):
    assert isinstance(D.autocast("cpu", "bf16"), contextlib.nullcontext)
    assert isinstance(D.autocast("cuda", "fp32"), contextlib.nullcontext)
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        cast = D.autocast(torch.device("cuda:0"), "bf16")
    assert isinstance(cast, torch.autocast) and cast.fast_dtype == torch.bfloat16
    model = Member(0, small_cfg(), LAYOUT).model
    np.testing.assert_array_equal(predict_windows(model, windows, LAYOUT, device="cpu", precision="bf16"),
                                  predict_windows(model, windows, LAYOUT))
    with pytest.raises(ValueError):
        D.set_precision("cpu", "fp16")


def test_set_precision_sets_tf32_for_cuda_only():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        D.set_precision("cpu", "tf32")
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == saved
        D.set_precision("cuda", "tf32")
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert torch.get_float32_matmul_precision() == "high"   # still readable the legacy way
        for p in ("fp32", "bf16"):
            D.set_precision(torch.device("cuda:0"), p)
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_describe_and_peak_memory(monkeypatch):
    assert D.describe("cpu") == "cpu" and D.describe(torch.device("meta")) == "meta"
    assert 10 < D.peak_memory_mib("cpu") < 1e6   # this process's peak RSS, in MiB
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"NVIDIA H200 #{i}")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert D.describe("cuda:1") == "cuda:1 NVIDIA H200 #1" and D.describe("cuda") == "cuda:3 NVIDIA H200 #3"


def test_progress_shows_devices_and_reads_older_records():
    assert devices({"train_loss": [0.1]}) == "" and devices({"member_devices": [None]}) == ""
    cpu = {"device": "cpu", "peak_mem_mib": 811.6}
    assert devices({"member_devices": [cpu, {**cpu, "peak_mem_mib": 20}]}) == " on cpu, peak 812 MiB"
    gpus = [{"device": f"cuda:{k} NVIDIA H200", "peak_mem_mib": 100.0 * k} for k in range(4)]
    assert devices({"member_devices": gpus + [cpu]}) == " on 4 x NVIDIA H200, cpu, peak 812 MiB"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 2-member local run, one iteration, and its progress lines."""
    out, lines = tmp_path_factory.mktemp("device") / "run", []
    train(tiny_config(out, **{"run.local": True, "train.iterations": 1}), echo=lines.append)
    return out, lines


def test_record_and_progress_name_the_device(run_dir):
    out, lines = run_dir
    rec = json.loads((out / "checkpoints" / "iter1.json").read_text())
    assert [d["device"] for d in rec["member_devices"]] == ["cpu", "cpu"]
    assert all(d["peak_mem_mib"] > 10 for d in rec["member_devices"])
    assert [line for line in lines if line.startswith("iter 1/1 ") and " on cpu, peak " in line]


def _track(path):
    """A 2D track of plausible pixels (joints inside a 640 x 480 image)."""
    xy = np.random.default_rng(0).uniform(0, 1, (30, 15, 2)) * [640, 480]
    save_2d(path, {"S1": {"Walk 1": [xy.astype(np.float32)]}}, {})


def _cli(*argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("device, needle", [("cuda", "torch has no CUDA on this machine; expected cpu"),
                                            ("gpu0", "not a device torch knows"),
                                            ("meta", "not a device raypose runs on")])
def test_device_flag_refuses_what_this_machine_cannot_run(run_dir, tmp_path, command, device, needle):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    extra = (["--input", str(tmp_path / "in.npz"), "--out", str(tmp_path / "out.npz")]
             if command == "predict" else [])
    if command == "predict":
        _track(tmp_path / "in.npz")
    code, err = _cli(command, "--run", str(run_dir[0]), "--device", device, *extra)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: --device {device}: ") and needle in err, err
    assert not (tmp_path / "out.npz").exists()


def test_predict_and_ensemble_on_the_cpu_device(run_dir, tmp_path):
    _track(tmp_path / "in.npz")
    code, err = _cli("predict", "--run", str(run_dir[0]), "--input", str(tmp_path / "in.npz"),
                     "--out", str(tmp_path / "out.npz"), "--device", "cpu")
    assert code == 0 and (tmp_path / "out.npz").exists(), err
    ens = Ensemble.load(Run.open(str(run_dir[0])), device="cpu")
    assert ens.device == torch.device("cpu") and all(not m.training for m in ens.models)

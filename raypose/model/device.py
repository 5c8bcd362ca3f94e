"""Where a member computes and in what arithmetic: device choice, precision, memory, transfers.

Kept free of training logic so that the training step, prediction, the worker and the
benchmarks agree on one meaning of `train.precision` and of a worker's device.
"""
import contextlib
import resource
import sys

import torch

from raypose.config import PRECISIONS
from raypose.errors import UserError


def _device(device):
    return device if isinstance(device, torch.device) else torch.device(device)


def autocast(device, precision):
    """bf16 autocast around a forward pass (and its loss) on CUDA; elsewhere plain fp32.

    CPU runs stay fp32 whatever `precision` says: CPU bf16 is slower than fp32 on most x86
    machines, and CPU numerics (resume, packed == unpacked) must not depend on the setting.
    """
    if _device(device).type == "cuda" and precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_precision(device, precision):
    """This process's fp32 matmuls and convolutions on CUDA: TF32 for `tf32`, IEEE fp32 otherwise
    (cuDNN's own default is TF32 convolutions, which would make `fp32` mean less than it says).

    The legacy `allow_tf32` flags rather than torch 2.9+'s `fp32_precision`: after a set through
    the new API, torch 2.13 raises on every read of the legacy ones (`allow_tf32`,
    `get_float32_matmul_precision`) that libraries still make; the legacy set keeps both readable.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if _device(device).type != "cuda":
        return
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = precision == "tf32"


def adam(params, lr, device, amsgrad=True):
    """Adam for parameters on `device`: fused on CPU and CUDA, where one kernel passes over all
    the weights (scripts/bench_train.py, "foreach Adam"); foreach elsewhere, because fused Adam
    refuses other devices, e.g. `meta`, on which the tests run the epoch loop to find host syncs.
    Both do the same arithmetic."""
    fused = _device(device).type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=lr, amsgrad=amsgrad, fused=fused, foreach=None if fused else True)


def to_device(array, device):
    """A host numpy array as a tensor on `device`: on CUDA through pinned memory, asynchronously,
    so the copy queues behind the running kernels instead of waiting for them."""
    t = torch.from_numpy(array)
    device = _device(device)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def describe(device):
    """'cuda:0 NVIDIA H200', or 'cpu': what the iteration record and progress line show."""
    device = _device(device)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} {torch.cuda.get_device_name(index)}"


def reset_peak_memory(device):
    """Start a new peak for `peak_memory_mib` (CUDA only: a process's peak RSS cannot be reset)."""
    if _device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(_device(device))


def peak_memory_mib(device):
    """Peak memory in MiB: the CUDA allocator's since the last reset; on CPU the process's peak
    resident set since it started (Linux reports KiB, macOS bytes)."""
    if _device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(_device(device)) / 2 ** 20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 2 ** 10


def worker_device(gpu_ids, cuda_device, gpu_as_cpu, node):
    """The torch device of a worker Ray gave GPUs `gpu_ids` (empty: none, so CPU).

    A worker with GPUs trains on `cuda_device` when torch can use CUDA; `gpu_as_cpu` lets tests
    with Ray's logical GPUs train on CPU. Anything else is a misconfigured node, reported as one
    line rather than silently training on its CPUs.
    """
    if not gpu_ids:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device(cuda_device)
    if gpu_as_cpu:
        return torch.device("cpu")
    raise UserError(f"node {node}: Ray gave this worker GPU(s) {list(gpu_ids)} but {_no_cuda_reason()}")


def _no_cuda_reason():
    """Why torch cannot use CUDA here, in one line."""
    if torch.version.cuda is None:
        return (f"torch {torch.__version__} is a CPU-only build; install a CUDA build of torch on GPU nodes")
    try:
        torch.cuda.init()
    except Exception as e:   # the driver's or runtime's own words
        text = " ".join(str(e).split()) or type(e).__name__
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot initialise CUDA: {text}"
    return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device; expected "
            "the GPU visible to this worker (CUDA_VISIBLE_DEVICES)")


def check_device(flag, device):
    """`--device` as a torch device: cpu, or cuda[:N] where torch has CUDA; a UserError otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"{flag} {device}: not a device torch knows; expected cpu or cuda[:N]") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise UserError(f"{flag} {device}: not a device raypose runs on; expected cpu or cuda[:N]")
    if not torch.cuda.is_available():
        raise UserError(f"{flag} {device}: torch has no CUDA on this machine; expected cpu "
                        f"(or a CUDA build of torch, this is {torch.__version__})")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UserError(f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                        f"expected cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return dev

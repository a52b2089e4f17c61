"""ONNX Runtime sessions: provider choice, options, quiet start-up.

`--device auto` must only pick CUDA where it really runs: onnxruntime-gpu lists the CUDA provider
even on machines without a GPU and then falls back to CPU after logging library-load errors. So
CUDA is tried only if the driver library loads, and a session counts as CUDA only if the session
itself reports the CUDA provider.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(RuntimeError):
    """The requested device cannot run the models."""


@cache
def _ort():
    import onnxruntime as ort

    # Library-load errors from a GPU build on a machine without CUDA are expected, not news.
    ort.set_default_logger_severity(4)
    return ort


@cache
def cuda_driver_present() -> bool:
    names = ["nvcuda.dll"] if sys.platform == "win32" else ["libcuda.so.1", "libcuda.so"]
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def providers_for(device: str) -> list[str]:
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r} (choose from {', '.join(DEVICES)})")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = _ort().get_available_providers()
    cuda_ok = "CUDAExecutionProvider" in available and cuda_driver_present()
    if device == "cuda" and not cuda_ok:
        why = (
            "this onnxruntime has no CUDA provider"
            if "CUDAExecutionProvider" not in available
            else "no CUDA driver found"
        )
        raise DeviceError(f"--device cuda: {why}")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_ok else ["CPUExecutionProvider"]


def default_threads() -> int:
    """AEC_THREADS if set (for `xargs -P N`, where processes cannot see each other), else all
    cores this process may use; -j splits them between its workers."""
    env = os.environ.get("AEC_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def session(path: Path, device: str = "auto", threads: int | None = None):
    """An InferenceSession on the requested device; raises DeviceError if CUDA was demanded
    but the session did not get it."""
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    # Idle worker threads must not spin: in a batch the CPU is shared with image I/O and with
    # other aec processes.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 4
    providers = providers_for(device)
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # noqa: BLE001 - ORT raises bare RuntimeError subclasses
        if providers[0] == "CUDAExecutionProvider" and device == "auto":
            sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        else:
            raise DeviceError(f"cannot load {path.name}: {e}") from None
    if device == "cuda" and "CUDAExecutionProvider" not in sess.get_providers():
        raise DeviceError("--device cuda: the CUDA provider failed to start (see onnxruntime docs)")
    return sess


def provider_name(sess) -> str:
    return "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

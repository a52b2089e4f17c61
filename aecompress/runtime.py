"""ONNX Runtime sessions: provider choice, options, quiet start-up.

`--device auto` must only pick CUDA where it really runs: onnxruntime-gpu lists the CUDA provider
even on machines without a GPU and then falls back to CPU after logging library-load errors. So
CUDA is tried only if the driver library loads, and a session counts as CUDA only if the session
itself reports the CUDA provider.

On the CPU, a model's fully optimised graph is cached (AEC_CACHE_DIR, else $XDG_CACHE_HOME or
~/.cache, /aecompress; AEC_CACHE_DIR= turns it off) so that later processes load it instead of
optimising it again. The optimised graph is laid out for this CPU's vector width, so the cache
key holds the model's sha256, the ONNX Runtime version and the CPU's features.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import sys
from functools import cache
from pathlib import Path

from aecompress.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda")


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


def cache_dir() -> Path | None:
    env = os.environ.get("AEC_CACHE_DIR")
    if env is not None:
        return Path(env) if env else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aecompress"


@cache
def _machine_key() -> str:
    flags = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), flags)
    except OSError:
        pass
    return hashlib.sha256(f"{_ort().__version__}|{platform.machine()}|{flags}".encode()).hexdigest()[:16]


def _options(threads: int | None, optimise: bool):
    ort = _ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimise else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    # Idle worker threads must not spin: in a batch the CPU is shared with image I/O and with
    # other aec processes.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 4
    return opts


def _cache_entry(sha256: str) -> Path | None:
    root = cache_dir()
    return None if root is None else root / f"{sha256[:32]}-{_machine_key()}.ort"


def cached_session(sha256: str, device: str = "auto", threads: int | None = None):
    """A CPU session from the cached optimised graph of the model file with this sha256, or
    None (no entry, not the CPU, or an entry that fails its own checksum). An entry is the
    sha256 of the graph, then the graph: a damaged one is never run."""
    entry = _cache_entry(sha256)
    if entry is None or providers_for(device) != ["CPUExecutionProvider"]:
        return None
    try:
        blob = entry.read_bytes()
    except OSError:
        return None
    graph = blob[32:]
    try:
        if len(blob) < 32 or hashlib.sha256(graph).digest() != blob[:32]:
            raise ValueError("damaged cache entry")
        return _ort().InferenceSession(graph, _options(threads, False), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - damaged, or written by an ONNX Runtime that reads it differently
        with contextlib.suppress(OSError):
            entry.unlink(missing_ok=True)
        return None


def _cpu_session_caching(path: Path, threads: int | None, sha256: str):
    """A CPU session whose optimised graph is also written to the cache; None if it cannot be."""
    entry = _cache_entry(sha256)
    if entry is None:
        return None
    tmp = entry.with_suffix(f".{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        opts = _options(threads, True)
        opts.optimized_model_filepath = str(tmp)
        sess = _ort().InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        graph = tmp.read_bytes()
        tmp.write_bytes(hashlib.sha256(graph).digest() + graph)
        os.replace(tmp, entry)  # atomic: parallel aec processes may race to write the same entry
        return sess
    except Exception:  # noqa: BLE001 - a read-only or full disk only costs the optimisation next time
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return None


def session(path: Path, device: str = "auto", threads: int | None = None, cache_as: str | None = None):
    """An InferenceSession on the requested device; raises DeviceError if CUDA was demanded
    but the session did not get it. cache_as (the verified file's sha256): on the CPU, also
    write its optimised graph to the cache for cached_session."""
    ort = _ort()
    providers = providers_for(device)
    if providers == ["CPUExecutionProvider"] and cache_as:
        sess = _cpu_session_caching(path, threads, cache_as)
        if sess is not None:
            return sess
    opts = _options(threads, True)
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


def run(sess, feeds: dict, bind: bool | None = None):
    """The session's first output as a NumPy array. On CUDA (or with bind=True) through IO
    binding: the inputs go to the device once and the output is allocated there by ONNX Runtime
    and copied back once, instead of through the staging copies of a plain run()."""
    device = provider_name(sess)
    if not (device == "cuda" if bind is None else bind):
        return sess.run(None, feeds)[0]
    binding = sess.io_binding()
    for name, value in feeds.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output(sess.get_outputs()[0].name, device)
    sess.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]


def provider_name(sess) -> str:
    return "cuda" if sess.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

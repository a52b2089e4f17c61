"""Many files through one model: read-ahead, jobs, write-behind, per-file errors, progress and
a summary. The command line (cli.py) describes what to do with each file; this runs them."""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from contextlib import contextmanager

from aecompress import errors, runtime, stderr


def say(msg: str) -> None:
    with stderr.lock:  # never while an image decoder's C-level messages are being caught
        print(msg, file=sys.stderr, flush=True)


@contextmanager
def stdout_reserved(needed: bool):
    """While models run, fd 1 points at stderr so that no library banner can reach stdout;
    the real stdout is kept aside for the output data."""
    if not needed:
        yield None
        return
    sys.stdout.flush()
    real = os.dup(1)
    os.dup2(2, 1)
    try:
        yield real
    finally:
        sys.stdout.flush()
        os.dup2(real, 1)
        os.close(real)


_where = threading.local()  # the file a thread is working on, for warnings raised meanwhile


def job_name(job) -> str:
    return "stdin" if job.source == "-" else job.source


def _in_file(name: str, fn, *args):
    prev = getattr(_where, "name", None)
    _where.name = name
    try:
        return fn(*args)
    finally:
        _where.name = prev


class Reporter:
    """Per-file messages, a progress bar for batches on a terminal (never in pipes or with
    --quiet), and a summary line at the end of a batch. Python warnings raised meanwhile
    (Pillow's about odd or damaged files, mostly) become `aec: FILE: warning: ...` lines, shown
    with -v: nothing else reaches stderr."""

    def __init__(self, verbose: int, quiet: bool, total: int = 1) -> None:
        self.verbose, self.quiet, self.total = verbose, quiet, total
        self.failed: list[str] = []
        self.done = 0
        self.bytes_in = self.bytes_out = 0
        self.t0 = time.perf_counter()
        self._lock = threading.Lock()
        self.tty = sys.stderr.isatty()
        self._bar = None
        warnings.showwarning = self._warning
        if not quiet and self.tty and total > 1:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="file", file=sys.stderr, leave=False, dynamic_ncols=True)

    def _emit(self, msg: str) -> None:
        if self._bar is not None:
            with stderr.lock:
                self._bar.write(msg, file=sys.stderr)
        else:
            say(msg)

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        if self.verbose and not self.quiet:
            text = " ".join(str(message).split())
            self._emit(f"aec: {getattr(_where, 'name', None) or 'aec'}: warning: {text}")

    def succeeded(self) -> None:
        with self._lock:
            self.done += 1
            if self._bar is not None:
                self._bar.update(1)

    def note(self, name: str, msg: str) -> None:
        if not self.quiet:
            self._emit(f"aec: {name}: note: {msg}")

    def info(self, msg: str) -> None:
        if self.verbose and not self.quiet:
            self._emit(msg)

    def fail(self, name: str, msg: str) -> None:
        with self._lock:
            self.failed.append(name)
            if self._bar is not None:
                self._bar.update(1)
            self._emit(f"aec: {name}: {msg}")

    def add_bytes(self, bytes_in: int, bytes_out: int) -> None:
        with self._lock:
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out

    def summary(self) -> str:
        total = self.done + len(self.failed)
        line = f"aec: {self.done} of {total} files done in {time.perf_counter() - self.t0:.1f} s"
        if self.bytes_in and self.bytes_out:
            ratio = self.bytes_in / self.bytes_out
            line += f", {self.bytes_in / 1e6:.2f} MB -> {self.bytes_out / 1e6:.2f} MB ({ratio:.2f}:1)"
        return line

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
        total = self.done + len(self.failed)
        if not self.quiet and total > 1 and (self.tty or self.verbose):
            say(self.summary())
        if self.failed:
            if total > 1:
                say(f"aec: {len(self.failed)} of {total} files failed")
            sys.exit(1)


def source_size(source: str) -> int:
    try:
        return os.path.getsize(source) if source != "-" else 0
    except OSError:
        return 0


def expected_errors() -> tuple[type[BaseException], ...]:
    return (
        errors.FormatError,
        errors.EntropyError,
        errors.ImageError,
        errors.OutputError,
        errors.ModelError,
        errors.DeviceError,
        OSError,
        ValueError,
    )


def describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        where = f" ({e.filename})" if e.filename else ""
        return f"{e.strerror}{where}"
    return str(e) or type(e).__name__


def run_jobs(jobs, work, rep: Reporter, parallel: int = 1, prepare=None) -> None:
    """Run work(job, name, prepare(job)) for each job, `parallel` at a time; a failing file is
    reported and the rest go on. Threads suffice: ONNX Runtime, Pillow and the entropy coder
    release the GIL, and the sessions are shared (ONNX Runtime sessions are safe to run
    concurrently). work may return a callable, the rest of the job (encoding and writing the
    output image). One at a time, the next file is read and decoded, and the last one's output
    written, while the current one runs through the model."""
    from concurrent.futures import Future, ThreadPoolExecutor

    expected = expected_errors()
    prepare = prepare or (lambda job: None)

    def attempt(name: str, fn) -> tuple[object, bool]:
        try:
            return fn(), True
        except expected as e:
            rep.fail(name, describe(e))
        except Exception as e:  # noqa: BLE001 - one line per file, never a traceback
            if os.environ.get("AEC_DEBUG"):
                raise
            rep.fail(name, f"internal error: {type(e).__name__}: {e}")
        return None, False

    def one(job, prepared: Future | None = None, writer: ThreadPoolExecutor | None = None) -> Future | None:
        name = job_name(job)
        if job.error:
            rep.fail(name, job.error)
            return None
        rest, ok = attempt(
            name, lambda: _in_file(name, lambda: work(job, name, prepared.result() if prepared else prepare(job)))
        )
        if not ok:
            return None

        def finish() -> None:
            if rest is None or attempt(name, lambda: _in_file(name, rest))[1]:
                rep.succeeded()

        if writer is None or rest is None:
            finish()
            return None
        return writer.submit(finish)

    if parallel > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(one, jobs))
        return
    with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(1) as writer:
        ahead = [reader.submit(_in_file, job_name(job), prepare, job) if not job.error else None for job in jobs[:1]]
        writing: Future | None = None
        for i, job in enumerate(jobs):
            if i + 1 < len(jobs):
                nxt = jobs[i + 1]
                ahead.append(reader.submit(_in_file, job_name(nxt), prepare, nxt) if not nxt.error else None)
            written = one(job, ahead[i], writer)
            ahead[i] = None  # let the decoded image go
            if writing is not None:
                writing.result()  # one output waiting at most: memory stays bounded
            writing = written
        if writing is not None:
            writing.result()


def threads_per_job(threads: int | None, jobs: int) -> int:
    """Each of -j jobs gets an equal share of the cores unless --threads says otherwise."""
    return threads or max(1, runtime.default_threads() // max(1, jobs))

"""Where outputs go and how they are written: beside the input, into a folder, or to stdout;
never over an input, never over an existing file without force, never half-written."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aecompress.errors import OutputError

STDIO = "-"


def _umask() -> int:
    """The process umask, read without changing it where the system allows (os.umask can only
    set it, and setting it races with threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Outputs get the mode an ordinary new file gets (mkstemp's temporary files are owner-only).
_FILE_MODE = 0o666 & ~_umask()


@dataclass
class Job:
    source: str  # a path, or "-" for stdin
    target: str  # a path, or "-" for stdout
    error: str | None = None  # set when the job is refused before it starts


def swap_suffix(suffix: str) -> Callable[[Path], str]:
    return lambda p: p.stem + suffix


def plan(inputs: list[str], output: str | None, rename: Callable[[Path], str], force: bool) -> list[Job]:
    """Pair every input with its output; refusals become per-job errors, not exceptions.

    rename gives an input's output file name, used beside the input or in the -o folder."""
    to_dir = output is not None and output != STDIO and (output.endswith(("/", os.sep)) or Path(output).is_dir())
    if output is not None and not to_dir and len(inputs) > 1:
        raise OutputError("-o names one file but there are several inputs: give a folder ending in /")
    jobs: list[Job] = []
    taken: set[Path] = set()
    sources = {Path(i).resolve() for i in inputs if i != STDIO}
    for src in inputs:
        job = Job(src, "")
        problem = _input_problem(src)
        if problem:
            job.error = problem
            jobs.append(job)
            continue
        if to_dir:
            if src == STDIO:
                job.error = "stdin has no name to put in a folder: give -o FILE"
            else:
                job.target = str(Path(output) / rename(Path(src)))
        elif output is not None:
            job.target = output
        else:
            job.target = STDIO if src == STDIO else str(Path(src).with_name(rename(Path(src))))
        if job.error is None and job.target != STDIO:
            t = Path(job.target).resolve()
            if t in sources:
                job.error = f"refusing to overwrite the input {job.target}"
            elif t in taken:
                job.error = f"another input in this run also writes {job.target}"
            elif t.exists() and not force:
                job.error = f"{job.target} exists (-f overwrites it, -o writes elsewhere)"
            taken.add(t)
        jobs.append(job)
    if sum(j.source == STDIO for j in jobs) > 1:
        raise OutputError("stdin (-) can be read only once")
    return jobs


def _input_problem(src: str) -> str | None:
    """Why an input argument cannot be read as one file, or None."""
    if src == STDIO:
        return None
    if not src:
        return "empty file name"
    p = Path(src)
    if p.is_dir():
        return f"{src} is a folder: give the files in it (e.g. {src.rstrip('/')}/*.png)"
    if not p.name:
        return f"{src} names no file"
    return None


def make_parent(output: str | None) -> None:
    """-o FILE in a folder that does not exist yet: make the folder, as -o DIR/ does."""
    if output and output != STDIO and not output.endswith(("/", os.sep)):
        parent = Path(output).parent
        if not parent.exists():
            parent.mkdir(parents=True, exist_ok=True)


def read_source(source: str) -> bytes:
    if source == STDIO:
        return sys.stdin.buffer.read()
    return Path(source).read_bytes()


def refuse_terminal(fd: int | None) -> None:
    """Binary data never goes to a terminal: it would only garble it."""
    if fd is not None and os.isatty(fd):
        raise OutputError("refusing to write binary data to a terminal (redirect it, or give -o)")


def write_atomic(target: str, data: bytes, stdout_fd: int | None = None) -> None:
    """Write to a temporary file in the target's folder, then rename it into place."""
    if target == STDIO:
        fd = stdout_fd if stdout_fd is not None else sys.stdout.fileno()
        refuse_terminal(fd)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        return
    path = Path(target)
    fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        try:
            os.replace(tmp, path)
        except OSError as e:  # name the target, not the temporary file
            raise OSError(e.errno, e.strerror, str(path)) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise

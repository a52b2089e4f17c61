"""One lock for the process's stderr: the command line's messages take it, and so does reading
an image while C libraries under Pillow (libtiff) may print to file descriptor 2, whose lines are
caught and turned into Python warnings (shown as `aec: FILE: warning: ...` with -v). Tiny on
purpose: the command line imports it before anything heavy."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager

lock = threading.RLock()


@contextmanager
def library_messages():
    """Run the block with fd 2 caught; its lines and the block's Python warnings are re-raised
    as warnings afterwards, in the calling thread."""
    with lock:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
    for w in caught:
        warnings.warn(str(w.message), w.category, stacklevel=3)
    for line in text.splitlines():
        if line.strip():
            warnings.warn(line.strip(), UserWarning, stacklevel=3)

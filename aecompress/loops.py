"""The lossless path's compiled inner loops (aecompress/csrc/, built at install as aecompress._lossless_loops), or
None where they could not be built: callers then run their NumPy reference, slower, same bits.
Callers look up `loops.compiled` at each call, so a test can switch the C off."""

try:
    from aecompress import _lossless_loops as compiled
except ImportError:  # no C compiler at install time
    compiled = None

"""Giving a finished training stage's memory back to the machine.

Why: a run trains in its own process and then starts vLLM again for the next evaluation or feedback
stage. torch's CPU tensors come from glibc's malloc; once the trainer is gone, glibc keeps most of the
freed heap (its mmap threshold grows to the size of a freed mapping, up to 32 MB, so the activations of later
steps live in the heap, not in mappings returned on free). Without a trim the run carried its trainer's
peak into the engine stage that followed, beside the engine's own processes.

Guarantees: after :func:`release_freed_memory` the garbage collector has run (the trainer's reference
cycles are gone) and glibc has returned every whole free page of its heaps to the kernel
(``malloc_trim(0)``). Non-guarantees: memory still referenced stays; on a C library without
``malloc_trim`` (musl, macOS) only the garbage collection happens; CUDA memory is torch's own cache and
is not touched here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc


def release_freed_memory() -> bool:
    """Collect garbage and trim glibc's heaps; True when ``malloc_trim`` released something."""
    gc.collect()
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))

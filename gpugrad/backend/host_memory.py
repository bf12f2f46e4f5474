"""Keep freed host memory in the process, so training steps stop faulting their arrays back in.

glibc's malloc serves requests above a threshold (128 KiB at first, raised as big blocks are
freed) with fresh `mmap`s, returns them to the system when they are freed, and trims the top
of its heap when more than twice that threshold lies free there. A training step allocates and
frees the same few-MiB arrays (activations, gradients) every step, so with those defaults it
can hand its memory back each step and fault every page in again the next: measured on the
784-512-512-10 MLP at batch 256, 2,150 page faults and ~2 ms of a ~5.5 ms forward + backward,
against none for the same arithmetic written in NumPy by hand. Raising both thresholds once
keeps the freed memory for reuse (0 faults a step, 5.5 -> 3.8 ms there).

The cost: the process keeps up to TRIM_THRESHOLD of freed memory at the top of its heap, and
arrays below MMAP_THRESHOLD come from the heap, whose freed middle the system only gets back
when it is at the top. Set GPUGRAD_MALLOC_TUNING=0 to leave malloc as it is; glibc's own
MALLOC_*_ environment variables, when set, win over this.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's own ceiling for the threshold it raises by itself
TRIM_THRESHOLD = 128 << 20
# Setting any of these in the environment means the user tunes malloc: leave it to them.
USER_SETTINGS = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)


def tune_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring); returns whether it
    did. Does nothing off glibc, with GPUGRAD_MALLOC_TUNING=0, or with MALLOC_*_ set."""
    if os.environ.get("GPUGRAD_MALLOC_TUNING", "1").strip() == "0":
        return False
    if any(name in os.environ for name in USER_SETTINGS):
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success. Setting the mmap threshold first also stops glibc from
    # moving either threshold by itself afterwards.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


TUNED = tune_malloc()

"""Keep freed memory in the process instead of handing it back to the operating system.

Why this matters: a GPT forward pass allocates and frees arrays of several megabytes hundreds of
times. glibc's malloc serves blocks that large with a fresh ``mmap`` and returns them with
``munmap`` on free (or trims them off the heap), so every new array starts as untouched pages
and the kernel takes a page fault and zeroes 4 KB for each page on first write. For the
element-wise ops (GELU, softmax, layer norm) that costs about as much as the arithmetic itself.

``keep_freed_memory()`` tells glibc to serve every block from its heap and never trim it: an
array freed by one layer is reused, already mapped, by the next. The price: the process keeps
the memory of its peak (a little more if the heap fragments) instead of shrinking after it, the
trade that caching allocators such as PyTorch's GPU allocator make too.

``import minigrad`` calls it once; set ``MINIGRAD_KEEP_FREED_MEMORY=0`` before the import to
leave malloc as it is. On systems without glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt(3) parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

_applied = False


def keep_freed_memory() -> bool:
    """Switch glibc malloc to reuse freed blocks (see the module docstring).

    Returns True when the settings are in effect (now or from an earlier call), False where they
    cannot apply (not glibc) or the environment opts out. Safe to call more than once.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("MINIGRAD_KEEP_FREED_MEMORY", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Serve blocks up to 1 GB from the heap, not mmap. mallopt returns 1 on success; older glibc
    # caps the threshold at 32 MB, which still covers a GPT's activations (not its largest logits).
    if not (mallopt(_M_MMAP_THRESHOLD, 1 << 30) or mallopt(_M_MMAP_THRESHOLD, 32 << 20)):
        return False
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)         # never give the top of the heap back
    mallopt(_M_TOP_PAD, 64 << 20)                 # grow the heap 64 MB at a time
    _applied = True
    return True


def is_keeping_freed_memory() -> bool:
    """Whether :func:`keep_freed_memory` is in effect in this process."""
    return _applied

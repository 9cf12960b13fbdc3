"""The process's allocator policy for a node that allocates and frees full-frame buffers every frame."""

from __future__ import annotations

import ctypes
import ctypes.util

#: glibc's mallopt parameters, and the values set by :func:`keep_freed_memory`.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest (half a 64 MB arena heap): every buffer of a 4K frame but one
_TRIM_THRESHOLD = 256 * 2**20


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for reuse instead of returning it to the kernel; False where it cannot.

    Every frame allocates and frees some 50 MB of full-frame buffers (messages, float planes). By default
    glibc maps a buffer over its adaptive threshold afresh and trims freed heap tops, so each frame's
    buffers are faulted in again page by page and zeroed by the kernel: a fifth of the node's CPU at
    1280x1024 (perf: ``exc_page_fault``, ``clear_page_erms``); with this, page faults halve. The process
    keeps its peak working set (resident memory flat, about 50 MB more at 1280x1024)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mapped = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        return bool(mapped and libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): their allocators, their defaults
        return False

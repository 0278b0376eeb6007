"""Memory figures of this process: RSS from /proc and the C heap from glibc's mallinfo2."""

from __future__ import annotations

import ctypes
import ctypes.util
import resource

__all__ = ["MemoryUsage", "human_bytes", "memory_usage"]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
        "keepcost")]


def _mallinfo2() -> _MallInfo2 | None:
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        libc = ctypes.CDLL(path)
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn()  # type: ignore[no-any-return]


class MemoryUsage(dict[str, int]):
    """rss, heap_used and heap_total in bytes."""


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_usage() -> MemoryUsage:
    """This process's memory: resident set, and the malloc heap in use / obtained from the OS."""
    usage = MemoryUsage(rss=_rss_bytes())
    info = _mallinfo2()
    if info is not None:
        usage["heap_used"] = int(info.uordblks + info.hblkhd)
        usage["heap_total"] = int(info.arena + info.hblkhd)
    return usage


def human_bytes(size: int) -> str:
    """``47472640`` → ``45.3MB``, as the guide's health JSON shows memory."""
    return f"{size / 1_048_576:.1f}MB"

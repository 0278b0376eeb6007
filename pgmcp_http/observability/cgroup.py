"""How much memory this container may use: the cgroup limit, else the machine's memory.

The high-memory alert divides resident memory by this figure. A limit can be
set on any ancestor cgroup (a Kubernetes pod, an ECS task), so the smallest
one on the way up to the root counts. cgroup v2 writes ``max`` for no limit,
v1 a number near 2**63; both mean "no limit", and then the machine's
physical memory is the real bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

__all__ = ["memory_limit_bytes"]

_UNLIMITED = 1 << 60


def memory_limit_bytes(*, proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The tightest cgroup memory limit of this process, or MemTotal when there is none
    (None only when neither can be read)."""
    limits = [limit for limit in _cgroup_limits(proc, cgroup_root) if 0 < limit < _UNLIMITED]
    if limits:
        return min(limits)
    return _mem_total(proc)


def _cgroup_limits(proc: Path, root: Path) -> Iterator[int]:
    try:
        lines = (proc / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # cgroup v2 (unified)
            yield from _walk_up(root, PurePosixPath(path), "memory.max")
        elif "memory" in controllers.split(","):  # cgroup v1 memory controller
            yield from _walk_up(root / "memory", PurePosixPath(path), "memory.limit_in_bytes")


def _walk_up(mount: Path, path: PurePosixPath, filename: str) -> Iterator[int]:
    """The limit file of the cgroup and of each ancestor below the mount point.

    Inside a container the cgroup namespace usually makes the own cgroup the
    mount's root, so the path is ``/``; without one it names a nested folder.
    """
    for ancestor in (path, *path.parents):
        folder = mount / str(ancestor).lstrip("/")
        value = _read_number(folder / filename)
        if value is not None:
            yield value


def _read_number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _mem_total(proc: Path) -> int | None:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None

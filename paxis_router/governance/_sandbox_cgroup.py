"""One cgroup per sandbox run: a single memory limit and process count for the whole sandbox.

Private to ``sandbox.py``. A cgroup counts every page the sandbox's processes use, the pages
of the tmpfs they write (shmem is charged to the writer's cgroup) and, on v2, kernel memory;
rlimits only bound one process at a time. Where to make the cgroup is found once:

- cgroup v2 (unified): the nearest of our own cgroup and its ancestors that already delegates
  ``memory`` and ``pids`` to its children (``cgroup.subtree_control``) and that we may write
  (root, or a delegated subtree such as a systemd user session's). We never enable
  controllers ourselves, so we never change how the host is set up.
- cgroup v1: under our own cgroup in the ``memory`` hierarchy (and ``pids`` where mounted).

The run's processes are moved in before bubblewrap starts (see ``sandbox.py``), so nothing the
script does happens outside it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from paxis_router.errors import SandboxError

logger = logging.getLogger(__name__)

_REMOVE_TRIES = 100
_REMOVE_WAIT_S = 0.01


@dataclass(frozen=True)
class Mount:
    """One cgroup filesystem mount from ``/proc/self/mountinfo``."""

    root: str
    point: Path
    fstype: str
    options: frozenset[str]


@dataclass(frozen=True)
class CgroupSite:
    """Where this process can make sandbox cgroups: ``memory`` (and ``pids``, the same folder
    on v2) are parent folders we may write."""

    version: int
    memory: Path
    pids: Path | None

    @property
    def label(self) -> str:
        return f"cgroup v{self.version}"

    def create(self, *, memory_bytes: int, max_processes: int) -> RunCgroup:
        """A fresh cgroup with the limits written; SandboxError when it cannot be made."""
        name = f"paxis-sandbox-{os.getpid()}-{secrets.token_hex(6)}"
        folders = [self.memory / name]
        if self.pids is not None and self.pids != self.memory:
            folders.append(self.pids / name)
        made: list[Path] = []
        try:
            for folder in folders:
                folder.mkdir(mode=0o755)
                made.append(folder)
            run = RunCgroup(self.version, tuple(made))
            run.limit(memory_bytes=memory_bytes, max_processes=max_processes)
        except OSError as exc:
            for folder in reversed(made):
                with contextlib.suppress(OSError):
                    folder.rmdir()
            raise SandboxError(f"cannot set up a cgroup under {self.memory}: {exc}") from exc
        return run


@dataclass(frozen=True)
class RunCgroup:
    """The cgroup (one folder on v2; memory and pids folders on v1) of one run."""

    version: int
    folders: tuple[Path, ...]

    @property
    def memory(self) -> Path:
        return self.folders[0]

    def limit(self, *, memory_bytes: int, max_processes: int) -> None:
        """Write the limits: memory without swap, the process count, and (v2) kill the whole
        sandbox when it runs out of memory, as systemd's ``OOMPolicy=kill`` does."""
        if self.version == 2:
            _write(self.memory / "memory.max", memory_bytes)
            _write_if_present(self.memory / "memory.swap.max", 0)
            _write_if_present(self.memory / "memory.oom.group", 1)
            _write(self.memory / "pids.max", max_processes)
            return
        _write(self.memory / "memory.limit_in_bytes", memory_bytes)
        # memory+swap: present only with swap accounting; equal to the memory limit = no swap.
        _write_if_present(self.memory / "memory.memsw.limit_in_bytes", memory_bytes)
        for folder in self.folders[1:]:
            _write(folder / "pids.max", max_processes)

    def attach(self, pid: int) -> None:
        """Move process ``pid`` (and so everything it starts later) into this cgroup."""
        for folder in self.folders:
            _write(folder / "cgroup.procs", pid)

    def oom_kills(self) -> int:
        """How many processes the kernel killed here for want of memory."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            text = (self.memory / name).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def kill_all(self) -> None:
        """SIGKILL whatever is still in the cgroup."""
        if self.version == 2 and (self.memory / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.memory / "cgroup.kill", 1)
            return
        for pid in self._pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the folders (waiting a moment for dying processes)."""
        self.kill_all()
        for folder in reversed(self.folders):
            for _ in range(_REMOVE_TRIES):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        logger.warning("cannot remove sandbox cgroup %s: %s", folder, exc)
                        break
                    self.kill_all()
                    time.sleep(_REMOVE_WAIT_S)
            else:
                logger.warning("sandbox cgroup %s still busy; left in place", folder)

    def _pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.memory / "cgroup.procs").read_text().split()]
        except OSError:
            return []


def find_site() -> tuple[CgroupSite | None, str]:
    """Where sandbox cgroups can be made here, or None and why not."""
    try:
        mountinfo = Path("/proc/self/mountinfo").read_text()
        membership = Path("/proc/self/cgroup").read_text()
    except OSError as exc:
        return None, f"cannot read /proc/self: {exc}"
    return site_from(mountinfo, membership)


def site_from(mountinfo: str, membership: str) -> tuple[CgroupSite | None, str]:
    """Where sandbox cgroups can be made, given our ``/proc/self/mountinfo`` and
    ``/proc/self/cgroup``; or None and why not. v2 first, then v1."""
    mounts = parse_mountinfo(mountinfo)
    groups = parse_proc_cgroup(membership)
    reasons: list[str] = []
    v2 = _v2_site(mounts, groups, reasons)
    if v2 is not None:
        return v2, ""
    v1 = _v1_site(mounts, groups, reasons)
    if v1 is not None:
        return v1, ""
    return None, "; ".join(reasons) or "no cgroup filesystem mounted"


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts listed in a ``/proc/<pid>/mountinfo`` text.

    Example:
        >>> line = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"
        >>> parse_mountinfo(line)[0].point
        PosixPath('/sys/fs/cgroup')
    """
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(
            Mount(
                root=_unescape(fields[3]),
                point=Path(_unescape(fields[4])),
                fstype=tail[0],
                options=frozenset(tail[2].split(",")),
            )
        )
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Controller (``""`` for the v2 line) -> our cgroup path, from ``/proc/self/cgroup``.

    Example:
        >>> parse_proc_cgroup("0::/user.slice/a.scope\\n4:memory:/x\\n2:cpu,cpuacct:/")["memory"]
        '/x'
    """
    groups: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            groups[controller] = parts[2]
    return groups


def _own_folder(mount: Mount, path: str) -> Path | None:
    """Our cgroup's folder under ``mount``, or None when it is outside what the mount shows."""
    if path.startswith("/.."):
        return None
    root = mount.root.rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        return None
    relative = path[len(root) :].strip("/")
    return mount.point / relative if relative else mount.point


def _v2_site(mounts: list[Mount], groups: dict[str, str], reasons: list[str]) -> CgroupSite | None:
    mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if mount is None or "" not in groups:
        reasons.append("no cgroup v2 hierarchy")
        return None
    own = _own_folder(mount, groups[""])
    if own is None:
        reasons.append("our cgroup v2 folder is outside the mounted hierarchy")
        return None
    available = _words(mount.point / "cgroup.controllers")
    if not {"memory", "pids"} <= available:
        reasons.append(f"cgroup v2 lacks memory/pids controllers (has {sorted(available)})")
        return None
    folder: Path | None = own
    while folder is not None:
        delegated = _words(folder / "cgroup.subtree_control")
        if {"memory", "pids"} <= delegated and os.access(folder, os.W_OK | os.X_OK):
            return CgroupSite(2, folder, folder)
        folder = folder.parent if folder != mount.point else None
    reasons.append(f"no writable cgroup v2 folder delegating memory and pids above {own}")
    return None


def _v1_site(mounts: list[Mount], groups: dict[str, str], reasons: list[str]) -> CgroupSite | None:
    folders: dict[str, Path] = {}
    for controller in ("memory", "pids"):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        if mount is None or controller not in groups:
            continue
        own = _own_folder(mount, groups[controller])
        if own is not None and os.access(own, os.W_OK | os.X_OK):
            folders[controller] = own
    if "memory" not in folders:
        reasons.append("no writable cgroup v1 memory hierarchy")
        return None
    return CgroupSite(1, folders["memory"], folders.get("pids"))


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _write(path: Path, value: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, f"{value}\n".encode())
    finally:
        os.close(fd)


def _write_if_present(path: Path, value: int) -> None:
    if path.exists():
        _write(path, value)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    out, i = [], 0
    while i < len(field):
        digits = field[i + 1 : i + 4]
        if field[i] == "\\" and len(digits) == 3 and digits.isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)

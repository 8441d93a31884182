"""Files crossing the sandbox's edge: the skill folder going in, collected files coming out.

Private to ``sandbox.py``. Both directions run as the launching user (often root), on paths a
script or another user may have shaped, so neither ever follows a link it did not vet:

- in: the skill folder is walked relative to directory descriptors (``openat`` with
  ``O_NOFOLLOW``); each file is checked on the descriptor it is copied from: a regular file
  with one name (a hard link may name a file its owner never meant to share) — anything else,
  like a FIFO or a device, is refused. Symlinks are copied as links, and only when they stay
  inside the folder.
- out: a collected name is opened one component at a time from the work directory's
  descriptor, with ``O_NOFOLLOW`` at every step, and read only when it is a regular file
  within the size cap.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from paxis_router.errors import SandboxError

if TYPE_CHECKING:
    from collections.abc import Sequence

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CHUNK = 1 << 20


def relative_name(name: str, what: str) -> PurePosixPath:
    """``name`` as a relative path that stays inside the work dir, or SandboxError."""
    pure = PurePosixPath(name)
    if not name or "\x00" in name or pure.is_absolute() or ".." in pure.parts:
        raise SandboxError(f"{what} {name!r} must be relative and stay inside the work dir")
    return pure


def walk_skill(root: Path, dest: Path | None, limit_bytes: int) -> None:
    """Check the skill folder ``root`` (``dest`` None) or copy it to ``dest``.

    Raises SandboxError naming the path for a hard link, anything that is not a regular
    file, folder or symlink, a symlink that leaves the folder, or over ``limit_bytes`` in all.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        total = _walk(fd, root, root, dest, limit_bytes, 0)
    finally:
        os.close(fd)
    if dest is None and total > limit_bytes:
        raise SandboxError(f"skill folder {root} holds {total} bytes, over {limit_bytes}")


def _walk(dir_fd: int, here: Path, root: Path, dest: Path | None, limit: int, total: int) -> int:
    if dest is not None:
        dest.mkdir(mode=0o755, exist_ok=True)
    for name in sorted(os.listdir(dir_fd)):
        path = here / name
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(name, dir_fd=dir_fd)
            if not (here / target).resolve().is_relative_to(root):
                raise SandboxError(
                    f"symlink {path} leaves the skill folder {root}; refusing to run"
                )
            if dest is not None:
                (dest / name).symlink_to(target)
        elif stat.S_ISDIR(info.st_mode):
            child = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            try:
                total = _walk(child, path, root, dest / name if dest else None, limit, total)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            total = _copy_file(dir_fd, name, path, dest, limit, total)
        else:
            raise SandboxError(
                f"{path} is not a regular file or folder ({_kind(info.st_mode)}); refusing "
                "to copy it into the sandbox"
            )
    return total


def _copy_file(
    dir_fd: int, name: str, path: Path, dest: Path | None, limit: int, total: int
) -> int:
    """Check (and copy) one file, on the descriptor it is read from."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise SandboxError(f"cannot open {path}: {exc.strerror}; refusing to run") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SandboxError(
                f"{path} is not a regular file or folder ({_kind(info.st_mode)}); refusing "
                "to copy it into the sandbox"
            )
        if info.st_nlink > 1:
            raise SandboxError(
                f"{path} is a hard link ({info.st_nlink} names for one file); refusing to copy "
                "it into the sandbox: a hard link can name a file its owner never meant to share"
            )
        if dest is None:
            return total + info.st_size
        out = os.open(dest / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(fd, _CHUNK):
                total += len(chunk)
                if total > limit:
                    raise SandboxError(f"skill folder holds over {limit} bytes (at {path})")
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            os.fchmod(out, stat.S_IMODE(info.st_mode) & 0o755 | 0o444)
        finally:
            os.close(out)
        return total
    finally:
        os.close(fd)


def read_collected(
    work: Path, names: Sequence[PurePosixPath], max_bytes: int
) -> tuple[dict[str, bytes], dict[str, str]]:
    """Read ``names`` from ``work`` without following any link: ``(files, errors)``, where
    ``errors`` says why each name that is not in ``files`` was left out."""
    files: dict[str, bytes] = {}
    errors: dict[str, str] = {}
    work_fd = os.open(work, _DIR_FLAGS)
    try:
        for name in names:
            key = name.as_posix()
            try:
                files[key] = _read_beneath(work_fd, name.parts, max_bytes)
            except _Refused as why:
                errors[key] = str(why)
    finally:
        os.close(work_fd)
    return files, errors


class _Refused(Exception):
    """Why one collected file was not read."""


def _read_beneath(work_fd: int, parts: tuple[str, ...], max_bytes: int) -> bytes:
    opened: list[int] = []
    try:
        dir_fd = work_fd
        for part in parts[:-1]:
            dir_fd = _open(part, _DIR_FLAGS, dir_fd)
            opened.append(dir_fd)
        fd = _open(parts[-1], _FILE_FLAGS, dir_fd)
        opened.append(fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("not a regular file")
        if info.st_size > max_bytes:
            raise _Refused(f"larger than {max_bytes} bytes")
        data = bytearray()
        while chunk := os.read(fd, min(_CHUNK, max_bytes + 1 - len(data))):
            data += chunk
            if len(data) > max_bytes:
                raise _Refused(f"larger than {max_bytes} bytes")
        return bytes(data)
    finally:
        for fd in reversed(opened):
            os.close(fd)


def _open(name: str, flags: int, dir_fd: int) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise _Refused("no such file") from None
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            # O_NOFOLLOW refuses a symlink with ELOOP, or ENOTDIR along with O_DIRECTORY.
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                    raise _Refused("a symbolic link; not followed") from None
            raise _Refused(
                "not a regular file" if exc.errno == errno.ENOTDIR else "a loop"
            ) from None
        raise _Refused(f"cannot open: {exc.strerror}") from None


def _kind(mode: int) -> str:
    for test, label in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return label
    return "unknown type"

"""SKILL.md bodies for the prompt: read once, cached (bounded), re-read when the file changes.

The router puts the chosen skills' bodies into the worker's prompt on every route. Reading and
splitting three files per route (8.5 ms, mostly parsing the YAML frontmatter again) is what
this module removes: a :class:`BodyCache` keeps bodies in memory, least recently used first out
once ``max_bytes`` or ``max_entries`` is exceeded, and checks each file's size, mtime and inode
on every read (one ``stat``, as Jinja2's ``auto_reload`` does) so an edited SKILL.md is read
again. The body is found with one regular expression: the frontmatter was parsed once, when the
skill was indexed, and is never parsed again.

:meth:`BodyCache.loader` gives the callable a :class:`~paxis_router.skills.model.Skill` keeps as
``load_body``; ``await skill.abody()`` reads a missing body in a worker thread, so the event
loop never waits on the disk.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "SKILL.md"
    >>> _ = path.write_text("---\\nname: a\\ndescription: A.\\n---\\n# Steps\\n")
    >>> cache = BodyCache()
    >>> body = cache.loader(path)
    >>> body(), cache.peek(path), cache.misses
    ('# Steps\\n', '# Steps\\n', 1)
    >>> body(), cache.misses
    ('# Steps\\n', 1)
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from paxis_router.errors import SkillError

if TYPE_CHECKING:
    from pathlib import Path

#: Largest SKILL.md accepted (bytes). Real ones are under 100 kB; bulk text belongs in references/.
MAX_SKILL_BYTES = 1 << 20

_FRONTMATTER_RE = re.compile(
    r"\A---[ \t]*\r?\n(.*?)^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE
)

Stamp = tuple[int, int, int]  # (size, mtime_ns, inode): changes when the file does


def _stamp(result: os.stat_result) -> Stamp:
    return (result.st_size, result.st_mtime_ns, result.st_ino)


def read_skill_file(path: Path, *, max_bytes: int = MAX_SKILL_BYTES) -> tuple[str, Stamp]:
    """SKILL.md as UTF-8 text and its stamp, refusing files over ``max_bytes`` and bad UTF-8.

    Raises:
        SkillError: too large, or not UTF-8 (naming the path).
    """
    with path.open("rb") as fh:
        stamp = _stamp(os.fstat(fh.fileno()))
        if stamp[0] > max_bytes:
            raise SkillError(
                f"SKILL.md is {stamp[0]:,} bytes, over the {max_bytes:,}-byte limit; move bulk "
                "text into references/ (or raise max_bytes)",
                path=str(path),
            )
        data = fh.read(max_bytes + 1)
    try:
        return data.decode("utf-8"), stamp
    except UnicodeDecodeError as exc:
        raise SkillError(
            f"SKILL.md is not valid UTF-8 ({exc.reason} at byte {exc.start}); re-save it as UTF-8",
            path=str(path),
        ) from exc


def split_text(text: str, *, path: str) -> tuple[str, str]:
    """(frontmatter YAML source, Markdown body) of SKILL.md text, without parsing the YAML.

    Raises:
        SkillError: the text does not start with a frontmatter block.
    """
    text = text.removeprefix("\ufeff")
    match = _FRONTMATTER_RE.match(text)
    if match is None:
        raise SkillError(
            "no YAML frontmatter: SKILL.md must start with a '---' line, then name and "
            "description, then a closing '---' line",
            path=path,
        )
    return match.group(1), text[match.end() :]


class BodyCache:
    """SKILL.md bodies by path, least recently used out first, re-read when a file changes.

    Thread-safe (the event loop and ``abody``'s worker threads share it).

    Args:
        max_bytes: total characters of bodies kept (default 64 MiB; the 934-skill reference
            corpus is 7.9 MB in all).
        max_entries: bodies kept at most.
        check_changes: ``stat`` the file on every read and re-read it when its size, mtime
            or inode changed; False trusts the cache until :meth:`clear` (no I/O at all).
    """

    def __init__(
        self,
        *,
        max_bytes: int = 64 << 20,
        max_entries: int = 100_000,
        check_changes: bool = True,
    ):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.check_changes = check_changes
        self._bodies: OrderedDict[str, tuple[str, Stamp]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Reads from disk so far (a warm cache stops counting).
        self.misses = 0

    def __len__(self) -> int:
        return len(self._bodies)

    def loader(self, path: Path, max_bytes: int = MAX_SKILL_BYTES) -> BodyLoader:
        """The ``load_body`` callable for the skill whose SKILL.md is ``path``."""
        return BodyLoader(self, path, max_bytes)

    def peek(self, path: Path) -> str | None:
        """The cached body of ``path`` if it is still current, else None (never reads it)."""
        key = str(path)
        with self._lock:
            entry = self._bodies.get(key)
        if entry is None:
            return None
        if self.check_changes:
            try:
                if _stamp(path.stat()) != entry[1]:
                    return None
            except OSError:
                return None
        with self._lock:
            if key in self._bodies:
                self._bodies.move_to_end(key)
        return entry[0]

    def get(self, path: Path, max_bytes: int = MAX_SKILL_BYTES) -> str:
        """The body of ``path``: from the cache if current, else read (and kept).

        Raises:
            SkillError: the file is unreadable, too large, not UTF-8 or has no frontmatter.
        """
        body = self.peek(path)
        if body is not None:
            return body
        try:
            text, stamp = read_skill_file(path, max_bytes=max_bytes)
        except OSError as exc:
            raise SkillError(f"cannot read SKILL.md: {exc}", path=str(path)) from exc
        body = split_text(text, path=str(path))[1]
        self.put(path, body, stamp)
        self.misses += 1
        return body

    def put(self, path: Path, body: str, stamp: Stamp) -> None:
        """Keep ``body`` for ``path`` as read at ``stamp`` (e.g. while indexing)."""
        key = str(path)
        if len(body) > self.max_bytes or self.max_entries <= 0:
            return
        with self._lock:
            old = self._bodies.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0])
            self._bodies[key] = (body, stamp)
            self._bytes += len(body)
            while self._bytes > self.max_bytes or len(self._bodies) > self.max_entries:
                _, (dropped, _) = self._bodies.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        """Forget every body (e.g. after a library reload)."""
        with self._lock:
            self._bodies.clear()
            self._bytes = 0


class BodyLoader:
    """A skill's ``load_body``: its body through a :class:`BodyCache` (see the module doc)."""

    __slots__ = ("cache", "max_bytes", "path")

    def __init__(self, cache: BodyCache, path: Path, max_bytes: int = MAX_SKILL_BYTES):
        self.cache = cache
        self.path = path
        self.max_bytes = max_bytes

    def __call__(self) -> str:
        return self.cache.get(self.path, self.max_bytes)

    def cached(self) -> str | None:
        """The body if the cache holds it current; None means a read is needed."""
        return self.cache.peek(self.path)

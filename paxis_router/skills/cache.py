"""A folder's library, saved once under a cache directory and reused until the folder changes.

The cache key is a fingerprint of the folder: every directory's mtime (a file added, removed or
renamed changes its directory's) and every SKILL.md's size, mtime and inode, with the library's
settings. Loading a saved library memory-maps its arrays: the 934-skill reference corpus loads
in a fraction of the time it takes to parse and index (``paxis skills search`` uses this).
Bodies are still read from the folder, through the library's body cache.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "csv").mkdir()
    >>> text = "---\\nname: csv\\ndescription: CSV files.\\n---\\n"
    >>> _ = (root / "csv" / "SKILL.md").write_text(text)
    >>> cache = root / ".cache"
    >>> lib, reused = load_or_build(root / "csv", cache_dir=cache)
    >>> reused, len(lib)
    (False, 1)
    >>> load_or_build(root / "csv", cache_dir=cache)[1]
    True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from paxis_router.errors import SkillError
from paxis_router.skills.library import SkillLibrary, default_index

if TYPE_CHECKING:
    from collections.abc import Callable

    from paxis_router.skills.bm25 import SkillIndex
    from paxis_router.skills.rerank import EmbeddingReranker

logger = logging.getLogger(__name__)

_KEY_VERSION = 1


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/paxis/skills``, else ``~/.cache/paxis/skills``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paxis" / "skills"


def fingerprint(root: Path, settings: dict[str, object]) -> str:
    """A hex digest that changes when any skill folder or SKILL.md under ``root`` changes, or
    when ``settings`` do."""
    digest = hashlib.sha256(json.dumps([_KEY_VERSION, settings], sort_keys=True).encode())
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        stat = Path(folder).stat()
        digest.update(f"d {os.path.relpath(folder, root)} {stat.st_mtime_ns}\n".encode())
        if "SKILL.md" in files:
            s = (Path(folder) / "SKILL.md").stat()
            digest.update(f"f {s.st_size} {s.st_mtime_ns} {s.st_ino}\n".encode())
    return digest.hexdigest()


def load_or_build(
    root: str | Path,
    *,
    cache_dir: Path | None = None,
    strict: bool = False,
    make_index: Callable[[], SkillIndex] = default_index,
    reranker: EmbeddingReranker | None = None,
    use_cache: bool = True,
) -> tuple[SkillLibrary, bool]:
    """The library of the skills under ``root``, and whether it came from the cache.

    A cached copy is used when its fingerprint matches; otherwise the folder is loaded
    (``strict``: as :meth:`SkillLibrary.from_dir`) and saved for next time, replacing older
    copies of the same folder. ``use_cache=False`` neither reads nor writes the cache.

    Raises:
        SkillError: ``root`` is not a directory, or (strict) a SKILL.md is invalid.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise SkillError("not a directory of skills", path=str(root))
    index = make_index()
    settings: dict[str, object] = {"index": index.config(), "strict": strict}
    if not use_cache:
        lib = SkillLibrary.from_dir(root_path, index=index, strict=strict, reranker=reranker)
        return lib, False
    base = (cache_dir or default_cache_dir()) / hashlib.sha256(str(root_path).encode()).hexdigest()[
        :16
    ]
    key = fingerprint(root_path, settings)[:32]
    target = base / key
    if (target / "skills.json").is_file():
        try:
            lib = SkillLibrary.load(target, reranker=reranker)
            logger.info("%s: reusing the saved index %s", root_path, target)
            return lib, True
        except (SkillError, OSError, ValueError, KeyError) as exc:
            logger.info("cached library unusable (%s); rebuilding", exc)
    lib = SkillLibrary.from_dir(root_path, index=index, strict=strict, reranker=reranker)
    try:
        _store(lib, base, target)
        logger.info("%s: indexed %d skills, saved to %s", root_path, len(lib), target)
    except OSError as exc:  # a read-only cache: still answer, just slower next time
        logger.warning("could not save the skills index to %s: %s", target, exc)
    return lib, False


def _store(lib: SkillLibrary, base: Path, target: Path) -> None:
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".build-", dir=base))
    try:
        lib.save(scratch / "lib")
        if target.exists():
            shutil.rmtree(target)
        (scratch / "lib").replace(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for old in base.iterdir():  # older fingerprints of the same folder
        if old != target and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)

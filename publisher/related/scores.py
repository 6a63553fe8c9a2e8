"""The index's scoring: term weights, the article vectors, and the scores of any rows against any columns.

Every score comes out of the same float32 operations in the same order whichever
block of rows or columns holds it (each vector's entries in alphabetical term
order, no BLAS), and score(i, j) is the very same float as score(j, i): what lets
``publisher.related.pairs`` score each pair once and ``publisher.related.update``
reuse a row's scores for its columns. ``publisher.related.rank`` writes the same
score out plainly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from publisher.related.terms import RelatedParams, grid

FEW_ROWS = 8  # up to this many rows are scored without transposing X first


def term_weights(
    ids: np.ndarray, counts: np.ndarray, caps: np.ndarray, n: int, width: int, params: RelatedParams
) -> np.ndarray:
    """Per term id: idf x proper-noun weight, 0 for terms too rare or too common to count."""
    p = params
    df = np.bincount(ids, minlength=width)
    total = np.bincount(ids, weights=counts, minlength=width)
    capital = np.bincount(ids, weights=caps, minlength=width)
    max_df = p.max_df * n if n >= 20 else n
    min_df = p.min_df if n >= 20 else 1
    keep = (df >= min_df) & (df <= max_df)
    # idf from counts rounded down to a ~9% grid: one article more or less rarely moves a
    # term's weight, so an edit or a new article rescores few rows (exactly, as a fit would)
    idf = np.log((1 + grid(np.array([n]))[0]) / (1 + grid(df))) + 1.0
    proper = capital > p.proper_share * np.maximum(total, 1)
    return np.where(keep, idf * np.where(proper, p.proper_weight, 1.0), 0.0).astype(np.float32)


def term_columns(terms: list[str]) -> np.ndarray:
    """Term id -> its place in alphabetical order (the column of the vectors)."""
    column = np.empty(len(terms), dtype=np.int32)
    column[np.argsort(np.array(terms, dtype=object), kind="stable")] = np.arange(len(terms))
    return column


def vectors(
    indptr: np.ndarray, ids: np.ndarray, counts: np.ndarray, weight: np.ndarray, column: np.ndarray
) -> sparse.csr_matrix:
    """L2-normalised rows of sublinear tf x weight, columns in alphabetical term order.

    Each row's entries are then in alphabetical order whatever else the archive
    holds, so a dot product always adds the same products in the same order.
    """
    n, width = len(indptr) - 1, len(column)
    data = (np.float32(1) + np.log(counts.astype(np.float32))) * weight[ids]
    row = np.repeat(np.arange(n), np.diff(indptr))
    live = data != 0
    data, row, cols = data[live], row[live], column[ids[live]]
    norm = np.sqrt(np.bincount(row, weights=data.astype(np.float64) ** 2, minlength=n))
    data = data / np.where(norm > 0, norm, 1.0).astype(np.float32)[row]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n))])
    return sparse.csr_matrix((data, cols, ptr), shape=(n, max(1, width)))


@dataclass
class Scorer:
    """What scoring reads: the vectors, the tags and the dates. Made for a fit or an update, then dropped."""

    params: RelatedParams
    x: sparse.csr_matrix
    tags: sparse.csr_matrix
    ntags: np.ndarray
    days: np.ndarray
    xt: sparse.csr_matrix | None = None  # X transposed, made once when many rows are to be scored

    @classmethod
    def build(
        cls, params: RelatedParams, x: sparse.csr_matrix, tags: list[frozenset[str]], days: np.ndarray
    ) -> Scorer:
        n = len(tags)
        flat = [t for ts in tags for t in ts]
        names = {t: j for j, t in enumerate(sorted(set(flat)))}
        per_row = np.fromiter(map(len, tags), dtype=np.int64, count=n)
        tcol = np.fromiter(map(names.__getitem__, flat), dtype=np.int32, count=len(flat))
        tptr = np.concatenate([[0], np.cumsum(per_row)])
        shape = (n, max(1, len(names)))
        incidence = sparse.csr_matrix((np.ones(len(flat), np.float32), tcol, tptr), shape=shape)
        return cls(params, x, incidence, per_row.astype(np.float32), days)

    def transpose(self) -> None:
        """Make X transposed (before threads share the scorer): many rows then score faster."""
        if self.xt is None:
            self.xt = self.x.T.tocsr()

    def scores(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Scores of ``rows`` against ``cols`` (sorted; default all), self pairs at -inf.

        Element (i, j) comes out of the same float32 operations whichever block holds it.
        """
        every = np.arange(self.x.shape[0]) if cols is None else cols
        if cols is not None:
            product = self.x[rows] @ self.x[cols].T.tocsr()
        elif self.xt is not None:
            product = self.x[rows] @ self.xt
        else:
            # a few rows: cheaper than transposing X, and the very same floats (each
            # element sums the same products over the shared terms in the same order)
            product = (self.x @ self.x[rows].T).T
        s = np.asarray(product.toarray(), dtype=np.float32)
        if self.params.tag_weight and self.tags.nnz:
            self._blend_tags(s, rows, every)
        if self.params.recency_weight:
            self._age(s, rows, every)
        pos = np.searchsorted(every, rows)
        mine = (pos < len(every)) & (every[np.minimum(pos, len(every) - 1)] == rows)
        s[np.flatnonzero(mine), pos[mine]] = -np.inf
        return s

    def _blend_tags(self, s: np.ndarray, rows: np.ndarray, every: np.ndarray) -> None:
        """Where both have tags: (1 - w) x score + w x Jaccard overlap of the tags."""
        w = np.float32(self.params.tag_weight)
        nq, nc = self.ntags[rows], self.ntags[every]
        if (nq > 0).all() and (nc > 0).all():
            s *= np.float32(1) - w  # the same product as below, without a mask the size of s
        else:
            s *= np.where((nq > 0)[:, None] & (nc > 0)[None, :], np.float32(1) - w, np.float32(1))
        inter = (self.tags[rows] @ self.tags[every].T).tocoo()
        r, c, v = inter.row, inter.col, inter.data
        s[r, c] += w * (v / (nq[r] + nc[c] - v))

    def _age(self, s: np.ndarray, rows: np.ndarray, every: np.ndarray) -> None:
        """Times 1 - recency_weight x gap / (gap + half-life), in place and in float32.

        The float64 difference is rounded once to float32: no float64 array the size of s.
        """
        p = self.params
        gap = np.empty(s.shape, dtype=np.float32)
        np.subtract(self.days[rows][:, None], self.days[every][None, :], out=gap, casting="same_kind")
        np.abs(gap, out=gap)
        spread = gap + np.float32(p.half_life_days)
        np.divide(gap, spread, out=gap)
        gap *= -np.float32(p.recency_weight)
        gap += np.float32(1)
        s *= gap

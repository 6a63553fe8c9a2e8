"""Each article's exact best candidates, and ranking rows against every column to find them.

A row keeps its best m = k + slack columns by (score desc, slug), and a bound
(-score, slug) that every column not listed sorts after: enough for an edit to
be merged in without scoring the row again (``publisher.related.update``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from publisher.related.scores import FEW_ROWS, Scorer

T = TypeVar("T")
Best = list[tuple[float, int]]  # (-score, column), best first


@dataclass
class Candidates:
    """Per row: columns (-1 pads), -scores (+inf pads), the bound (+inf: none) and the picks."""

    k: int
    m: int
    min_score: float
    slugs: list[str]  # row order is slug order (it breaks ties)
    col: np.ndarray
    neg: np.ndarray
    bound_neg: np.ndarray
    bound_slug: list[str]
    top: dict[str, tuple[str, ...]]

    @classmethod
    def empty(cls, slugs: list[str], k: int, m: int, min_score: float) -> Candidates:
        n = len(slugs)
        return cls(
            k,
            m,
            min_score,
            slugs,
            np.full((n, m), -1, dtype=np.int32),
            np.full((n, m), np.inf, dtype=np.float32),
            np.full(n, np.inf, dtype=np.float32),
            [""] * n,
            {},
        )

    def is_full(self, best: Best) -> bool:
        """A complete best m (of more columns than m): its last one is the row's bound."""
        return len(best) == self.m and len(self.slugs) - 1 > self.m

    def set_row(self, i: int, best: Best, *, full: bool, bound: tuple[float, str] | None = None) -> None:
        """Store row i's candidates; ``full``: the last one is the bound (else ``bound``, or none)."""
        self.col[i] = -1
        self.neg[i] = np.inf
        if best:
            self.neg[i, : len(best)] = [neg for neg, _ in best]
            self.col[i, : len(best)] = [col for _, col in best]
        if full:
            bound = (best[-1][0], self.slugs[best[-1][1]])
        self.bound_neg[i], self.bound_slug[i] = bound if bound is not None else (np.inf, "")
        self.top[self.slugs[i]] = self.picks(i)

    def picks(self, i: int) -> tuple[str, ...]:
        low, k = self.min_score, self.k
        cols, negs = self.col[i, :k].tolist(), self.neg[i, :k].tolist()
        return tuple(self.slugs[c] for c, neg in zip(cols, negs, strict=True) if c >= 0 and -neg >= low)


def best_of(row: np.ndarray, cols: np.ndarray, m: int) -> Best:
    """The best ``m`` of ``cols`` by (score desc, index asc) as (-score, column)."""
    vals = row[cols]
    live = np.isfinite(vals)
    pairs = sorted(zip((-vals[live]).tolist(), cols[live].tolist(), strict=True))
    return pairs[:m]


def rank_block(s: np.ndarray, m: int) -> list[Best]:
    """Best m per row of the scores ``s``: the m-th best of 64 group maxima bounds the m-th best
    score from below, so only the few columns at or above it need sorting (ties included)."""
    rows, n = s.shape
    m = min(m, n)
    groups = 64
    if m <= 0 or n < 4 * groups:
        return [best_of(s[r], np.arange(n), m) for r in range(rows)]
    width = -(-n // groups)
    padded = np.full((rows, groups * width), -np.inf, dtype=np.float32)
    padded[:, :n] = s
    tops = padded.reshape(rows, groups, width).max(axis=2)
    low = -np.partition(-tops, m - 1, axis=1)[:, m - 1]
    r, c = np.nonzero(s >= low[:, None])
    cuts = np.searchsorted(r, np.arange(rows + 1))
    return [best_of(s[i], c[cuts[i] : cuts[i + 1]], m) for i in range(rows)]


def blocks(rows: np.ndarray, size: int) -> list[np.ndarray]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def map_blocks(fn: Callable[[np.ndarray], T], parts: list[np.ndarray], jobs: int) -> list[T]:
    """``fn`` over the blocks, on ``jobs`` threads (scipy and numpy release the GIL)."""
    if jobs > 1 and len(parts) > 1:
        with ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(fn, parts))
    return [fn(b) for b in parts]


def rank_rows(
    scorer: Scorer, cands: Candidates, rows: np.ndarray, jobs: int, keep: list[np.ndarray] | None = None
) -> None:
    """Exact best m of each row against every column, in blocks over ``jobs`` threads.

    ``keep`` collects the rows' scores (for the carry-over: score(i, j) == score(j, i)).
    """
    if len(rows) > FEW_ROWS:
        scorer.transpose()  # once, before the threads share it

    def work(block: np.ndarray) -> tuple[list[Best], np.ndarray | None]:
        s = scorer.scores(block)
        return rank_block(s, cands.m), s if keep is not None else None

    parts = blocks(rows, scorer.params.chunk)
    for block, (best_rows, scores) in zip(parts, map_blocks(work, parts, jobs), strict=True):
        if keep is not None and scores is not None:
            keep.append(scores)
        for i, best in zip(block.tolist(), best_rows, strict=True):
            cands.set_row(i, best, full=cands.is_full(best))

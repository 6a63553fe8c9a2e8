"""Ranking every row at once, scoring each pair of articles once.

A full fit used to score every row against every column: n x n scores, each
pair twice, since score(i, j) and score(j, i) are the very same float (see
``publisher.related.update``). Here the rows go in blocks, and a block is
scored only against itself and the columns after it. Each row's best m come
from two parts over disjoint columns: its own block's scores (columns from
the block's start on), and the best m of every earlier block's scores read
the other way round (columns before it). The best m by (score desc, column)
of the union is the best m of the parts' best m, ties included, so the lists
are exactly those ``lists.rank_rows`` gives (a test holds the two
to each other), at about half the scoring.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from publisher.related.lists import Best, Candidates, rank_block
from publisher.related.scores import Scorer

Backward = tuple[int, np.ndarray, np.ndarray]  # (first row, -score, column) of the rows after a block


def rank_all(scorer: Scorer, cands: Candidates, jobs: int) -> None:
    """Set every row's best m candidates (as ``rank_rows`` over every row would)."""
    n, m = len(cands.slugs), cands.m
    size = scorer.params.chunk
    starts = list(range(0, n, size))
    back_neg = np.full((n, m), np.inf, dtype=np.float32)  # best m among the columns before a row's block
    back_col = np.full((n, m), n, dtype=np.int64)  # n pads (it sorts after every column)

    def work(start: int) -> tuple[list[Best], Backward]:
        return _block(scorer, start, min(start + size, n), m)

    if jobs > 1 and len(starts) > 1:
        with ThreadPoolExecutor(jobs) as pool:
            results = pool.map(work, starts)
            _merge_all(cands, starts, results, back_neg, back_col)
    else:
        _merge_all(cands, starts, map(work, starts), back_neg, back_col)


def _merge_all(
    cands: Candidates,
    starts: list[int],
    results: Iterable[tuple[list[Best], Backward]],
    back_neg: np.ndarray,
    back_col: np.ndarray,
) -> None:
    """In block order: a block's rows are final once every earlier block is merged."""
    n, m = len(cands.slugs), cands.m
    for start, (forward, (first, neg, col)) in zip(starts, results, strict=True):
        for r, best in enumerate(forward):
            i = start + r
            earlier = [
                (x, c) for x, c in zip(back_neg[i].tolist(), back_col[i].tolist(), strict=True) if c < n
            ]
            merged = sorted(earlier + best)[:m]
            cands.set_row(i, merged, full=cands.is_full(merged))
        if first < n:
            _merge_into(back_neg, back_col, first, neg, col, m)


def _merge_into(
    back_neg: np.ndarray, back_col: np.ndarray, first: int, neg: np.ndarray, col: np.ndarray, m: int
) -> None:
    """Rows from ``first`` on keep the best m of what they had and of the new candidates."""
    negs = np.concatenate([back_neg[first:], neg], axis=1)
    cols = np.concatenate([back_col[first:], col], axis=1)
    order = np.lexsort((cols, negs), axis=-1)[:, :m]
    back_neg[first:] = np.take_along_axis(negs, order, axis=1)
    back_col[first:] = np.take_along_axis(cols, order, axis=1)


def _block(scorer: Scorer, start: int, end: int, m: int) -> tuple[list[Best], Backward]:
    """Rows start..end against columns start..n: the rows' own best, and the best m of these
    rows for every later row (its scores against them, read the other way round)."""
    n = scorer.x.shape[0]
    rows = np.arange(start, end)
    s = scorer.scores(rows, np.arange(start, n))
    forward = [[(x, c + start) for x, c in best] for best in rank_block(s, m)]
    later = np.ascontiguousarray(s[:, end - start :].T)  # later rows x this block's rows
    del s
    if not len(later):
        return forward, (n, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64))
    minus = np.negative(later, out=later)
    take = min(m, minus.shape[1])
    # each later row's take-th best score against this block, then every column at least as
    # good: exactly take of them unless scores tie at that edge (then which ones is decided
    # by column, row by row: rare, exact ties only)
    edge = np.partition(minus, take - 1, axis=1)[:, take - 1]
    good = minus <= edge[:, None]
    crowded = good.sum(axis=1) > take
    good[crowded] = False
    r, c = np.nonzero(good)
    neg = np.empty((len(minus), take), dtype=np.float32)
    col = np.empty((len(minus), take), dtype=np.int64)
    ok = ~crowded
    neg[ok] = minus[r, c].reshape(-1, take)
    col[ok] = (c + start).reshape(-1, take)
    for i in np.flatnonzero(crowded).tolist():
        order = np.lexsort((np.arange(minus.shape[1]), minus[i]))[:take]
        neg[i], col[i] = minus[i, order], order + start
    order = np.lexsort((col, neg), axis=-1)
    return forward, (end, np.take_along_axis(neg, order, axis=1), np.take_along_axis(col, order, axis=1))

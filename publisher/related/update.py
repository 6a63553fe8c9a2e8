"""Carrying an unchanged article's candidates over an edit, so an update equals a fit.

Each row keeps its exact best m columns and a bound every other column sorts
after (by score, then slug). When some rows change (stale), an unchanged
row's scores against the other unchanged rows are the very floats they were,
so only its scores against the stale columns are needed: and those are the
stale rows' own scores read the other way round, since every step of a score
is symmetric in the pair (a dot product over the shared terms in alphabetical
order, sums and differences of the same two numbers). Merged with the
candidates it kept, they give the row's exact new best, unless too few known
candidates are left, and then the row is ranked again in full.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from publisher.related.lists import Best, Candidates, blocks, map_blocks, rank_rows
from publisher.related.scores import Scorer


@dataclass
class _Kept:
    """The unchanged rows: new and old row numbers, and what their old lists carry over."""

    rows: np.ndarray
    olds: np.ndarray
    cc: np.ndarray  # kept candidates' new columns (-1: none)
    cn: np.ndarray  # and their -scores
    gone: np.ndarray  # candidates removed or stale (a stale one comes back as a hit if it still sorts high)
    b_neg: np.ndarray  # the old bound: every column not listed sorts after (b_neg, b_slug)
    b_slugs: list[str]


def carry_over(
    scorer: Scorer,
    cands: Candidates,
    old: Candidates,
    where: dict[str, int],
    same: dict[str, int],
    stale: np.ndarray,
    jobs: int,
    stale_scores: np.ndarray | None,
) -> int:
    """Every unchanged row keeps its candidates, merged with its scores against the stale rows.

    ``cands`` holds the stale rows ranked already; ``stale_scores`` their scores (or None: scored
    here). Returns how many unchanged rows had to be ranked again in full.
    """
    kept = _kept(old, where, same, stale, len(cands.slugs))
    rows = kept.rows
    if stale_scores is not None:
        against = stale_scores[:, rows].T
    elif len(rows) and len(stale):
        against = np.vstack(map_blocks(lambda b: scorer.scores(b, stale), blocks(rows, 4096), jobs))
    else:
        against = np.zeros((len(rows), len(stale)), np.float32)
    # a stale column enters a row's list if it sorts before the row's bound (score, then slug)
    b_pos = np.fromiter(  # where each bound's slug sorts among the slugs (most are still there)
        (where[b] if b in where else bisect.bisect_left(cands.slugs, b) for b in kept.b_slugs),
        dtype=np.int64,
        count=len(kept.b_slugs),
    )
    minus = -against
    b_neg = kept.b_neg[:, None]
    hit = (minus < b_neg) | ((minus == b_neg) & (stale[None, :] < b_pos[:, None]))
    hit &= np.isfinite(against)
    touched = kept.gone.any(axis=1) | hit.any(axis=1)
    cands.col[rows], cands.neg[rows] = np.where(kept.cc < 0, -1, kept.cc).astype(np.int32), kept.cn
    cands.bound_neg[rows] = kept.b_neg
    row_list, old_list = rows.tolist(), kept.olds.tolist()
    for i, b in zip(row_list, kept.b_slugs, strict=True):
        cands.bound_slug[i] = b
    for r in np.flatnonzero(~touched).tolist():
        cands.top[cands.slugs[row_list[r]]] = old.top[old.slugs[old_list[r]]]
    t = np.flatnonzero(touched)
    redo = _merge_touched(cands, kept, t, minus, hit, stale) if len(t) else []
    if redo:
        rank_rows(scorer, cands, np.array(redo, dtype=np.int64), jobs)
    return len(redo)


def _kept(old: Candidates, where: dict[str, int], same: dict[str, int], stale: np.ndarray, n: int) -> _Kept:
    """The rows not stale (all unchanged), with their old candidates renumbered to the new rows."""
    new_of_old = np.full(len(old.slugs) + 1, -1, dtype=np.int64)  # last slot: the -1 padding
    kept_old = np.fromiter(same.values(), dtype=np.int64, count=len(same))
    kept_new = np.fromiter(map(where.__getitem__, same), dtype=np.int64, count=len(same))
    new_of_old[kept_old] = kept_new
    old_of_new = np.full(n, -1, dtype=np.int64)
    old_of_new[kept_new] = kept_old
    rows = np.setdiff1d(np.arange(n), stale)
    olds = old_of_new[rows]
    cc = new_of_old[old.col[olds]]
    gone = (cc < 0) & (old.col[olds] >= 0) | np.isin(cc, stale)
    b_slugs = [old.bound_slug[o] for o in olds.tolist()]
    return _Kept(rows, olds, cc, old.neg[olds], gone, old.bound_neg[olds], b_slugs)


def _merge_touched(
    cands: Candidates, kept: _Kept, t: np.ndarray, minus: np.ndarray, hit: np.ndarray, stale: np.ndarray
) -> list[int]:
    """Rows ``t`` (of ``kept``): kept candidates + the best m hits, sorted by (-score, column).

    Returns the rows left with too few known candidates to be sure of their top k.
    """
    n, m = len(cands.slugs), cands.m
    gone, cc, cn = kept.gone[t], kept.cc[t], kept.cn[t]
    hneg = np.where(hit[t], minus[t], np.inf).astype(np.float32)
    take = min(m, hneg.shape[1])
    part = (
        np.argpartition(hneg, take - 1, axis=1)[:, :take]
        if take < hneg.shape[1]
        else np.tile(np.arange(take), (len(t), 1))
    )
    hits = np.take_along_axis(hneg, part, axis=1)
    edge = hits.max(axis=1, initial=-np.inf)
    # finite hits tied at the edge were cut: merge those rows by hand
    crowded = np.isfinite(edge) & ((hneg <= edge[:, None]).sum(axis=1) > take)
    negs = np.concatenate([np.where(gone, np.inf, cn), hits], axis=1)
    hit_cols = np.where(np.isfinite(hits), stale[part], n)
    cols = np.concatenate([np.where(gone | (cc < 0), n, cc), hit_cols], axis=1)
    order = np.lexsort((cols, negs), axis=-1)[:, :m]
    negs, cols = np.take_along_axis(negs, order, axis=1), np.take_along_axis(cols, order, axis=1)
    count = np.isfinite(negs).sum(axis=1)
    full_hits = (count == m) & ((~gone).sum(axis=1) + hit[t].sum(axis=1) > m)
    redo = []
    for j, r in enumerate(t.tolist()):
        if crowded[j]:
            best = _merge_by_hand(cands.m, kept.cn[r], kept.cc[r], kept.gone[r], minus[r], hit[r], stale)
        else:
            best = list(zip(negs[j, : count[j]].tolist(), cols[j, : count[j]].tolist(), strict=True))
        i, bound = int(kept.rows[r]), (float(kept.b_neg[r]), kept.b_slugs[r])
        if len(best) >= m and (crowded[j] or full_hits[j] or count[j] >= m):
            cands.set_row(i, best[:m], full=True)
        else:
            cands.set_row(i, best, full=False, bound=bound if math.isfinite(bound[0]) else None)
        if len(best) < cands.k and math.isfinite(bound[0]) and -bound[0] >= cands.min_score:
            redo.append(i)  # too few known candidates left to be sure of the top k
    return redo


def _merge_by_hand(
    m: int,
    cn: np.ndarray,
    cc: np.ndarray,
    gone: np.ndarray,
    minus: np.ndarray,
    hit: np.ndarray,
    stale: np.ndarray,
) -> Best:
    """One row's merge when hits tie at the edge of the best m (rare: exact ties only)."""
    kept = [(float(x), int(c)) for x, c, g in zip(cn, cc, gone, strict=True) if c >= 0 and not g]
    kept += [(float(minus[c]), int(stale[c])) for c in np.flatnonzero(hit).tolist()]
    kept.sort()
    return kept[:m]

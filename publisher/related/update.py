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
from typing import Any

import numpy as np

from publisher.related.index import RelatedIndex


def carry_over(
    idx: RelatedIndex,
    stale: np.ndarray,
    same: dict[str, int],
    old: tuple[Any, ...],
    jobs: int,
    stale_scores: np.ndarray | None,
) -> None:
    """Every unchanged row keeps its candidates, merged with its scores against the stale rows."""
    old_slugs, col, neg, bneg, bslug, old_top, _ = old
    n, m, k = len(idx.slugs), idx.m, idx.k
    new_of_old = np.full(len(old_slugs) + 1, -1, dtype=np.int64)  # last slot: the -1 padding
    where = idx._row_of()
    kept_old = np.fromiter(same.values(), dtype=np.int64, count=len(same))
    kept_new = np.fromiter(map(where.__getitem__, same), dtype=np.int64, count=len(same))
    new_of_old[kept_old] = kept_new
    old_of_new = np.full(n, -1, dtype=np.int64)
    old_of_new[kept_new] = kept_old
    rows = np.setdiff1d(np.arange(n), stale)
    olds = old_of_new[rows]
    cc = new_of_old[col[olds]]
    cn = neg[olds]
    gone = (cc < 0) & (col[olds] >= 0) | np.isin(cc, stale)
    if stale_scores is not None:
        against = stale_scores[:, rows].T
    elif len(rows):
        against = np.vstack(idx._map(lambda b: idx._scores(b, stale), idx._blocks(rows, 4096), jobs))
    else:
        against = np.zeros((0, len(stale)), np.float32)
    # a stale column enters a row's list if it sorts before the row's bound (score, then slug)
    b_neg = bneg[olds]
    b_slugs = [bslug[o] for o in olds.tolist()]
    b_pos = np.fromiter(  # where each bound's slug sorts among the slugs (most are still there)
        (where[b] if b in where else bisect.bisect_left(idx.slugs, b) for b in b_slugs),
        dtype=np.int64,
        count=len(b_slugs),
    )
    minus = -against
    hit = (minus < b_neg[:, None]) | ((minus == b_neg[:, None]) & (stale[None, :] < b_pos[:, None]))
    hit &= np.isfinite(against)
    touched = gone.any(axis=1) | hit.any(axis=1)
    idx.cand_col[rows], idx.cand_neg[rows] = np.where(cc < 0, -1, cc).astype(np.int32), cn
    idx.bound_neg[rows] = b_neg
    row_list, old_list = rows.tolist(), olds.tolist()
    for i, b in zip(row_list, b_slugs, strict=True):
        idx.bound_slug[i] = b
    slugs, top = idx.slugs, idx.top
    for r in np.flatnonzero(~touched).tolist():
        top[slugs[row_list[r]]] = old_top[old_slugs[old_list[r]]]
    t = np.flatnonzero(touched)
    if not len(t):
        return
    # merge: kept candidates + the best m hits, sorted by (-score, column)
    hneg = np.where(hit[t], minus[t], np.inf).astype(np.float32)
    take = min(m, hneg.shape[1])
    part = (
        np.argpartition(hneg, take - 1, axis=1)[:, :take]
        if take < hneg.shape[1]
        else np.tile(np.arange(take), (len(t), 1))
    )
    edge = np.take_along_axis(hneg, part, axis=1).max(axis=1)
    # finite hits tied at the edge were cut: merge those rows by hand
    crowded = np.isfinite(edge) & ((hneg <= edge[:, None]).sum(axis=1) > take)
    negs = np.concatenate([np.where(gone[t], np.inf, cn[t]), np.take_along_axis(hneg, part, axis=1)], axis=1)
    cols = np.concatenate(
        [
            np.where(gone[t] | (cc[t] < 0), n, cc[t]),
            np.where(np.isfinite(np.take_along_axis(hneg, part, axis=1)), stale[part], n),
        ],
        axis=1,
    )
    order = np.lexsort((cols, negs), axis=-1)[:, :m]
    negs, cols = np.take_along_axis(negs, order, axis=1), np.take_along_axis(cols, order, axis=1)
    live = np.isfinite(negs)
    count = live.sum(axis=1)
    full_hits = (live[:, :m].sum(axis=1) == m) & ((~gone[t]).sum(axis=1) + hit[t].sum(axis=1) > m)
    redo = []
    for j, r in enumerate(t.tolist()):
        i = int(rows[r])
        if crowded[j]:
            best = _merge_by_hand(idx, cn[r], cc[r], gone[r], minus[r], hit[r], stale)
        else:
            best = list(zip(negs[j, : count[j]].tolist(), cols[j, : count[j]].tolist(), strict=True))
        bound = (float(b_neg[r]), bslug[olds[r]])
        if len(best) >= m and (crowded[j] or full_hits[j] or count[j] >= m):
            idx._set_row(i, best[:m], full=True)
        else:
            idx._set_row(i, best, full=False, bound=bound if math.isfinite(bound[0]) else None)
        if len(best) < k and math.isfinite(bound[0]) and -bound[0] >= idx.params.min_score:
            redo.append(i)  # too few known candidates left to be sure of the top k
    if redo:
        idx._rank_rows(np.array(redo, dtype=np.int64), jobs)


def _merge_by_hand(
    idx: RelatedIndex,
    cn: np.ndarray,
    cc: np.ndarray,
    gone: np.ndarray,
    minus: np.ndarray,
    hit: np.ndarray,
    stale: np.ndarray,
) -> list[tuple[float, int]]:
    kept = [(float(x), int(c)) for x, c, g in zip(cn, cc, gone, strict=True) if c >= 0 and not g]
    kept += [(float(minus[c]), int(stale[c])) for c in np.flatnonzero(hit).tolist()]
    kept.sort()
    return kept[: idx.m]

"""Carrying an unchanged article's candidates over an edit, so an update equals a fit.

Each row keeps its exact best m columns and a bound every other column sorts
after. When some rows change (stale), an unchanged row's scores against the
other unchanged rows are the same floats as before, so only its scores
against the stale columns are computed; merged with what it kept, they give
its exact new best, unless too few known candidates are left (then the row is
ranked again in full).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from publisher.related.index import RelatedIndex


def carry_over(
    idx: RelatedIndex, stale: np.ndarray, same: dict[str, int], old: tuple[Any, ...], jobs: int
) -> None:
    """Every unchanged row keeps its candidates, rescored only against the changed columns."""
    old_slugs, col, neg, bneg, bslug, old_top, _ = old
    n = len(idx.slugs)
    new_of_old = np.full(len(old_slugs) + 1, -1, dtype=np.int64)  # last slot: the -1 padding
    where = {s: i for i, s in enumerate(idx.slugs)}
    for s, o in same.items():
        new_of_old[o] = where[s]
    rows = np.flatnonzero(~np.isin(np.arange(n), stale))
    olds = np.array([same[idx.slugs[i]] for i in rows], dtype=np.int64)
    cc = new_of_old[col[olds]]
    cn = neg[olds]
    gone = (cc < 0) & (col[olds] >= 0) | np.isin(cc, stale)
    against = (
        np.vstack(idx._map(lambda b: idx._scores(b, stale), idx._blocks(rows, 4096), jobs))
        if len(rows)
        else np.zeros((0, len(stale)), np.float32)
    )
    hit = -against <= bneg[olds][:, None]
    touched = gone.any(axis=1) | hit.any(axis=1)
    idx.cand_col[rows], idx.cand_neg[rows] = cc.astype(np.int32), cn
    idx.bound_neg[rows] = bneg[olds]
    for r, i in enumerate(rows.tolist()):
        idx.bound_slug[i] = bslug[olds[r]]
        if not touched[r]:
            idx.top[idx.slugs[i]] = old_top[old_slugs[olds[r]]]
    redo = []
    for r in np.flatnonzero(touched).tolist():
        i = int(rows[r])
        bound = (float(bneg[olds[r]]), bslug[olds[r]])
        kept = [(float(x), int(c)) for x, c, g in zip(cn[r], cc[r], gone[r], strict=True) if c >= 0 and not g]
        for c in np.flatnonzero(hit[r]).tolist():
            key = (float(-against[r, c]), idx.slugs[stale[c]])
            if math.isfinite(key[0]) and (not math.isfinite(bound[0]) or key < bound):
                kept.append((key[0], int(stale[c])))
        kept.sort()
        if len(kept) >= idx.m:
            idx._set_row(i, kept[: idx.m], full=True)
        else:
            idx._set_row(i, kept, full=False, bound=bound if math.isfinite(bound[0]) else None)
        if len(kept) < idx.k and math.isfinite(bound[0]) and -bound[0] >= idx.params.min_score:
            redo.append(i)  # too few known candidates left to be sure of the top k
    if redo:
        idx._rank_rows(np.array(redo, dtype=np.int64), jobs)

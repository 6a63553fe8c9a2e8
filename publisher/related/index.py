"""The related-news index: term counts per article and each article's exact best candidates.

See ``publisher.related`` for the score and why an update equals a fit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from scipy import sparse

from publisher.models import Article
from publisher.packing import pack, pack_groups, unpack, unpack_groups
from publisher.related.terms import DEFAULT, DocTerms, RelatedParams, doc_terms, grid, keys_of

T = TypeVar("T")
FEW_ROWS = 8  # up to this many rows are scored without transposing X first


@dataclass
class RelatedIndex:
    """Every article's terms and its exact best candidates: enough to update exactly."""

    params: RelatedParams
    k: int
    slugs: list[str] = field(default_factory=list)  # sorted: index order is slug order (breaks ties)
    keys: list[str] = field(default_factory=list)  # doc_key per row
    terms: list[str] = field(default_factory=list)  # term id -> term (ids only grow)
    term_ids: dict[str, int] = field(default_factory=dict)
    column: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # term id -> column
    indptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))  # CSR rows over term ids
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    caps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    days: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tags: list[frozenset[str]] = field(default_factory=list)
    weight: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # per term id
    # Per row, the exact best m = k + slack columns by (score desc, slug): column (-1 pads), -score
    # (+inf pads), and the bound (-score, slug) every column not listed sorts after (+inf: none).
    cand_col: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    cand_neg: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    bound_neg: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    bound_slug: list[str] = field(default_factory=list)
    complete: bool = True  # every row ranked (False after fit(..., rank=some))
    rescored: int = 0  # rows ranked against every column by the last fit or update
    top: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _x: sparse.csr_matrix | None = field(default=None, repr=False)
    _xt: sparse.csr_matrix | None = field(default=None, repr=False)
    _tags: sparse.csr_matrix | None = field(default=None, repr=False)
    _ntags: np.ndarray | None = field(default=None, repr=False)
    _rows: tuple[list[str], dict[str, int]] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """What is kept between builds: not the matrices and lookups, cheap to make again.

        The string lists (tens of thousands of strings, pickled one by one) travel as a
        few joined strings instead: a third of the time to save and load the index.
        """
        state = dict(self.__dict__, _x=None, _xt=None, _tags=None, _ntags=None, _rows=None, term_ids=None)
        for name in ("ids", "counts", "caps"):  # a million entries each: the bulk of the file
            state[name] = _narrow(state[name])
        packed = {
            "slugs": pack(self.slugs),
            "keys": pack(self.keys),
            "terms": pack(self.terms),
            "bound_slug": pack(self.bound_slug),
            "tags": pack_groups(sorted(ts) for ts in self.tags),
            "top_slugs": pack(list(self.top)),
            "top_picks": pack_groups(self.top.values()),
        }
        if all(v is not None for v in packed.values()):  # no string held a separator
            for name in ("slugs", "keys", "terms", "bound_slug", "tags", "top"):
                state[name] = None
            state["_packed"] = packed
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        packed = state.pop("_packed", None)
        self.__dict__.update(state)
        if packed is not None:
            self.slugs = unpack(packed["slugs"])
            self.keys = unpack(packed["keys"])
            self.terms = unpack(packed["terms"])
            self.bound_slug = unpack(packed["bound_slug"])
            self.tags = [frozenset(g) for g in unpack_groups(packed["tags"])]
            picks = [tuple(g) for g in unpack_groups(packed["top_picks"])]
            self.top = dict(zip(unpack(packed["top_slugs"]), picks, strict=True))
        self.term_ids = {t: i for i, t in enumerate(self.terms)}
        for name in ("ids", "counts", "caps"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.int32))

    @property
    def m(self) -> int:
        return self.k + self.params.slack

    # ---- building ------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        articles: Sequence[Article],
        k: int,
        params: RelatedParams = DEFAULT,
        rank: Iterable[str] | None = None,
        *,
        terms: dict[str, DocTerms] | None = None,
        keys: dict[str, str] | None = None,
        jobs: int = 1,
        previous: RelatedIndex | None = None,
    ) -> RelatedIndex:
        """Fit on every published article; rank all of them, or only the slugs in ``rank``.

        ``terms`` may carry ``doc_terms`` already counted for some articles, and
        ``keys`` stand-ins for ``doc_key`` (by slug): any string that changes
        whenever the article's title, body, date or tags do (the build passes
        the source file's hash and the date, cheaper than hashing the text).
        ``previous`` lends the term counts of articles whose key it has.
        """
        pool = sorted((a for a in articles if not a.draft), key=lambda a: a.slug)
        idx = cls(params, k)
        new_keys = keys_of(pool, keys)
        reuse: dict[str, int] = {}
        if previous is not None and previous.params == params:
            for name in (
                "slugs",
                "keys",
                "terms",
                "term_ids",
                "column",
                "indptr",
                "ids",
                "counts",
                "caps",
                "days",
                "tags",
            ):
                setattr(idx, name, getattr(previous, name))
            reuse = previous._same(pool, new_keys)
        idx._load(pool, reuse, terms or {}, new_keys)
        idx.weight = idx._weights()
        idx._reset_lists()
        if rank is None:
            rows = np.arange(len(pool))
        else:
            where = {s: i for i, s in enumerate(idx.slugs)}
            rows = np.array(sorted(where[s] for s in set(rank) if s in where), dtype=np.int64)
            idx.complete = False
        idx._matrix()
        if rank is None:
            idx._rank_all(jobs)
        else:
            idx._rank_rows(rows, jobs)
        idx._drop()
        return idx

    def _load(
        self, pool: list[Article], reuse: dict[str, int], given: dict[str, DocTerms], keys: list[str]
    ) -> None:
        """Set the rows to ``pool``: rows named in ``reuse`` (slug -> old row) are copied, others counted."""
        old_of = np.array([reuse.get(a.slug, -1) for a in pool], dtype=np.int64)
        fresh: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for r in np.flatnonzero(old_of < 0).tolist():
            a = pool[r]
            words, cnt, cap = given.get(a.slug) or doc_terms(a, self.params)
            found = list(map(self.term_ids.get, words))
            if None in found:
                for j, w in enumerate(words):
                    if found[j] is None:
                        found[j] = self.term_ids[w] = len(self.terms)
                        self.terms.append(w)
            fresh[r] = (np.array(found, dtype=np.int32), cnt, cap)
        kept = old_of >= 0
        lengths = np.zeros(len(pool), dtype=np.int64)
        lengths[kept] = np.diff(self.indptr)[old_of[kept]]
        for r, part in fresh.items():
            lengths[r] = len(part[0])
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        runs = _runs(old_of)
        arrays = []
        for old, pos in ((self.ids, 0), (self.counts, 1), (self.caps, 2)):
            new = np.empty(int(indptr[-1]), dtype=np.int32)
            if runs is not None:  # an edit: the kept rows are a few stretches of the old order
                for first, end, o in runs:
                    new[indptr[first] : indptr[end]] = old[self.indptr[o] : self.indptr[o + end - first]]
            else:  # position in the old arrays of every new entry, gathered in one go
                src = np.repeat(np.where(kept, self.indptr[np.maximum(old_of, 0)] - indptr[:-1], 0), lengths)
                src += np.arange(int(indptr[-1]))
                mask = np.repeat(kept, lengths)
                new[mask] = old[src[mask]]
            for r, part in fresh.items():
                new[indptr[r] : indptr[r + 1]] = part[pos]
            arrays.append(new)
        days = np.empty(len(pool))
        days[kept] = self.days[old_of[kept]]
        old_tags = self.tags
        tags: list[frozenset[str]] = [old_tags[o] if o >= 0 else frozenset() for o in old_of.tolist()]
        for r in fresh:
            a = pool[r]
            days[r] = a.date.timestamp() / 86400.0
            tags[r] = frozenset(t.casefold() for t in a.tags)
        self.indptr, (self.ids, self.counts, self.caps) = indptr, arrays
        self.slugs = [a.slug for a in pool]
        self.keys = keys
        self.days, self.tags = days, tags

    def _reset_lists(self) -> None:
        n = len(self.slugs)
        self.cand_col = np.full((n, self.m), -1, dtype=np.int32)
        self.cand_neg = np.full((n, self.m), np.inf, dtype=np.float32)
        self.bound_neg = np.full(n, np.inf, dtype=np.float32)
        self.bound_slug = [""] * n
        self.top = {}

    def _weights(self) -> np.ndarray:
        """Per term id: idf x proper-noun weight, 0 for terms too rare or too common to count."""
        p, n, width = self.params, len(self.slugs), len(self.terms)
        df = np.bincount(self.ids, minlength=width)
        total = np.bincount(self.ids, weights=self.counts, minlength=width)
        capital = np.bincount(self.ids, weights=self.caps, minlength=width)
        max_df = p.max_df * n if n >= 20 else n
        min_df = p.min_df if n >= 20 else 1
        keep = (df >= min_df) & (df <= max_df)
        # idf from counts rounded down to a ~9% grid: one article more or less rarely moves a
        # term's weight, so an edit or a new article rescores few rows (exactly, as a fit would)
        idf = np.log((1 + grid(np.array([n]))[0]) / (1 + grid(df))) + 1.0
        proper = capital > p.proper_share * np.maximum(total, 1)
        return np.where(keep, idf * np.where(proper, p.proper_weight, 1.0), 0.0).astype(np.float32)

    def _matrix(self) -> None:
        """L2-normalised rows of sublinear tf x weight, columns in alphabetical term order.

        Each row's entries are then in alphabetical order whatever else the archive
        holds, so a dot product always adds the same products in the same order.
        """
        n, width = len(self.slugs), len(self.terms)
        if len(self.column) != width:  # terms only ever get added: re-sort only then
            self.column = np.empty(width, dtype=np.int32)
            self.column[np.argsort(np.array(self.terms, dtype=object), kind="stable")] = np.arange(width)
        column = self.column
        data = (np.float32(1) + np.log(self.counts.astype(np.float32))) * self.weight[self.ids]
        row = np.repeat(np.arange(n), np.diff(self.indptr))
        live = data != 0
        data, row, cols = data[live], row[live], column[self.ids[live]]
        norm = np.sqrt(np.bincount(row, weights=data.astype(np.float64) ** 2, minlength=n))
        data = data / np.where(norm > 0, norm, 1.0).astype(np.float32)[row]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=n))])
        self._x = sparse.csr_matrix((data, cols, indptr), shape=(n, max(1, width)))
        self._xt = None  # made by _rank_rows when many rows are to be scored
        flat = [t for ts in self.tags for t in ts]
        names = {t: j for j, t in enumerate(sorted(set(flat)))}
        per_row = np.fromiter(map(len, self.tags), dtype=np.int64, count=n)
        tcol = np.fromiter(map(names.__getitem__, flat), dtype=np.int32, count=len(flat))
        tptr = np.concatenate([[0], np.cumsum(per_row)])
        shape = (n, max(1, len(names)))
        self._tags = sparse.csr_matrix((np.ones(len(flat), np.float32), tcol, tptr), shape=shape)
        self._ntags = per_row.astype(np.float32)

    # ---- scoring -------------------------------------------------------------------------

    def _scores(self, rows: np.ndarray, cols: np.ndarray | None = None) -> np.ndarray:
        """Scores of ``rows`` against ``cols`` (sorted; default all), self pairs at -inf.

        Element (i, j) comes out of the same float32 operations whichever block holds it.
        """
        assert self._x is not None and self._tags is not None
        p = self.params
        every = np.arange(len(self.slugs)) if cols is None else cols
        if cols is not None:
            product = self._x[rows] @ self._x[cols].T.tocsr()
        elif self._xt is not None:
            product = self._x[rows] @ self._xt
        else:
            # a few rows: cheaper than transposing X, and the very same floats (each
            # element sums the same products over the shared terms in the same order)
            product = (self._x @ self._x[rows].T).T
        s = np.asarray(product.toarray(), dtype=np.float32)
        if p.tag_weight and self._tags.nnz:
            # where both have tags: (1 - w) x score + w x Jaccard overlap of the tags
            w = np.float32(p.tag_weight)
            nq, nc = self._ntags[rows], self._ntags[every]
            if (nq > 0).all() and (nc > 0).all():
                s *= np.float32(1) - w  # the same product as below, without a mask the size of s
            else:
                s *= np.where((nq > 0)[:, None] & (nc > 0)[None, :], np.float32(1) - w, np.float32(1))
            inter = (self._tags[rows] @ self._tags[every].T).tocoo()
            r, c, v = inter.row, inter.col, inter.data
            s[r, c] += w * (v / (nq[r] + nc[c] - v))
        if p.recency_weight:
            # in place, in float32: a few arrays the size of s, not a dozen float64 ones
            # the float64 difference, rounded once to float32 (no float64 array the size of s)
            gap = np.empty(s.shape, dtype=np.float32)
            np.subtract(self.days[rows][:, None], self.days[every][None, :], out=gap, casting="same_kind")
            np.abs(gap, out=gap)
            spread = gap + np.float32(p.half_life_days)
            np.divide(gap, spread, out=gap)
            gap *= -np.float32(p.recency_weight)
            gap += np.float32(1)
            s *= gap
        pos = np.searchsorted(every, rows)
        mine = (pos < len(every)) & (every[np.minimum(pos, len(every) - 1)] == rows)
        s[np.flatnonzero(mine), pos[mine]] = -np.inf
        return s

    def _drop(self) -> None:
        self._x = self._xt = self._tags = self._ntags = None  # cheap to rebuild; not worth caching

    def _blocks(self, rows: np.ndarray, size: int) -> list[np.ndarray]:
        return [rows[i : i + size] for i in range(0, len(rows), size)]

    def _map(self, fn: Callable[[np.ndarray], T], blocks: list[np.ndarray], jobs: int) -> list[T]:
        if jobs > 1 and len(blocks) > 1:
            with ThreadPoolExecutor(jobs) as pool:
                return list(pool.map(fn, blocks))
        return [fn(b) for b in blocks]

    def _rank_all(self, jobs: int) -> None:
        """Every row ranked as ``_rank_rows`` would, each pair scored once (``related.pairs``)."""
        from publisher.related.pairs import rank_all

        rank_all(self, jobs)

    def _rank_rows(self, rows: np.ndarray, jobs: int, keep: list[np.ndarray] | None = None) -> None:
        """Exact best m of each row against every column, in blocks over ``jobs`` threads.

        ``keep`` collects the rows' scores (for the carry-over: score(i, j) == score(j, i)).
        """
        self.rescored += len(rows)
        if len(rows) > FEW_ROWS and self._xt is None and self._x is not None:
            self._xt = self._x.T.tocsr()  # once, before the threads share it
        blocks = self._blocks(rows, self.params.chunk)
        work = self._rank_block if keep is None else self._rank_block_keep
        for block, found in zip(blocks, self._map(work, blocks, jobs), strict=True):
            best_rows, scores = found if keep is not None else (found, None)
            if keep is not None:
                keep.append(scores)
            for i, best in zip(block.tolist(), best_rows, strict=True):
                self._set_row(i, best, full=len(best) == self.m and len(self.slugs) - 1 > self.m)

    def _rank_block_keep(self, block: np.ndarray) -> tuple[list[list[tuple[float, int]]], np.ndarray]:
        s = self._scores(block)
        return self._rank_block(block, s), s

    def _rank_block(self, block: np.ndarray, s: np.ndarray | None = None) -> list[list[tuple[float, int]]]:
        """Best m per row: the m-th best of 64 group maxima bounds the m-th best score from below,
        so only the few columns at or above it need sorting (ties included)."""
        s = self._scores(block) if s is None else s
        n, m = s.shape[1], min(self.m, s.shape[1])
        groups = 64
        if m <= 0 or n < 4 * groups:
            return [_best(s[r], np.arange(n), m) for r in range(len(block))]
        width = -(-n // groups)
        padded = np.full((len(block), groups * width), -np.inf, dtype=np.float32)
        padded[:, :n] = s
        tops = padded.reshape(len(block), groups, width).max(axis=2)
        low = -np.partition(-tops, m - 1, axis=1)[:, m - 1]
        r, c = np.nonzero(s >= low[:, None])
        cuts = np.searchsorted(r, np.arange(len(block) + 1))
        return [_best(s[i], c[cuts[i] : cuts[i + 1]], m) for i in range(len(block))]

    def _set_row(
        self, i: int, best: list[tuple[float, int]], *, full: bool, bound: tuple[float, str] | None = None
    ) -> None:
        """Store row i's candidates; ``full``: the last one is the bound (else ``bound``, or none)."""
        self.cand_col[i] = -1
        self.cand_neg[i] = np.inf
        if best:
            self.cand_neg[i, : len(best)] = [neg for neg, _ in best]
            self.cand_col[i, : len(best)] = [col for _, col in best]
        if full:
            bound = (best[-1][0], self.slugs[best[-1][1]])
        self.bound_neg[i], self.bound_slug[i] = bound if bound is not None else (np.inf, "")
        self.top[self.slugs[i]] = self._picks(i)

    def _picks(self, i: int) -> tuple[str, ...]:
        low = self.params.min_score
        return tuple(
            self.slugs[c]
            for c, neg in zip(
                self.cand_col[i, : self.k].tolist(), self.cand_neg[i, : self.k].tolist(), strict=True
            )
            if c >= 0 and -neg >= low
        )

    # ---- incremental update ----------------------------------------------------------------

    def update(
        self,
        articles: Sequence[Article],
        max_share: float = 0.05,
        *,
        terms: dict[str, DocTerms] | None = None,
        keys: dict[str, str] | None = None,
        jobs: int = 1,
    ) -> bool:
        """Bring the index in line with ``articles``, exactly as ``fit`` would; False if a fit is due.

        A fit is due (and nothing is changed) when more than ``max_share`` of the
        archive changed or the archive is small: refitting is then about as cheap.
        """
        pool = sorted((a for a in articles if not a.draft), key=lambda a: a.slug)
        new_keys = keys_of(pool, keys)
        same = self._same(pool, new_keys)
        changed, removed = len(pool) - len(same), len(self.slugs) - len(same)
        if not self.complete or len(pool) < 50:
            return False
        if changed == 0 and removed == 0:
            return True
        if changed + removed > max(1, int(max_share * len(pool))):
            return False
        old = (
            self.slugs,
            self.cand_col,
            self.cand_neg,
            self.bound_neg,
            self.bound_slug,
            self.top,
            self.weight,
        )
        self._load(pool, same, terms or {}, new_keys)
        self.rescored = 0
        self.weight = self._weights()
        moved = np.ones(len(self.weight), dtype=bool)  # terms whose weight changed (new ones too)
        moved[: len(old[6])] = self.weight[: len(old[6])] != old[6]
        n = len(pool)
        stale = np.ones(n, dtype=bool)  # rows whose vector may have changed
        stale[[i for i, s in enumerate(self.slugs) if s in same]] = False
        stale[np.repeat(np.arange(n), np.diff(self.indptr))[moved[self.ids]]] = True
        self._reset_lists()
        self._matrix()
        if stale.sum() * 4 > n:  # most vectors moved (an article added or removed moves every idf)
            self._rank_all(jobs)
        else:
            rows = np.flatnonzero(stale)
            kept: list[np.ndarray] | None = [] if len(rows) * len(pool) <= 25_000_000 else None
            self._rank_rows(rows, jobs, kept)
            self._carry_over(rows, same, old, jobs, np.vstack(kept) if kept else None)
        self._drop()
        return True

    def _same(self, pool: list[Article], keys: list[str]) -> dict[str, int]:
        """slug -> row, for the articles whose row can be reused as it is (same key)."""
        old_row, old_keys = self._row_of(), self.keys
        same: dict[str, int] = {}
        for a, key in zip(pool, keys, strict=True):
            o = old_row.get(a.slug)
            if o is not None and old_keys[o] == key:
                same[a.slug] = o
        return same

    def _row_of(self) -> dict[str, int]:
        """slug -> row, kept until the rows change (the build asks ``known`` then ``update``)."""
        if self._rows is None or self._rows[0] is not self.slugs:
            self._rows = (self.slugs, {s: i for i, s in enumerate(self.slugs)})
        return self._rows[1]

    def known(self, articles: Iterable[Article], keys: dict[str, str]) -> set[str]:
        """Slugs whose terms the index holds (under the same key): no need to count them again."""
        pool = list(articles)
        return set(self._same(pool, keys_of(pool, keys)))

    def _carry_over(
        self, stale: np.ndarray, same: dict[str, int], old: tuple[Any, ...], jobs: int, scores: Any
    ) -> None:
        from publisher.related.update import carry_over

        carry_over(self, stale, same, old, jobs, scores)


def _narrow(a: np.ndarray) -> np.ndarray:
    """``a`` in the smallest unsigned type that holds it (ids and counts are never negative)."""
    if not len(a) or int(a.min()) < 0:
        return a
    top = int(a.max())
    for kind in (np.uint8, np.uint16):
        if top <= np.iinfo(kind).max:
            return a.astype(kind)
    return a


def _runs(old_of: np.ndarray, most: int = 64) -> list[tuple[int, int, int]] | None:
    """Stretches of kept rows (``old_of`` >= 0) that were consecutive before: (first, end, old first).

    None when there are more than ``most``: too many to copy one by one (the caller gathers).
    """
    kept = old_of >= 0
    cont = np.zeros(len(old_of), dtype=bool)  # row r carries on the stretch of row r - 1
    cont[1:] = kept[1:] & kept[:-1] & (old_of[1:] == old_of[:-1] + 1)
    starts = np.flatnonzero(kept & ~cont)
    if len(starts) > most:
        return None
    stops = np.concatenate([np.flatnonzero(~cont), [len(old_of)]])
    ends = stops[np.searchsorted(stops, starts, side="right")]
    return [(a, b, int(old_of[a])) for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def _best(row: np.ndarray, cols: np.ndarray, m: int) -> list[tuple[float, int]]:
    """The best ``m`` of ``cols`` by (score desc, index asc) as (-score, column)."""
    vals = row[cols]
    live = np.isfinite(vals)
    pairs = sorted(zip((-vals[live]).tolist(), cols[live].tolist(), strict=True))
    return pairs[:m]

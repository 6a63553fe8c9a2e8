"""The related-news index: term counts per article and each article's exact best candidates.

The accelerator behind ``publisher.related.rank``: kept by the build between runs, it
gives rank's answer after an edit by rescoring only the rows the edit moved. See
``publisher.related`` for the score and why an update equals a fit. The index is plain
data (numpy arrays, lists, dicts): the build cache pickles it as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from publisher.models import Article
from publisher.related.lists import Candidates, rank_rows
from publisher.related.pairs import rank_all
from publisher.related.scores import Scorer, term_columns, term_weights, vectors
from publisher.related.terms import DEFAULT, DocTerms, RelatedParams, doc_terms, keys_of
from publisher.related.update import carry_over

# What a fit may borrow from the previous index: the rows' term counts, dates and tags.
_ROWS = ("slugs", "keys", "terms", "term_ids", "column", "indptr", "ids", "counts", "caps", "days", "tags")


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
    cands: Candidates = field(default_factory=lambda: Candidates.empty([], 0, 0, 0.0))
    complete: bool = True  # every row ranked (False after fit(..., rank=some))
    rescored: int = 0  # rows ranked against every column by the last fit or update
    _rows: tuple[list[str], dict[str, int]] | None = field(default=None, repr=False)

    @property
    def m(self) -> int:
        return self.k + self.params.slack

    @property
    def top(self) -> dict[str, tuple[str, ...]]:
        """slug -> up to k related slugs, best first."""
        return self.cands.top

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
            for name in _ROWS:
                setattr(idx, name, getattr(previous, name))
            reuse = previous._same(pool, new_keys)
        idx._load(pool, reuse, terms or {}, new_keys)
        idx.weight = idx._weights()
        idx.cands = idx._empty_lists()
        scorer = idx._scorer()
        if rank is None:
            rank_all(scorer, idx.cands, jobs)
            idx.rescored = len(pool)
        else:
            where = idx._row_of()
            rows = np.array(sorted(where[s] for s in set(rank) if s in where), dtype=np.int64)
            idx.complete = False
            rank_rows(scorer, idx.cands, rows, jobs)
            idx.rescored = len(rows)
        return idx

    def _load(
        self, pool: list[Article], reuse: dict[str, int], given: dict[str, DocTerms], keys: list[str]
    ) -> None:
        """Set the rows to ``pool``: rows named in ``reuse`` (slug -> old row) are copied, others counted."""
        old_of = np.array([reuse.get(a.slug, -1) for a in pool], dtype=np.int64)
        fresh = {r: self._count(pool[r], given) for r in np.flatnonzero(old_of < 0).tolist()}
        kept = old_of >= 0
        lengths = np.zeros(len(pool), dtype=np.int64)
        lengths[kept] = np.diff(self.indptr)[old_of[kept]]
        for r, part in fresh.items():
            lengths[r] = len(part[0])
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        runs = _runs(old_of)
        self.ids, self.counts, self.caps = [
            _gather(old, self.indptr, indptr, old_of, runs, [(r, part[pos]) for r, part in fresh.items()])
            for pos, old in enumerate((self.ids, self.counts, self.caps))
        ]
        days = np.empty(len(pool))
        days[kept] = self.days[old_of[kept]]
        old_tags = self.tags
        tags: list[frozenset[str]] = [old_tags[o] if o >= 0 else frozenset() for o in old_of.tolist()]
        for r in fresh:
            a = pool[r]
            days[r] = a.date.timestamp() / 86400.0
            tags[r] = frozenset(t.casefold() for t in a.tags)
        self.indptr = indptr
        self.slugs = [a.slug for a in pool]
        self.keys = keys
        self.days, self.tags = days, tags

    def _count(self, a: Article, given: dict[str, DocTerms]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """An article's (term ids, counts, capitalised counts); terms new to the index get ids."""
        words, cnt, cap = given.get(a.slug) or doc_terms(a, self.params)
        found = list(map(self.term_ids.get, words))
        if None in found:
            for j, w in enumerate(words):
                if found[j] is None:
                    found[j] = self.term_ids[w] = len(self.terms)
                    self.terms.append(w)
        return np.array(found, dtype=np.int32), cnt, cap

    def _empty_lists(self) -> Candidates:
        return Candidates.empty(self.slugs, self.k, self.m, self.params.min_score)

    def _weights(self) -> np.ndarray:
        n, width = len(self.slugs), len(self.terms)
        return term_weights(self.ids, self.counts, self.caps, n, width, self.params)

    def _scorer(self) -> Scorer:
        """The vectors and tags of the rows as they are now (for one fit or update, then dropped)."""
        if len(self.column) != len(self.terms):  # terms only ever get added: re-sort only then
            self.column = term_columns(self.terms)
        x = vectors(self.indptr, self.ids, self.counts, self.weight, self.column)
        return Scorer.build(self.params, x, self.tags, self.days)

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
        old, old_weight = self.cands, self.weight
        self._load(pool, same, terms or {}, new_keys)
        self.weight = self._weights()
        stale = self._stale(same, old_weight)
        self.cands = self._empty_lists()
        scorer = self._scorer()
        n = len(pool)
        if len(stale) * 4 > n:  # most vectors moved (an article added or removed moves every idf)
            rank_all(scorer, self.cands, jobs)
            self.rescored = n
            return True
        kept: list[np.ndarray] | None = [] if len(stale) * n <= 25_000_000 else None
        rank_rows(scorer, self.cands, stale, jobs, kept)
        scores = np.vstack(kept) if kept else None
        redone = carry_over(scorer, self.cands, old, self._row_of(), same, stale, jobs, scores)
        self.rescored = len(stale) + redone
        return True

    def _stale(self, same: dict[str, int], old_weight: np.ndarray) -> np.ndarray:
        """Rows whose vector may have changed: new or edited, or holding a term whose weight moved."""
        moved = np.ones(len(self.weight), dtype=bool)  # terms whose weight changed (new ones too)
        moved[: len(old_weight)] = self.weight[: len(old_weight)] != old_weight
        n = len(self.slugs)
        stale = np.ones(n, dtype=bool)
        stale[[i for i, s in enumerate(self.slugs) if s in same]] = False
        stale[np.repeat(np.arange(n), np.diff(self.indptr))[moved[self.ids]]] = True
        return np.flatnonzero(stale)

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


def _gather(
    old: np.ndarray,
    old_ptr: np.ndarray,
    ptr: np.ndarray,
    old_of: np.ndarray,
    runs: list[tuple[int, int, int]] | None,
    fresh: list[tuple[int, np.ndarray]],
) -> np.ndarray:
    """One CSR array of the new rows: kept rows' entries copied from ``old``, fresh rows' filled in."""
    new = np.empty(int(ptr[-1]), dtype=np.int32)
    if runs is not None:  # an edit: the kept rows are a few stretches of the old order
        for first, end, o in runs:
            new[ptr[first] : ptr[end]] = old[old_ptr[o] : old_ptr[o + end - first]]
    else:  # position in the old arrays of every new entry, gathered in one go
        kept = old_of >= 0
        lengths = np.diff(ptr)
        src = np.repeat(np.where(kept, old_ptr[np.maximum(old_of, 0)] - ptr[:-1], 0), lengths)
        src += np.arange(int(ptr[-1]))
        mask = np.repeat(kept, lengths)
        new[mask] = old[src[mask]]
    for r, values in fresh:
        new[ptr[r] : ptr[r + 1]] = values
    return new

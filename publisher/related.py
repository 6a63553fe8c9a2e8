"""Related news: for each article, the few others a reader is most likely to want next.

Score (tuned on the Wikinews corpus by bench/related.py, which says how):

- TF-IDF over title (counted twice: it names the story) and body, sublinear tf,
  English stop words, terms in more than half the articles dropped;
- proper nouns (terms written capitalised most of the time) weighted down:
  a shared country or person name says less about what a story is *about*
  than shared common words do (this alone took p@3 from 0.54 to 0.58);
- blended with a 50-dimension LSA cosine (topic-level similarity);
- blended with shared tags (Jaccard) when both articles have tags;
- times a mild preference for articles close in time.

Matches under ``min_score`` are dropped (no related item beats a weak one);
ties break by slug. ``RelatedIndex.update`` re-scores a few changed articles
against a fitted model, so a rebuild after one edit does not refit a 10,000
article archive. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer
from sklearn.preprocessing import normalize

from publisher.models import Article

TOKEN = r"(?u)\b[^\W\d_][\w'-]*[^\W_]\b"


@dataclass(frozen=True)
class RelatedParams:
    """The knobs; defaults are the values bench/related.py picked on held-out rows."""

    title_repeat: int = 2
    proper_weight: float = 0.4  # weight of terms that are capitalised in most of their uses
    proper_share: float = 0.5  # "most": the share of capitalised uses that makes a proper noun
    lsa_dims: int = 50
    lsa_weight: float = 0.2
    tag_weight: float = 0.25
    recency_weight: float = 0.1  # how much of the score a large gap in time can take away
    half_life_days: float = 30.0  # gap at which half of that is taken
    min_score: float = 0.05
    max_df: float = 0.5
    min_df: int = 2
    chunk: int = 512  # query rows scored at once (bounds memory on big archives)


DEFAULT = RelatedParams()


def _doc(a: Article, p: RelatedParams) -> str:
    return ". ".join([a.title] * p.title_repeat + [a.body])


@dataclass
class RelatedIndex:
    """A fitted model, every article's vectors and its current top list."""

    params: RelatedParams
    k: int
    vocab: dict[str, int]  # lowercase term -> column
    idf: np.ndarray
    weight: np.ndarray  # idf x proper-noun weight per column
    components: np.ndarray | None  # LSA basis (dims x terms)
    slugs: list[str]
    hashes: list[str]
    x: sparse.csr_matrix  # L2-normalised weighted tf-idf rows
    z: np.ndarray  # L2-normalised LSA rows
    days: np.ndarray
    tags: list[frozenset[str]]
    top: dict[str, tuple[str, ...]] = field(default_factory=dict)
    kth: dict[str, float] = field(default_factory=dict)  # score of the k-th pick (or -inf)

    # ---- fitting -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        articles: Sequence[Article],
        k: int,
        params: RelatedParams = DEFAULT,
        rank: Iterable[str] | None = None,
    ) -> RelatedIndex:
        """Fit on every published article; rank all of them, or only the slugs in ``rank``."""
        pool = sorted((a for a in articles if not a.draft), key=lambda a: a.slug)
        n = len(pool)
        counts, vocab, weight, idf = _fit_terms([_doc(a, params) for a in pool], params, n)
        x = _weigh(counts, weight)
        components = None
        z = np.zeros((n, 0), dtype=np.float32)
        dims = min(params.lsa_dims, x.shape[1] - 1, n // 4)
        if params.lsa_weight and n >= 40 and dims >= 2:  # topics need a few dozen articles
            svd = TruncatedSVD(dims, random_state=0, algorithm="randomized", n_iter=5)
            svd.fit(x)
            components = svd.components_.astype(np.float32)
            z = _project(x, components)
        idx = cls(
            params=params,
            k=k,
            vocab=vocab,
            idf=idf,
            weight=weight,
            components=components,
            slugs=[a.slug for a in pool],
            hashes=[_key(a) for a in pool],
            x=x,
            z=z,
            days=np.array([a.date.timestamp() / 86400.0 for a in pool]),
            tags=[frozenset(t.casefold() for t in a.tags) for a in pool],
        )
        if rank is None:
            idx._rank(np.arange(n))
        else:
            where = {s: i for i, s in enumerate(idx.slugs)}
            idx._rank(np.array(sorted(where[s] for s in set(rank) if s in where), dtype=np.int64))
        return idx

    def transform(self, articles: Sequence[Article]) -> tuple[sparse.csr_matrix, np.ndarray]:
        """Vectors of articles under this (frozen) model: new words are ignored."""
        if not articles:
            return sparse.csr_matrix((0, len(self.vocab)), dtype=np.float32), self.z[:0]
        cv = CountVectorizer(lowercase=False, token_pattern=TOKEN, dtype=np.float32)
        try:
            raw = cv.fit_transform([_doc(a, self.params) for a in articles]).tocsc()
        except ValueError:
            raw = sparse.csc_matrix((len(articles), 0), dtype=np.float32)
        cols = [self.vocab.get(t.lower(), -1) for t in cv.get_feature_names_out()] if raw.shape[1] else []
        counts = _merge_columns(raw, cols, len(self.vocab))
        x = _weigh(counts, self.weight)
        z = _project(x, self.components) if self.components is not None else np.zeros((x.shape[0], 0))
        return x, z

    # ---- scoring -------------------------------------------------------------------------

    def _scores(
        self, xq: sparse.csr_matrix, zq: np.ndarray, dq: np.ndarray, tq: list[frozenset[str]]
    ) -> np.ndarray:
        p = self.params
        s = (xq @ self.x.T).toarray()
        if self.components is not None:
            s = (1 - p.lsa_weight) * s + p.lsa_weight * (zq @ self.z.T)
        if p.tag_weight and any(self.tags):
            s = self._blend_tags(s, tq)
        if p.recency_weight:
            gap = np.abs(dq[:, None] - self.days[None, :])
            s *= 1 - p.recency_weight * (gap / (gap + p.half_life_days))
        return np.round(s.astype(np.float64), 9)  # float noise must not reorder near-ties

    def _tag_matrix(self, tags: list[frozenset[str]], names: dict[str, int]) -> sparse.csr_matrix:
        rows, cols = [], []
        for r, ts in enumerate(tags):
            for t in ts:
                if t in names:
                    rows.append(r)
                    cols.append(names[t])
        data = np.ones(len(rows), dtype=np.float32)
        return sparse.csr_matrix((data, (rows, cols)), shape=(len(tags), len(names)))

    def _blend_tags(self, s: np.ndarray, tq: list[frozenset[str]]) -> np.ndarray:
        """Mix in the Jaccard overlap of tags, where both articles have tags (vectorised)."""
        w = self.params.tag_weight
        names = {t: i for i, t in enumerate(sorted(set().union(*self.tags)))}
        mine = self._tag_matrix(tq, names)
        theirs = self._tag_matrix(self.tags, names)
        inter = (mine @ theirs.T).toarray()
        nq = np.array([len(t) for t in tq], dtype=np.float32)  # all of a query's tags count
        nt = np.array([len(t) for t in self.tags], dtype=np.float32)
        union = nq[:, None] + nt[None, :] - inter
        both = (nq[:, None] > 0) & (nt[None, :] > 0)
        jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        return np.where(both, (1 - w) * s + w * jac, s)

    def _rank(self, rows: np.ndarray) -> None:
        for start in range(0, len(rows), self.params.chunk):
            block = rows[start : start + self.params.chunk]
            scores = self._scores(
                self.x[block], self.z[block], self.days[block], [self.tags[i] for i in block]
            )
            for r, i in enumerate(block):
                scores[r, i] = -math.inf
                self.top[self.slugs[i]], self.kth[self.slugs[i]] = _best(
                    scores[r], self.slugs, self.k, self.params.min_score
                )

    # ---- incremental update ----------------------------------------------------------------

    def update(self, articles: Sequence[Article], max_share: float = 0.05) -> bool:
        """Bring the index in line with ``articles`` without refitting; False if a refit is due.

        Changed and new articles are vectorised with the frozen model and ranked
        against all; an unchanged article's list changes only if a changed one
        enters it or leaves it. A refit is due when more than ``max_share`` of
        the archive changed (the model would drift from the content).
        """
        pool = {a.slug: a for a in articles if not a.draft}
        old = dict(zip(self.slugs, self.hashes, strict=True))
        changed = sorted(s for s, a in pool.items() if old.get(s) != _key(a))
        removed = sorted(set(old) - set(pool))
        if not changed and not removed:
            return True
        if len(changed) + len(removed) > max(1, int(max_share * len(pool))) or len(pool) < 50:
            return False
        keep = [i for i, s in enumerate(self.slugs) if s in pool and s not in changed]
        new = [pool[s] for s in changed]
        xn, zn = self.transform(new)
        self.slugs = [self.slugs[i] for i in keep] + changed
        self.hashes = [self.hashes[i] for i in keep] + [_key(a) for a in new]
        self.x = sparse.vstack([self.x[keep], xn]).tocsr()
        self.z = np.vstack([self.z[keep], zn]) if self.z.shape[1] else np.zeros((len(self.slugs), 0))
        self.days = np.concatenate([self.days[keep], [a.date.timestamp() / 86400.0 for a in new]])
        self.tags = [self.tags[i] for i in keep] + [frozenset(t.casefold() for t in a.tags) for a in new]
        order = np.argsort(np.array(self.slugs, dtype=object), kind="stable")
        self._reorder(order)
        gone = set(changed) | set(removed)
        for s in removed:
            self.top.pop(s, None)
            self.kth.pop(s, None)
        index = {s: i for i, s in enumerate(self.slugs)}
        redo = {index[s] for s in changed}
        redo |= {index[s] for s, lst in self.top.items() if s in index and gone & set(lst)}
        crow = np.array([index[s] for s in changed], dtype=np.int64)
        if len(crow):
            sc = self._scores(self.x[crow], self.z[crow], self.days[crow], [self.tags[i] for i in crow])
            for r, c in enumerate(crow):  # does a changed article now enter someone's list?
                for i in np.flatnonzero(sc[r] >= self.params.min_score):
                    if i != c and sc[r, i] >= self.kth.get(self.slugs[i], -math.inf):
                        redo.add(int(i))
        self._rank(np.array(sorted(redo), dtype=np.int64))
        return True

    def _reorder(self, order: np.ndarray) -> None:
        self.slugs = [self.slugs[i] for i in order]
        self.hashes = [self.hashes[i] for i in order]
        self.x = self.x[order]
        self.z = self.z[order]
        self.days = self.days[order]
        self.tags = [self.tags[i] for i in order]


def _key(a: Article) -> str:
    """What the model reads of an article: if this is unchanged, so is its vector."""
    return "\0".join([a.title, a.body, a.date.isoformat(), ",".join(sorted(a.tags))])


def _fit_terms(
    docs: list[str], p: RelatedParams, n: int
) -> tuple[sparse.csr_matrix, dict[str, int], np.ndarray, np.ndarray]:  # counts, vocab, weight, idf
    """Counts per lowercase term, the kept vocabulary, and per-term weights (idf x proper)."""
    cv = CountVectorizer(lowercase=False, token_pattern=TOKEN, dtype=np.float32)
    try:
        raw = cv.fit_transform(docs).tocsc()
    except ValueError:  # nothing but stop words or digits
        return sparse.csr_matrix((n, 0), dtype=np.float32), {}, np.zeros(0), np.zeros(0)
    names = cv.get_feature_names_out()
    lower = [t.lower() for t in names]
    uniq = sorted(set(lower) - ENGLISH_STOP_WORDS)
    col = {t: i for i, t in enumerate(uniq)}
    cols = [col.get(t, -1) for t in lower]
    counts = _merge_columns(raw, cols, len(uniq))
    totals = np.asarray(counts.sum(axis=0)).ravel()
    capital = np.zeros(len(uniq))
    colsum = np.asarray(raw.sum(axis=0)).ravel()
    for j, (name, c) in enumerate(zip(names, cols, strict=True)):
        if c >= 0 and name[:1].isupper():
            capital[c] += colsum[j]
    df = np.diff(counts.tocsc().indptr)
    max_df = p.max_df * n if n >= 20 else n
    min_df = p.min_df if n >= 20 else 1
    keep = np.flatnonzero((df <= max_df) & (df >= min_df))
    counts = counts[:, keep]
    vocab = {uniq[j]: i for i, j in enumerate(keep)}
    idf = np.log((1 + n) / (1 + df[keep])) + 1.0
    proper = capital[keep] > p.proper_share * np.maximum(totals[keep], 1)
    weight = idf * np.where(proper, p.proper_weight, 1.0)
    return counts.tocsr(), vocab, weight, idf


def _merge_columns(raw: sparse.csc_matrix, cols: list[int], width: int) -> sparse.csr_matrix:
    """Sum case variants ('Court', 'court') into one lowercase column; drop unmapped ones."""
    n = raw.shape[0]
    if not cols:
        return sparse.csr_matrix((n, width), dtype=np.float32)
    src = np.array([j for j, c in enumerate(cols) if c >= 0], dtype=np.int64)
    dst = np.array([c for c in cols if c >= 0], dtype=np.int64)
    m = sparse.csr_matrix((np.ones(len(src), dtype=np.float32), (src, dst)), shape=(len(cols), width))
    return (raw.tocsr() @ m).tocsr()


def _weigh(counts: sparse.csr_matrix, weight: np.ndarray) -> sparse.csr_matrix:
    if counts.shape[1] == 0:
        return counts.astype(np.float32).tocsr()
    x = counts.astype(np.float32).tocsr(copy=True)
    x.data = 1.0 + np.log(x.data)  # sublinear tf
    x = x @ sparse.diags(weight.astype(np.float32))
    return normalize(x).tocsr()


def _project(x: sparse.csr_matrix, components: np.ndarray) -> np.ndarray:
    return normalize(np.asarray(x @ components.T, dtype=np.float32))


def _best(row: np.ndarray, slugs: list[str], k: int, min_score: float) -> tuple[tuple[str, ...], float]:
    n_cand = min(len(row), k + 8)
    if n_cand <= 0 or k <= 0:
        return (), -math.inf
    part = np.argpartition(-row, n_cand - 1)[:n_cand] if n_cand < len(row) else np.arange(len(row))
    kth = np.sort(row[part])[::-1][min(k, len(part)) - 1]
    cand = np.flatnonzero(row >= kth)  # every tie with the k-th competes, so slug order is exact
    best = sorted(cand.tolist(), key=lambda j: (-row[j], slugs[j]))[:k]
    picks = tuple(slugs[j] for j in best if row[j] >= min_score)
    return picks, (float(row[best[-1]]) if len(picks) == k else -math.inf)


def related_articles(
    articles: Sequence[Article],
    k: int = 3,
    *,
    for_slugs: Iterable[str] | None = None,
    params: RelatedParams = DEFAULT,
) -> dict[str, tuple[str, ...]]:
    """slug -> up to ``k`` related slugs, best first (drafts are neither asked nor offered).

    ``for_slugs`` narrows the answer to a few articles (a digest's new ones); their
    matches are still searched in the whole archive.
    """
    pool = [a for a in articles if not a.draft]
    if not pool or k <= 0:
        return {s: () for s in (for_slugs if for_slugs is not None else (a.slug for a in pool))}
    if for_slugs is None:
        return dict(RelatedIndex.fit(pool, k, params).top)
    wanted = list(for_slugs)
    idx = RelatedIndex.fit(pool, k, params, rank=wanted)
    return {s: idx.top.get(s, ()) for s in wanted}

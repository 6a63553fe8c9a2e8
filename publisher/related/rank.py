"""The reference: related news in one screen, every pair scored, every row sorted.

``RelatedIndex`` (the accelerator the build keeps between runs) must give exactly
this answer after any edit; tests/test_related_rank.py holds the two to each other
on random archives and edits. Each step is the float32 arithmetic the index does,
in the same order (sums over a pair's shared terms in alphabetical order), so ties
and near-ties come out the same. The score is described in ``publisher.related``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import sparse

from publisher.models import Article
from publisher.related.terms import DEFAULT, RelatedParams, doc_terms, grid

F = np.float32


def rank(
    articles: Iterable[Article], params: RelatedParams = DEFAULT, k: int = 3
) -> dict[str, tuple[str, ...]]:
    """slug -> up to ``k`` related slugs, best first, ties by slug (drafts are neither asked nor offered)."""
    pool = sorted((a for a in articles if not a.draft), key=lambda a: a.slug)
    n = len(pool)
    if n == 0:
        return {}
    s = text_scores(pool, params)
    # tags: where both have some, (1 - w) x text + w x Jaccard overlap (case-insensitive)
    tags = [{t.casefold() for t in a.tags} for a in pool]
    names = sorted(set().union(*tags))
    member = np.array([[t in ts for t in names] for ts in tags], dtype=F).reshape(n, len(names))
    shared, count = member @ member.T, member.sum(axis=1)
    both = (count[:, None] > 0) & (count[None, :] > 0)
    w = F(params.tag_weight)
    with np.errstate(invalid="ignore"):  # 0 / 0 where neither has tags (not used)
        jaccard = shared / (count[:, None] + count[None, :] - shared)
    s = np.where(both, s * (F(1) - w) + w * jaccard, s)
    # time: a gap of g days keeps 1 - recency_weight x g / (g + half_life) of the score
    days = np.array([a.date.timestamp() / 86400.0 for a in pool])
    gap = np.abs(days[:, None] - days[None, :]).astype(F)
    s = s * (F(1) - F(params.recency_weight) * (gap / (gap + F(params.half_life_days))))
    np.fill_diagonal(s, -np.inf)
    slugs = [a.slug for a in pool]
    order = np.lexsort((np.broadcast_to(np.arange(n), s.shape), -s), axis=-1)[:, : max(k, 0)]
    best = np.take_along_axis(s, order, axis=1).tolist()  # compared with min_score as Python floats
    low, cols = params.min_score, order.tolist()
    return {
        slugs[i]: tuple(slugs[j] for j, x in zip(cols[i], best[i], strict=True) if j != i and x >= low)
        for i in range(n)
    }


def text_scores(pool: list[Article], params: RelatedParams) -> np.ndarray:
    """Cosine of TF-IDF vectors: sublinear tf, idf from counts on a ~9% grid, proper nouns down."""
    n = len(pool)
    counted = [doc_terms(a, params) for a in pool]  # title twice and body; terms in alphabetical order
    vocab = {t: j for j, t in enumerate(sorted({t for terms, _, _ in counted for t in terms}))}
    ids = np.array([vocab[t] for terms, _, _ in counted for t in terms], dtype=np.int64)
    counts = np.concatenate([c for _, c, _ in counted])
    caps = np.concatenate([c for _, _, c in counted])
    row = np.repeat(np.arange(n), [len(terms) for terms, _, _ in counted])
    df = np.bincount(ids, minlength=len(vocab))
    big = n >= 20  # below that, every term counts
    keep = (df >= (params.min_df if big else 1)) & (df <= (params.max_df * n if big else n))
    idf = np.log((1 + grid(np.array([n]))[0]) / (1 + grid(df))) + 1.0
    total = np.bincount(ids, weights=counts, minlength=len(vocab))
    proper = np.bincount(ids, weights=caps, minlength=len(vocab)) > params.proper_share * np.maximum(total, 1)
    weight = np.where(keep, idf * np.where(proper, params.proper_weight, 1.0), 0.0).astype(F)
    tf = (F(1) + np.log(counts.astype(F))) * weight[ids]
    norm = np.sqrt(np.bincount(row, weights=tf.astype(np.float64) ** 2, minlength=n))  # summed in order
    tf = tf / np.where(norm > 0, norm, 1.0).astype(F)[row]
    x = sparse.csr_matrix((tf, (row, ids)), shape=(n, max(1, len(vocab))))
    x.eliminate_zeros()
    return np.asarray((x @ x.T).toarray(), dtype=F)  # each pair: its shared terms' products, in order

"""Related news: for each article, the few others a reader is most likely to want next.

Score (tuned on the Wikinews corpus by bench/related.py, which says how):

- TF-IDF over title (counted twice: it names the story) and body, sublinear tf,
  English stop words, plurals folded ("courts" counts as "court"), terms in
  more than half the articles dropped, idf from document counts rounded down
  to a ~9% grid (so one article more or less rarely moves a term's weight);
- proper nouns (terms written capitalised most of the time) weighted down:
  a shared country or person name says less about what a story is *about*
  than shared common words do;
- blended with shared tags (Jaccard) when both articles have tags;
- times a mild preference for articles close in time.

Matches under ``min_score`` are dropped (no related item beats a weak one);
ties break by slug.

``rank`` (publisher/related/rank.py) is the reference: the whole answer in one
screen, every pair scored. ``RelatedIndex`` is the accelerator: the build keeps it
between runs, and it gives ``rank``'s answer exactly, by fit or by update (a
property test holds the two to each other on random archives and edits).

The answer is a pure function of the articles: ``RelatedIndex.update`` after
an edit gives exactly what ``RelatedIndex.fit`` on the edited archive gives,
byte for byte. It can, because every score is computed by the same float32
operations in the same order whichever way it is reached (each row's terms
in alphabetical order, no BLAS), and the index keeps each article's exact
top ``k + slack`` candidates: an edit changes the vectors only of the edited
articles and of those sharing a term whose weight moved, so only their
scores are recomputed and merged into the other lists. (A 50-dimension LSA
blend scored p@3 0.61 against 0.59 here, but a global basis moves every
score on any edit, so an incremental build could not match a full one.)
Pure: no I/O; ``jobs`` threads share the work (scipy and numpy release the GIL).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from publisher.models import Article
from publisher.related.index import RelatedIndex
from publisher.related.rank import rank
from publisher.related.terms import DEFAULT, TOKEN, DocTerms, RelatedParams, doc_key, doc_terms

__all__ = [
    "DEFAULT",
    "TOKEN",
    "DocTerms",
    "RelatedIndex",
    "RelatedParams",
    "doc_key",
    "doc_terms",
    "rank",
    "related_articles",
]


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

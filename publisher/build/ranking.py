"""Related news for the build: the last build's index, updated (the same answer as a fresh fit)."""

from __future__ import annotations

from typing import Any

from publisher.build.cache import CacheState, Row
from publisher.build.library import Loaded, full_articles
from publisher.config import Settings
from publisher.related import RelatedIndex, RelatedParams, doc_terms

RELATED = RelatedParams()


def related_params(settings: Settings, state: CacheState) -> RelatedParams | None:
    """The index's parameters (None: related lists are off); a change re-reads every article.

    The index is made from every article's terms, which are counted as issues are read.
    """
    k = settings.digests.related
    params = RELATED if k > 0 else None
    if params is not None and (
        state.related is None or state.related.k != k or state.related.params != params
    ):
        state.units.clear()
    return params


def rank_related(
    settings: Settings, state: CacheState, rows: list[Row], loaded: Loaded, jobs: int
) -> dict[str, tuple[str, ...]]:
    """slug -> related slugs, updated from the last build's index (kept in ``state.related``).

    Rows stand in for articles the index already knows; re-read articles come in full.
    """
    k = settings.digests.related
    if k <= 0 or not rows:
        state.related = None
        return {}
    keys = {t[0]: t[3] for unit in state.units.values() for t in unit.keys}  # slug -> related key
    full = {a.slug: a for issue in loaded.reread.values() for a in issue.articles}
    terms = loaded.terms
    idx = state.related
    known = idx.known(rows, keys) if idx is not None else set()  # type: ignore[arg-type]  # rows: slug, tags, draft
    lacking = [r for r in rows if r.slug not in terms and r.slug not in known]
    if lacking:  # cached without their bodies and unknown to the index: read them again
        more = full_articles(settings, state, [r.unit for r in lacking], {r.slug for r in lacking})
        full.update((a.slug, a) for a in more)
        terms = terms | {a.slug: doc_terms(a, RELATED) for a in more}
    pool: list[Any] = [full.get(r.slug, r) for r in rows]
    if idx is None or not idx.update(pool, terms=terms, keys=keys, jobs=jobs):
        idx = RelatedIndex.fit(pool, k, RELATED, terms=terms, keys=keys, jobs=jobs, previous=idx)
    state.related = idx
    return idx.top

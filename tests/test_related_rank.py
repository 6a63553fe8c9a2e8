"""The accelerator gives the reference's answer: ``RelatedIndex`` (fit, update, pickled) == ``rank``.

Random archives small enough for the reference and big enough for the index to
update rather than refit (50 articles or more), with topics that overlap, exact
copies (ties), drafts, tags and dates; then random edits, one at a time (the
index updates) or several at once (the build then fits, borrowing the old rows).
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.models import Article
from publisher.related import RelatedIndex, RelatedParams, rank

TOPICS = [
    [f"{stem}{w}" for w in ("", "s", "ing", "er", "ed", "ly", "ness", "ist")]
    for stem in ("harbour", "crane", "council", "budget", "river", "tram", "bread", "yeast", "vote", "court")
]
NAMES = ["Paris", "Lagos", "Quito", "Oslo", "paris"]  # mostly capitalised: proper nouns
TAGS = ["city", "City", "law", "sport", "money"]
EDITS = ["add", "remove", "body", "retitle", "tags", "date", "draft", "copy", "batch"]


def article(rng: random.Random, slug: str, templates: list[str]) -> Article:
    if templates and rng.random() < 0.2:  # a copy of another story: exact ties
        body = rng.choice(templates)
    else:
        words = rng.choices(TOPICS[rng.randrange(len(TOPICS))], k=rng.randint(0, 12))
        words += rng.choices(TOPICS[rng.randrange(len(TOPICS))], k=rng.randint(0, 4))
        words += rng.choices(NAMES, k=rng.randint(0, 2))
        body = " ".join(words)
        templates.append(body)
    return Article(
        slug=slug,
        title=" ".join(rng.choices(TOPICS[rng.randrange(len(TOPICS))], k=rng.randint(0, 2))),
        date=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 60), hours=rng.randint(0, 23)),
        body=body,
        source=Path(f"issues/{slug}.md"),
        issue_slug=slug,
        tags=tuple(rng.sample(TAGS, rng.randint(0, 2))),
        draft=rng.random() < 0.03,
    )


def edit(arts: list[Article], kind: str, rng: random.Random, templates: list[str]) -> list[Article]:
    """One edit of the archive (``batch``: four at once)."""
    out = list(arts)
    i = rng.randrange(len(out))
    a = out[i]
    if kind == "add":
        out.append(article(rng, f"new{rng.randrange(10**6):06d}", templates))
    elif kind == "remove":
        del out[i]
    elif kind == "body":
        out[i] = replace(a, body=article(rng, a.slug, templates).body)
    elif kind == "retitle":  # the same words: only its own row is rescored
        out[i] = replace(a, title=a.title + "!")
    elif kind == "tags":
        out[i] = replace(a, tags=tuple(rng.sample(TAGS, rng.randint(0, 3))))
    elif kind == "date":
        out[i] = replace(a, date=a.date + timedelta(days=rng.randint(-30, 30), minutes=rng.randint(0, 59)))
    elif kind == "draft":
        out[i] = replace(a, draft=not a.draft)
    elif kind == "copy":  # becomes a copy of another story: ties at the edge of others' lists
        other = rng.choice(out)
        out[i] = replace(other, slug=a.slug, source=a.source, issue_slug=a.issue_slug, draft=False)
    else:
        for _ in range(4):
            out = edit(out, rng.choice(EDITS[:-1]), rng, templates)
    return out


PARAMS = st.builds(
    RelatedParams,
    tag_weight=st.sampled_from([0.0, 0.25, 0.6]),
    recency_weight=st.sampled_from([0.0, 0.1, 0.5]),
    min_score=st.sampled_from([0.0, 0.05, 0.3]),
    slack=st.integers(0, 3),
    chunk=st.sampled_from([4, 16, 512]),
)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(56, 66),
    k=st.integers(1, 4),
    params=PARAMS,
    edits=st.lists(st.sampled_from(EDITS), min_size=1, max_size=6),
    jobs=st.sampled_from([1, 2]),
)
def test_the_index_gives_the_reference_answer_after_every_edit(
    seed: int, size: int, k: int, params: RelatedParams, edits: list[str], jobs: int
) -> None:
    rng, templates = random.Random(seed), list[str]()
    arts = [article(rng, f"a{i:03d}", templates) for i in range(size)]
    idx = RelatedIndex.fit(arts, k, params, jobs=jobs)
    assert idx.top == rank(arts, params, k)
    for step, kind in enumerate(edits):
        arts = edit(arts, kind, rng, templates)
        updated = idx.update(arts, jobs=jobs)
        if kind != "batch" and sum(not a.draft for a in arts) >= 50:  # one change in fifty or more
            assert updated, step  # an update, never a refit
        if not updated:  # what the build does then: a fit that borrows the rows it still has
            idx = RelatedIndex.fit(arts, k, params, jobs=jobs, previous=idx)
        assert idx.top == rank(arts, params, k), (step, kind)


def corpus(n: int, seed: int = 1) -> list[Article]:
    rng, templates = random.Random(seed), list[str]()
    return [replace(article(rng, f"a{i:03d}", templates), draft=False) for i in range(n)]


def test_the_index_pickles_as_plain_data_and_updates_after_loading() -> None:
    """The build cache keeps the index between runs as one pickled blob: no packing of its own."""
    arts = corpus(80)
    idx = RelatedIndex.fit(arts, 3)
    blob = pickle.dumps(idx, protocol=pickle.HIGHEST_PROTOCOL)
    assert b"packing" not in blob
    back = pickle.loads(blob)
    assert back.top == idx.top and list(back.top) == list(idx.top)
    assert (back.k, back.params, back.slugs, back.keys, back.terms) == (
        idx.k,
        idx.params,
        idx.slugs,
        idx.keys,
        idx.terms,
    )
    assert back.term_ids == idx.term_ids and back.tags == idx.tags
    for name in ("ids", "counts", "caps", "indptr", "days", "weight"):
        assert np.array_equal(getattr(back, name), getattr(idx, name)), name
    assert np.array_equal(back.cands.col, idx.cands.col) and np.array_equal(back.cands.neg, idx.cands.neg)
    assert back.known(arts, {}) == {a.slug for a in arts}
    edited = [replace(a, body=a.body + " harbour Oslo") if i == 7 else a for i, a in enumerate(arts)]
    assert back.update(edited) is True
    assert back.top == rank(edited, k=3)
    again = pickle.loads(pickle.dumps(back))  # and after an update, as the build saves it
    more = [*edited, replace(arts[3], slug="zz-new")]
    assert again.update(more) is True
    assert again.top == rank(more, k=3)


def test_related_articles_and_rank_agree_on_small_and_degenerate_archives() -> None:
    one = corpus(1)
    assert rank([], k=3) == {} and rank(one) == {one[0].slug: ()}
    arts = corpus(12, seed=4)
    assert rank(arts, k=0) == {a.slug: () for a in arts}
    fit = RelatedIndex.fit(arts, 2)
    assert fit.top == rank(arts, k=2)
    assert fit.update(arts[:-1]) is False  # under fifty articles the build refits

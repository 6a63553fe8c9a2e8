"""Related news on small hand-made sites and a synthetic archive."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.models import Article
from publisher.related import RelatedIndex, RelatedParams, doc_terms, related_articles
from publisher.related.lists import rank_rows
from publisher.related.terms import STOP_WORDS, TOKEN, _term

TOPICS = {
    "bread": "Bakers knead dough; yeast ferments flour and sugar, gluten traps the gas, the loaf rises "
    "in the oven and the crust browns. Sourdough starter, proofing baskets and rye flour.",
    "tram": "The city tram network adds new lines; passengers ride electric streetcars on rails, "
    "timetables improve and the depot orders more vehicles for the commuter routes.",
    "river": "Volunteers test river water for nitrates and bacteria; the stream's oxygen, "
    "algae and fish populations show whether the water quality recovers after floods.",
}


def art(
    slug: str, title: str, body: str, day: int, tags: tuple[str, ...] = (), *, draft: bool = False
) -> Article:
    return Article(
        slug=slug,
        title=title,
        date=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day),
        body=body,
        source=Path(f"issues/{slug}.md"),
        issue_slug=slug,
        tags=tags,
        draft=draft,
    )


def small_site() -> list[Article]:
    out: list[Article] = []
    words = {t: b.split() for t, b in TOPICS.items()}
    rng = random.Random(3)
    for t, ws in words.items():
        for n in range(3):
            body = " ".join(rng.sample(ws, len(ws) * 2 // 3))
            out.append(art(f"{t}-{n}", f"Notes on the {t} number {n}", body, day=n * 5 + len(out)))
    out.append(art("chess", "Opening gambits", "Knights, bishops and pawns: the queen's gambit declined.", 3))
    return out


def test_small_site_finds_its_own_topic_and_no_weak_matches() -> None:
    site = small_site()
    rel = related_articles(site, 2)
    assert set(rel) == {a.slug for a in site}
    for slug, picks in rel.items():
        if slug == "chess":
            assert picks == ()  # nothing shares a word with it: none rather than weak matches
            continue
        topic = slug.split("-")[0]
        assert len(picks) == 2 and all(p.startswith(topic) for p in picks), (slug, picks)
        assert slug not in picks


def test_result_does_not_depend_on_input_order() -> None:
    site = small_site()
    shuffled = site[:]
    random.Random(1).shuffle(shuffled)
    assert related_articles(site, 3) == related_articles(shuffled, 3)


def test_ties_break_by_slug() -> None:
    body = "identical words about harbour cranes and container ships"
    site = [art(s, "Harbour", body, 0) for s in ("d", "b", "c", "a")]
    assert related_articles(site, 2) == {"a": ("b", "c"), "b": ("a", "c"), "c": ("a", "b"), "d": ("a", "b")}


def test_shared_tags_break_a_text_tie() -> None:
    body = "council budget vote on the new library and swimming pool"
    site = [
        art("x", "Council", body, 0, ("Local",)),
        art("a", "Council", body, 0, ("Sport",)),
        art("b", "Council", body, 0, ("local",)),
    ]
    assert related_articles(site, 1)["x"] == ("b",)  # tags compare case-insensitively


def test_drafts_are_neither_asked_nor_offered() -> None:
    site = small_site()
    site.append(art("bread-draft", "Notes on the bread", TOPICS["bread"], 1, draft=True))
    rel = related_articles(site, 3)
    assert "bread-draft" not in rel
    assert all("bread-draft" not in picks for picks in rel.values())


def test_for_slugs_matches_the_full_answer() -> None:
    site = small_site()
    full = related_articles(site, 2)
    assert related_articles(site, 2, for_slugs=["tram-1", "river-0"]) == {
        "tram-1": full["tram-1"],
        "river-0": full["river-0"],
    }


def test_degenerate_inputs() -> None:
    assert related_articles([], 3) == {}
    one = [art("only", "Only", "a single article about nothing much", 0)]
    assert related_articles(one, 3) == {"only": ()}
    stop = [art("a", "The", "and the of", 0), art("b", "A", "it is", 1)]
    assert related_articles(stop, 3) == {"a": (), "b": ()}
    assert related_articles(small_site(), 0)["tram-0"] == ()


def archive(n: int, seed: int = 5) -> list[Article]:
    """n articles over 12 synthetic topics (each its own vocabulary plus shared filler)."""
    rng = random.Random(seed)
    topics = [[f"t{t}w{w}" for w in range(40)] for t in range(12)]
    filler = [f"common{w}" for w in range(200)]
    out = []
    for i in range(n):
        t = i % 12
        words = rng.choices(topics[t], k=60) + rng.choices(filler, k=120)
        out.append(art(f"a{i:04d}", f"{topics[t][i % 40]} story {i}", " ".join(words), day=i % 365))
    return out


def test_incremental_update_touches_only_lists_that_involve_the_change() -> None:
    arts = archive(240)
    idx = RelatedIndex.fit(arts, 3)
    before = dict(idx.top)
    assert all(p and all(int(s[1:]) % 12 == int(k[1:]) % 12 for s in p) for k, p in before.items())
    # a0007 (topic 7) is rewritten as a topic-2 story
    target = arts[7]
    new_body = " ".join(w.replace("t2w", "t2w") for w in arts[2].body.split()[::-1])
    changed = [replace(a, body=new_body) if a.slug == target.slug else a for a in arts]
    assert idx.update(changed) is True
    after = idx.top
    assert set(after) == set(before)
    assert all(int(s[1:]) % 12 == 2 for s in after["a0007"])
    # Lists move where a full fit of the edited archive moves them, and nowhere else: besides
    # the lists a0007 left or entered, the idf of every word it gained or lost moved too.
    full = RelatedIndex.fit(changed, 3).top
    moved = {k for k in before if before[k] != after[k]}
    assert moved == {k for k in before if before[k] != full[k]}
    assert after == full
    fresh = RelatedIndex.fit(arts, 3)
    fresh.update(changed)
    assert fresh.top == after
    assert idx.update(changed) is True and idx.top == after  # no change, no work


def test_update_asks_for_a_refit_when_much_changed_or_site_is_small() -> None:
    arts = archive(240)
    idx = RelatedIndex.fit(arts, 3)
    many = [replace(a, title=a.title + " again") if i < 30 else a for i, a in enumerate(arts)]
    assert idx.update(many) is False
    small = small_site()
    sidx = RelatedIndex.fit(small, 2)
    assert sidx.update([replace(small[0], body="changed"), *small[1:]]) is False


def test_removed_article_leaves_every_list() -> None:
    arts = archive(240)
    idx = RelatedIndex.fit(arts, 3)
    victim = next(iter(idx.top["a0000"]))
    assert idx.update([a for a in arts if a.slug != victim]) is True
    assert victim not in idx.top
    assert all(victim not in picks for picks in idx.top.values())


def tagged_archive(n: int, seed: int = 9) -> list[Article]:
    """archive() with tags on two thirds of the articles (so the tag blend takes part)."""
    rng = random.Random(seed)
    out = []
    for a in archive(n, seed):
        tags = tuple(rng.sample(["city", "law", "sport", "health", "money"], rng.randint(0, 2)))
        out.append(replace(a, tags=tags if int(a.slug[1:]) % 3 else ()))
    return out


def test_update_after_edits_equals_a_full_fit_every_time() -> None:
    rng = random.Random(11)
    arts = tagged_archive(300)
    idx = RelatedIndex.fit(arts, 3)
    partial = 0
    for step in range(12):
        i = rng.randrange(len(arts))
        a = arts[i]
        kind = step % 4
        if kind == 0:  # a few words more, one of them new to the archive
            a = replace(a, body=a.body + f" common3 t5w1 brandnew{step}")
        elif kind == 1:  # rewritten into another topic
            a = replace(a, body=arts[(i + 5) % len(arts)].body)
        elif kind == 2:  # re-dated and re-tagged
            a = replace(a, date=a.date + timedelta(days=40), tags=("law",))
        else:  # typo fix: the same words
            a = replace(a, title=a.title + "!")
        arts[i] = a
        assert idx.update(arts) is True
        assert idx.top == RelatedIndex.fit(arts, 3).top, step
        partial += idx.rescored < len(arts) // 4
    assert partial >= 6  # most edits rescored only the rows they moved, and the answer held


def test_update_after_an_addition_or_removal_equals_a_full_fit() -> None:
    arts = tagged_archive(200)
    idx = RelatedIndex.fit(arts, 3)
    added = [*arts, art("b0001", "t4w3 story extra", " ".join(["t4w3", "t4w7", "common5"] * 20), 30)]
    assert idx.update(added) is True
    assert idx.top == RelatedIndex.fit(added, 3).top
    fewer = [a for a in added if a.slug != "a0010"]
    assert idx.update(fewer) is True
    assert idx.top == RelatedIndex.fit(fewer, 3).top


def test_threads_give_the_same_answer() -> None:
    arts = tagged_archive(700)
    one = RelatedIndex.fit(arts, 3, RelatedParams(chunk=64))
    two = RelatedIndex.fit(arts, 3, RelatedParams(chunk=64), jobs=2)
    assert one.top == two.top
    assert (one.cands.col == two.cands.col).all() and (one.cands.neg == two.cands.neg).all()


def test_stop_words_are_scikit_learns() -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # heavy: only this test needs it

    assert STOP_WORDS == ENGLISH_STOP_WORDS  # copied so the CLI need not import scikit-learn


def test_update_with_exact_ties_equals_a_full_fit() -> None:
    """Three copies of every story (identical scores everywhere): the slug order must hold."""
    base = archive(60)
    arts = [replace(a, slug=f"{a.slug}-{c}") for a in base for c in "abc"]
    idx = RelatedIndex.fit(arts, 3, RelatedParams(slack=2))
    for step, i in enumerate([5, 40, 41, 100]):
        arts[i] = replace(arts[i], body=arts[i].body + f" common7 t3w{step}")
        assert idx.update(arts) is True
        assert idx.top == RelatedIndex.fit(arts, 3, RelatedParams(slack=2)).top, step


def _terms_by_regex(a: Article, params: RelatedParams) -> dict[str, tuple[int, int]]:
    """The definition: every TOKEN match in the whole text, counted where it stands."""
    out: dict[str, tuple[int, int]] = {}
    for token in re.findall(TOKEN, ". ".join([a.title] * params.title_repeat + [a.body])):
        term = _term(token)
        if term is not None:
            n, caps = out.get(term, (0, 0))
            out[term] = (n + 1, caps + token[0].isupper())
    return out


PIECES = [*"aAbZé1_'-.,;( )\t\n\x1c\xa0\u2003\u3000ß9", "Ms", "news", "ies", "The", "x's"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join), st.text(max_size=20))
def test_counting_by_pieces_equals_the_token_pattern_over_the_whole_text(body: str, title: str) -> None:
    a = art("x", title, body, 0)
    params = RelatedParams()
    for _ in range(2):  # the second time from the piece cache
        words, counts, caps = doc_terms(a, params)
        got = {w: (int(n), int(c)) for w, n, c in zip(words, counts, caps, strict=True)}
        assert got == _terms_by_regex(a, params)
        assert list(words) == sorted(words)


def test_an_edit_that_ties_with_a_bound_equals_a_full_fit() -> None:
    """An article rewritten into a fourth copy of another story: its scores tie with the copies
    at the edge of other rows' kept candidates, so only the slug order can place it."""
    base = archive(60)
    arts = [replace(a, slug=f"{a.slug}-{c}") for a in base for c in "abc"]
    params = RelatedParams(slack=1)
    idx = RelatedIndex.fit(arts, 2, params)
    for step, (i, j) in enumerate([(7, 30), (100, 31), (8, 150), (170, 3), (0, 90)]):
        arts[i] = replace(arts[j], slug=arts[i].slug)
        assert idx.update(arts) is True
        assert idx.top == RelatedIndex.fit(arts, 2, params).top, step


@pytest.mark.parametrize("chunk", [7, 64, 512])
@pytest.mark.parametrize("jobs", [1, 2])
def test_scoring_each_pair_once_ranks_exactly_as_scoring_every_row(chunk: int, jobs: int) -> None:
    """Blocks against the columns after them (each pair once) == every row against every column,
    candidates, bounds and ties included; an archive of triplets makes exact ties everywhere."""
    base = archive(50)
    triplets = [replace(a, slug=f"{a.slug}-{c}") for a in base for c in "abc"]
    dozens = [replace(a, slug=f"{a.slug}-{c:02d}") for a in archive(12) for c in range(12)]
    cases = (
        (tagged_archive(300), RelatedParams(chunk=chunk)),
        (triplets, RelatedParams(chunk=chunk, slack=2)),
        (dozens, RelatedParams(chunk=min(chunk, 16), slack=2)),  # ties at the edge of a block's best
    )
    for arts, params in cases:
        idx = RelatedIndex.fit(arts, 3, params, jobs=jobs)
        once, every = idx.cands, idx._empty_lists()
        rank_rows(idx._scorer(), every, np.arange(len(idx.slugs)), jobs)  # every row against every column
        assert once.top == every.top
        assert np.array_equal(once.col, every.col)
        assert np.array_equal(once.neg, every.neg)
        assert np.array_equal(once.bound_neg, every.bound_neg)
        assert once.bound_slug == every.bound_slug

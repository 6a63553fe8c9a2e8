"""`publisher build` on a temp project: outputs, byte-identical rebuilds, minimal rewrites, watch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
import html5lib
import pytest
from typer.testing import CliRunner

from publisher.build import BuildReport, build
from publisher.build.pool import parallel_map
from publisher.cli import app
from publisher.cli.build import watch_loop
from publisher.config import Settings
from publisher.errors import ContentError

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e527de6b0000000049454e44ae426082"
)


def md(title: str, date: str, body: str, extra: str = "") -> str:
    head = [f"title: {json.dumps(title, ensure_ascii=False)}", f"date: {date}"] + ([extra] if extra else [])
    return "---\n" + "\n".join(head) + "\n---\n\n" + body + "\n"


BODIES = {
    "bread": "Yeast ferments the flour and sugar in the dough; gluten traps the gas and the loaf rises.",
    "tram": "The tram network adds a line; passengers ride streetcars on rails between the depots.",
    "river": "Volunteers test the river water for nitrates; oxygen and algae show the water quality.",
}


def write(project: Path, rel: str, text: str | bytes) -> Path:
    path = project / "issues" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def site(project: Path, make_settings: Callable[..., Settings]) -> Settings:
    """Six published articles over three topics, a folder issue, a draft issue and a draft article."""
    write(project, "media/loaf.png", PNG)
    write(
        project,
        "bread-one.md",
        md(
            "Bread one",
            "2026-01-05",
            BODIES["bread"],
            "tags: [food, science]\nimage: media/loaf.png\nimage_alt: A loaf",
        ),
    )
    write(
        project,
        "bread-two.md",
        md("Bread two", "2026-01-12", BODIES["bread"] + " Sourdough too.", "tags: [food]"),
    )
    write(project, "tram-one.md", md("Tram one", "2026-02-01", BODIES["tram"], "tags: [cities]"))
    write(
        project,
        "tram-two.md",
        md("Tram two", "2026-02-08", BODIES["tram"] + " Night lines.", "tags: [cities]"),
    )
    write(project, "water/index.md", "---\ntitle: Water week\ndate: 2026-03-01\n---\n\nAll about water.\n")
    write(
        project,
        "water/river-one.md",
        md("River one", "2026-03-01", BODIES["river"], "tags: [science]\norder: 1"),
    )
    write(
        project, "water/river-two.md", md("River two", "2026-03-02", BODIES["river"] + " Floods.", "order: 2")
    )
    write(
        project, "water/river-draft.md", md("River draft", "2026-03-03", "Secret draft words.", "draft: true")
    )
    write(project, "secret-plan.md", md("Secret plan", "2026-03-05", "Draft issue body.", "draft: true"))
    return make_settings(paths={"state": str(project / ".state")})


def out_of(settings: Settings) -> Path:
    return settings.paths.output


def snapshot(out: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file()
    }


def test_build_writes_pages_feeds_emails_and_no_drafts(site: Settings) -> None:
    report = build(site)
    out = out_of(site)
    assert report.articles == 6 and report.issues == 5 and report.tags == 3
    slugs = ["bread-one", "bread-two", "tram-one", "tram-two", "river-one", "river-two"]
    for slug in slugs:
        assert (out / slug / "index.html").is_file()
    for path in [
        "index.html",
        "feed.xml",
        "atom.xml",
        "feed.json",
        "static/site.css",
        "media/bread-one/loaf.png",
    ]:
        assert (out / path).is_file(), path
    assert (out / "media/bread-one/loaf.png").read_bytes() == PNG
    for tag in ("food", "science", "cities"):
        for name in ("index.html", "feed.xml", "atom.xml", "feed.json"):
            assert (out / "tags" / tag / name).is_file()
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert (
        b"Secret" not in everything and b"river-draft" not in everything and b"secret-plan" not in everything
    )
    for name in ("feed.xml", "atom.xml"):
        d = feedparser.parse(out / name)
        assert d.bozo == 0
        assert [e.link.rsplit("/", 2)[-2] for e in d.entries] == slugs[::-1]
    food = feedparser.parse(out / "tags/food/atom.xml")
    assert [e.title for e in food.entries] == ["Bread two", "Bread one"]
    assert food.entries[1].enclosures[0].href == "https://news.example.org/media/bread-one/loaf.png"
    assert report.emails == 5
    for issue in ("bread-one", "tram-two", "water"):
        for ext in (".html", ".txt", ".eml"):
            assert (out / "emails" / f"{issue}{ext}").stat().st_size > 0
    assert not (out / "emails" / "secret-plan.html").exists()
    assert set(report.written) == set(snapshot(out))


def test_pages_parse_and_advertise_their_feeds(site: Settings) -> None:
    build(site)
    out = out_of(site)
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    for page in [out / "index.html", out / "bread-one/index.html", out / "tags/food/index.html"]:
        doc = parser.parse(page.read_bytes())
        alternates = {
            (ln.get("type"), ln.get("href")) for ln in doc.iter("link") if ln.get("rel") == "alternate"
        }
        for kind, name in [("application/rss+xml", "feed.xml"), ("application/atom+xml", "atom.xml")]:
            assert (kind, f"https://news.example.org/{name}") in alternates
        assert ("application/feed+json", "https://news.example.org/feed.json") in alternates
        assert len(list(doc.iter("h1"))) == 1
        assert doc.get("lang") == "en"
        assert any(a.get("href") == "https://news.example.org/subscribe" for a in doc.iter("a"))
    tag_doc = parser.parse((out / "tags/food/index.html").read_bytes())
    assert any(ln.get("href") == "https://news.example.org/tags/food/atom.xml" for ln in tag_doc.iter("link"))
    article = parser.parse((out / "bread-one/index.html").read_bytes())
    sections = {s.find("h2").text: [a.get("href") for a in s.iter("a")] for s in article.iter("section")}
    assert sections["Related news"][0] == "../bread-two/"
    assert "../bread-one/" not in sections["Latest news"] and sections["Latest news"][0] == "../river-two/"
    img = next(article.iter("img"))
    assert img.get("src") == "../media/bread-one/loaf.png" and img.get("alt") == "A loaf"


def test_rebuild_changes_no_byte_and_no_mtime(site: Settings) -> None:
    build(site)
    before = snapshot(out_of(site))
    time.sleep(0.01)
    again = build(site)
    assert again.written == () and again.removed == ()
    assert again.reloaded == 0 and again.rendered == 0
    assert snapshot(out_of(site)) == before


def test_fresh_build_elsewhere_gives_the_same_bytes(site: Settings, tmp_path: Path) -> None:
    build(site)
    other = tmp_path / "elsewhere"
    build(site, other)
    a, b = snapshot(out_of(site)), snapshot(other)
    assert {k: v[0] for k, v in a.items()} == {k: v[0] for k, v in b.items()}


def linked_from(out: Path, slug: str) -> set[str]:
    """Article pages whose lists link to ``slug``."""
    needle = f'href="../{slug}/"'.encode()
    return {
        p.relative_to(out).as_posix()
        for p in out.glob("*/index.html")
        if needle in p.read_bytes() and p.parent.name != slug
    }


def test_one_article_change_rewrites_only_what_shows_it(site: Settings, project: Path) -> None:
    build(site)
    out = out_of(site)
    listing_before = linked_from(out, "tram-one")
    before = snapshot(out)
    src = project / "issues/tram-one.md"
    src.write_text(src.read_text() + "\nThe depots and the rails and the streetcars.\n")
    report = build(site)
    listing_after = linked_from(out, "tram-one")
    allowed = (
        {
            "tram-one/index.html",
            "index.html",
            "feed.xml",
            "atom.xml",
            "feed.json",
            "tags/cities/feed.xml",
            "tags/cities/atom.xml",
            "tags/cities/feed.json",
            "tags/cities/index.html",
            "emails/tram-one.html",
            "emails/tram-one.txt",
            "emails/tram-one.eml",
        }
        | listing_before
        | listing_after
    )
    assert {"tram-one/index.html", "feed.xml", "atom.xml", "emails/tram-one.eml"} <= set(report.written)
    assert set(report.written) <= allowed, set(report.written) - allowed
    assert report.reloaded == 1 and report.rendered == 1
    after = snapshot(out)
    for path, (data, mtime) in before.items():
        if path not in report.written:
            assert after[path] == (data, mtime), path


def test_removed_article_takes_its_outputs_along(site: Settings, project: Path) -> None:
    build(site)
    out = out_of(site)
    (project / "issues/bread-one.md").unlink()
    report = build(site)
    assert "bread-one/index.html" in report.removed and "emails/bread-one.eml" in report.removed
    assert not (out / "bread-one").exists() and not (out / "media/bread-one").exists()
    assert "tags/food/index.html" in report.written
    (project / "issues/bread-two.md").unlink()
    report = build(site)
    assert not (out / "tags/food").exists()  # the tag has no articles left
    assert "bread-one" not in (out / "index.html").read_text()


def test_hostile_article_is_escaped_everywhere(site: Settings, project: Path) -> None:
    title = "<script>alert(1)</script> ]]> & 🎉"
    body = "<script>alert(2)</script>\n\n# Heading\n\n" + " ".join(["word"] * 5000)
    write(project, "hostile.md", md(title, "2026-04-01", body, "tags: [food]"))
    build(site)
    out = out_of(site)
    for page in ["hostile/index.html", "index.html", "tags/food/index.html", "bread-one/index.html"]:
        text = (out / page).read_text()
        assert "<script>" not in text, page
    page = (out / "hostile/index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt; &amp; 🎉" in page
    assert page.count("<h1>") == 1 and "<h2>Heading</h2>" in page
    for name in ("feed.xml", "atom.xml"):
        d = feedparser.parse(out / name)
        assert d.bozo == 0 and d.entries[0].title == title
    assert json.loads((out / "feed.json").read_text())["items"][0]["title"] == title


def test_content_errors_fail_the_build_with_every_problem(site: Settings, project: Path) -> None:
    write(project, "bad-date.md", md("Bad", "2026-13-01", "x"))
    write(project, "no-title.md", "---\ndate: 2026-01-01\n---\n\nbody\n")
    with pytest.raises(ContentError) as err:
        build(site)
    lines = err.value.lines()
    assert any("bad-date.md:3" in ln and "date" in ln for ln in lines)
    assert any("no-title.md" in ln and "title" in ln for ln in lines)
    result = CliRunner().invoke(app, ["build", "--config", str(project / "config.yaml")])
    assert result.exit_code == 1
    assert "bad-date.md:3" in result.output and "Traceback" not in result.output


def test_cli_says_where_everything_is(site: Settings, project: Path, tmp_path: Path) -> None:
    out = tmp_path / "public"
    result = CliRunner().invoke(app, ["build", "--config", str(project / "config.yaml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "feed.xml" in result.output and "6 article(s)" in result.output and "5 issue(s)" in result.output
    assert (out / "feed.xml").is_file()
    again = CliRunner().invoke(app, ["build", "--config", str(project / "config.yaml"), "--out", str(out)])
    assert "0 file(s) changed" in again.output


def test_watch_rebuilds_after_a_real_file_change(site: Settings, project: Path) -> None:
    first: BuildReport = build(site)
    assert first.articles == 6
    stop = threading.Event()
    thread = threading.Thread(target=watch_loop, args=(project / "config.yaml", None, 1, stop), daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # let the watcher start
        write(project, "fresh-news.md", md("Fresh news", "2026-05-01", "Just in."))
        page = out_of(site) / "fresh-news" / "index.html"
        deadline = time.monotonic() + 15
        while not page.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page.exists()
        assert "Fresh news" in (out_of(site) / "index.html").read_text()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


WORDS = {
    "port": tuple(
        ["harbour", "cranes", "container", "ships", "dockers", "berth", "cargo", "quay", "tugboat", "freight"]
    ),
    "farm": tuple(
        [
            "harvest",
            "wheat",
            "tractor",
            "barley",
            "orchard",
            "cattle",
            "dairy",
            "irrigation",
            "fertiliser",
            "barn",
        ]
    ),
    "space": tuple(
        [
            "rocket",
            "orbit",
            "satellite",
            "launch",
            "astronaut",
            "telescope",
            "comet",
            "lunar",
            "module",
            "booster",
        ]
    ),
    "court": tuple(
        [
            "judge",
            "verdict",
            "appeal",
            "jury",
            "lawyer",
            "trial",
            "sentence",
            "testimony",
            "prosecutor",
            "ruling",
        ]
    ),
}


def big_site(project: Path, n: int) -> None:
    """``n`` articles over four topics, tagged, spread over two years (enough for pages and related)."""
    import random

    rng = random.Random(4)
    topics = list(WORDS)
    for i in range(n):
        topic = topics[i % 4]
        words = rng.choices(WORDS[topic], k=40) + rng.choices(WORDS[topics[(i + 1) % 4]], k=6)
        body = " ".join(words).capitalize() + ".\n\nA second paragraph about the " + topic + "."
        day = f"2024-{1 + (i * 7 // 28) % 12:02d}-{1 + (i * 7) % 28:02d}T{i % 24:02d}:00:00+00:00"
        write(project, f"{topic}-{i:03d}.md", md(f"{topic.title()} story {i}", day, body, f"tags: [{topic}]"))


@pytest.fixture
def big(project: Path, make_settings: Callable[..., Settings]) -> Settings:
    big_site(project, 130)
    return make_settings(paths={"state": str(project / ".state")})


def test_incremental_rebuild_gives_the_bytes_of_a_fresh_build(
    big: Settings, project: Path, tmp_path: Path
) -> None:
    build(big, emails=False)
    src = project / "issues/port-040.md"
    # the same summary, but the story turns to farming (with a word new to the archive)
    text = src.read_text().replace("tags: [port]", "tags: [farm]")
    src.write_text(text + "\n" + " ".join(WORDS["farm"] * 6) + " zeppelin.\n")
    report = build(big, emails=False)
    assert report.reloaded == 1 and report.articles == 130
    fresh = tmp_path / "fresh"
    build(big, fresh, emails=False)
    a, b = snapshot(out_of(big)), snapshot(fresh)
    assert set(a) == set(b)
    assert [k for k in a if a[k][0] != b[k][0]] == []
    # and the edit moved related lists elsewhere than on its own page (the test is not vacuous)
    pages = [p for p in report.written if p.count("/") == 1 and p.endswith("/index.html")]
    assert set(pages) - {"port-040/index.html"}, pages


def test_archive_pages_count_from_the_oldest(big: Settings, project: Path) -> None:
    build(big, emails=False)
    out = out_of(big)
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    index = parser.parse((out / "index.html").read_bytes())
    entries = [li for li in index.iter("li") if li.get("class") == "entry"]
    assert len(entries) == 80  # 130 = 80 on the index + 50 on page/1
    assert [ln.get("href") for ln in index.iter("link") if ln.get("rel") == "next"] == ["page/1/"]
    page1 = parser.parse((out / "page/1/index.html").read_bytes())
    assert len([li for li in page1.iter("li") if li.get("class") == "entry"]) == 50
    assert [ln.get("href") for ln in page1.iter("link") if ln.get("rel") == "prev"] == ["../../"]
    assert any(a.get("href") == "../../court-003/" for a in page1.iter("a"))
    assert not (out / "page/2").exists()
    before = snapshot(out)
    # a new article changes the index page, not the older pages
    write(project, "farm-999.md", md("Farm news", "2026-01-01", "Wheat and barley.", "tags: [farm]"))
    report = build(big, emails=False)
    assert "index.html" in report.written and "farm-999/index.html" in report.written
    assert "page/1/index.html" not in report.written
    assert snapshot(out)["page/1/index.html"] == before["page/1/index.html"]


def test_a_slug_named_page_is_refused(site: Settings, project: Path) -> None:
    write(project, "page.md", md("Page", "2026-01-01", "x"))
    with pytest.raises(ContentError) as exc:
        build(site)
    assert "slug 'page' is reserved" in str(exc.value)


def test_a_deleted_output_in_a_big_folder_is_made_again(big: Settings) -> None:
    build(big)  # emails/ holds 390 files: its mtime stands for all of them
    out = out_of(big)
    again = build(big)
    assert again.written == ()
    (out / "emails/farm-001.txt").unlink()
    report = build(big)
    assert report.written == ("emails/farm-001.txt",)
    assert (out / "emails/farm-001.txt").stat().st_size > 0


def test_an_email_remade_after_an_edit_matches_a_fresh_build(
    site: Settings, project: Path, tmp_path: Path
) -> None:
    """The edited issue's email is rendered in this process (one task): the bytes of a cold build."""
    build(site)
    fresh = tmp_path / "fresh"
    src = project / "issues/tram-one.md"
    src.write_text(src.read_text() + "\nThe depots and the rails.\n")
    report = build(site)
    assert {"emails/tram-one.eml", "emails/tram-one.html", "emails/tram-one.txt"} <= set(report.written)
    build(site, fresh)
    for ext in (".eml", ".html", ".txt"):
        name = f"emails/tram-one{ext}"
        assert (out_of(site) / name).read_bytes() == (fresh / name).read_bytes(), name


def test_compiled_templates_are_kept_and_an_edited_template_is_compiled_again(
    site: Settings, project: Path
) -> None:
    from publisher.render import templates

    build(site)
    kept = site.paths.state / "build" / "templates" / "html"
    assert any(kept.glob("*.cache"))
    page = project / "templates" / "base.html"
    page.write_text(page.read_text().replace("</main>", "<p>edited-template</p></main>", 1))
    templates.environment.cache_clear()  # as a fresh process: compiled code comes from the folder
    templates._text_environment.cache_clear()
    build(site)
    assert "edited-template" in (out_of(site) / "bread-one" / "index.html").read_text()


def test_an_edited_email_template_remakes_every_email_in_a_big_folder(big: Settings) -> None:
    """Unchanged issues keep their emails unhashed only while what every email is made of holds."""
    build(big)
    out = out_of(big)
    layout = big.paths.templates / "_email_layout.html"
    layout.write_text(layout.read_text().replace("</body>", "<!-- edited layout --></body>", 1))
    report = build(big)
    mails = [p for p in report.written if p.startswith("emails/") and p.endswith(".html")]
    assert len(mails) == len(list((out / "emails").glob("*.html"))) > 100
    assert "edited layout" in (out / "emails" / "farm-001.html").read_text()


def _double(context: int, x: int) -> int:
    return context * x


def test_the_pool_leaves_a_builds_frozen_state_frozen() -> None:
    """A build freezes its loaded state for the collector until it ends; the pool in between
    freezes for its fork and undoes only its own freeze."""
    import gc

    items = list(range(200))
    gc.freeze()
    try:
        assert list(parallel_map(_double, items, 2, 2)) == [2 * x for x in items]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert list(parallel_map(_double, items, 2, 3)) == [3 * x for x in items]
    assert gc.get_freeze_count() == 0

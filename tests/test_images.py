"""Local images in article bodies and hero images: copied, resolved, sized and checked (issue 13)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import html as lxml_html
from PIL import Image
from typer.testing import CliRunner

from publisher.build import build
from publisher.cli import app
from publisher.config import Settings

SITE = "https://news.example.org"
BODY = "Counted on foot.\n\n![Benches per street](media/chart.png)\n\nThe end."


def png(path: Path, size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 120, 40)).save(path, "PNG")


def article(body: str = BODY, extra: str = "image: media/hero.png\nimage_alt: A bench in the sun") -> str:
    return f"---\ntitle: Benches\ndate: 2026-03-01\n{extra}\n---\n\n{body}\n"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("PUBLISHER_SECRET_KEY", "test-secret-0123456789abcdef0123456789")
    monkeypatch.setenv("COLUMNS", "200")
    return CliRunner()


@pytest.fixture
def built(project: Path, make_settings: Callable[..., Settings]) -> Path:
    """A built site whose one article has a wide body image and a small hero image."""
    png(project / "issues/media/chart.png", (1200, 600))
    png(project / "issues/media/hero.png", (300, 200))
    (project / "issues/benches.md").write_text(article(), encoding="utf-8")
    settings = make_settings()
    build(settings)
    return Path(settings.paths.output)


def test_body_image_is_copied_where_the_page_points(built: Path) -> None:
    page = lxml_html.fromstring((built / "benches/index.html").read_bytes())
    src = page.xpath("//img[@alt='Benches per street']/@src")[0]
    assert (built / "benches" / src).read_bytes() == (built.parent / "issues/media/chart.png").read_bytes()
    assert page.xpath("//figure[@class='hero']/img/@alt") == ["A bench in the sun"]


def test_email_images_are_absolute_sized_and_shrink(built: Path) -> None:
    doc = lxml_html.fromstring((built / "emails/benches.html").read_bytes())
    body = doc.xpath("//img[@alt='Benches per street']")[0]
    assert body.get("src") == f"{SITE}/benches/media/chart.png"
    assert (body.get("width"), body.get("height")) == ("536", "268")  # the column's width, same ratio
    hero = doc.xpath("//img[contains(@class, 'hero')]")[0]
    assert (hero.get("src"), hero.get("alt")) == (f"{SITE}/media/benches/hero.png", "A bench in the sun")
    assert (hero.get("width"), hero.get("height")) == ("300", "200")
    for img in (body, hero):
        style = img.get("style").replace(" ", "")
        assert "max-width:100%" in style and "height:auto" in style
    text = (built / "emails/benches.txt").read_text()
    assert f"[Image: Benches per street]\n({SITE}/benches/media/chart.png)" in text  # wrapped


def test_feeds_carry_the_absolute_image_url(built: Path) -> None:
    url = f"{SITE}/benches/media/chart.png"
    for name in ("feed.xml", "atom.xml"):
        assert f'src="{url}"' in (built / name).read_text().replace("&quot;", '"'), name
    item = json.loads((built / "feed.json").read_text())["items"][0]
    assert f'src="{url}"' in item["content_html"]
    assert (built / url.removeprefix(SITE + "/")).is_file()  # the URL is served from the built site


def test_hero_without_alt_is_decorative_everywhere_and_check_warns(
    runner: CliRunner, project: Path, make_settings: Callable[..., Settings]
) -> None:
    png(project / "issues/media/chart.png", (40, 20))
    png(project / "issues/media/hero.png", (40, 20))
    (project / "issues/benches.md").write_text(article(extra="image: media/hero.png"), encoding="utf-8")
    result = runner.invoke(app, ["check", "-c", str(project / "config.yaml")])
    assert result.exit_code == 0, result.output
    assert "warning: issues/benches.md:4: image_alt: missing" in result.stderr
    settings = make_settings()
    build(settings)
    out = Path(settings.paths.output)
    email = lxml_html.fromstring((out / "emails/benches.html").read_bytes())
    page = lxml_html.fromstring((out / "benches/index.html").read_bytes())
    assert email.xpath("//img[contains(@class, 'hero')]/@alt") == [""]
    assert page.xpath("//figure[@class='hero']/img/@alt") == [""]


def test_check_names_a_missing_body_image_with_its_line(runner: CliRunner, project: Path) -> None:
    png(project / "issues/media/hero.png", (40, 20))
    body = "One.\n\nTwo, with a picture:\n![gone](media/gone.png)\n\nAnd one that leaves: ![up](../up.png)"
    (project / "issues/benches.md").write_text(article(body=body), encoding="utf-8")
    result = runner.invoke(app, ["check", "-c", str(project / "config.yaml")])
    assert result.exit_code == 1
    assert "issues/benches.md:11: image in the body (media/gone.png): file not found" in result.stderr
    assert "issues/benches.md:13: image in the body (../up.png): keep body images" in result.stderr

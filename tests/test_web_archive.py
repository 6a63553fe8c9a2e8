"""The built site over real HTTP: content types, ETag / Last-Modified / 304, index pages, no traversal."""

from __future__ import annotations

import http.client
import os
import shutil
import time
from collections.abc import Callable
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from publisher.config import Settings, load_settings
from publisher.web import ServerHandle
from tests.fixtures_web import SECRET, main_text


@pytest.fixture
def site(built_site: Path, tmp_path: Path) -> Settings:
    """Settings whose output is a private copy of the built sample site (tests may change it)."""
    out = tmp_path / "site"
    shutil.copytree(built_site / "site", out, symlinks=True)
    return load_settings(
        built_site / "config.yaml",
        environ={"PUBLISHER_SECRET_KEY": SECRET},
        overrides={"paths": {"output": str(out), "state": str(tmp_path / "state")}},
    )


@pytest.fixture
def server(
    site: Settings, make_app: Callable[..., FastAPI], live_server: Callable[..., ServerHandle]
) -> ServerHandle:
    return live_server(site, make_app(site))


def raw_get(handle: ServerHandle, path: str) -> tuple[int, dict[str, str], bytes]:
    """A request with the path sent exactly as given (no client-side dot-segment clean-up)."""
    conn = http.client.HTTPConnection(handle.host, handle.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/feed.xml", "application/rss+xml"),
        ("/atom.xml", "application/atom+xml"),
        ("/feed.json", "application/feed+json"),
        ("/", "text/html"),
        ("/why-bread-rises/", "text/html"),
        ("/tags/science/", "text/html"),
        ("/tags/science/feed.xml", "application/rss+xml"),
        ("/static/site.css", "text/css"),
    ],
)
def test_content_types_and_validators(server: ServerHandle, site: Settings, path: str, kind: str) -> None:
    with httpx.Client(base_url=server.url) as http:
        r = http.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"].split(";")[0] == kind
    file = site.paths.output / path.lstrip("/")
    file = file / "index.html" if path.endswith("/") else file
    assert r.content == file.read_bytes()
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")  # strong
    modified = parsedate_to_datetime(r.headers["last-modified"])
    assert abs(modified.timestamp() - file.stat().st_mtime) < 1
    assert r.headers["x-content-type-options"] == "nosniff"


def test_conditional_get_answers_304(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url) as http:
        first = http.get("/feed.xml")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        for headers in (
            {"If-None-Match": etag},
            {"If-None-Match": f'"other", W/{etag}'},
            {"If-None-Match": "*"},
            {"If-Modified-Since": modified},
            {"If-Modified-Since": formatdate(time.time() + 3600, usegmt=True)},
        ):
            r = http.get("/feed.xml", headers=headers)
            assert r.status_code == 304, headers
            assert r.content == b""
            assert r.headers["etag"] == etag and r.headers["last-modified"] == modified
        for headers in (
            {"If-None-Match": '"something-else"'},
            {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
            {"If-Modified-Since": "not a date"},
            # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
            {"If-None-Match": '"something-else"', "If-Modified-Since": modified},
        ):
            r = http.get("/feed.xml", headers=headers)
            assert r.status_code == 200, headers
            assert r.content == first.content
        head = http.head("/feed.xml")
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag


def test_a_changed_file_gets_a_new_etag(server: ServerHandle, site: Settings) -> None:
    feed = site.paths.output / "feed.json"
    with httpx.Client(base_url=server.url) as http:
        old = http.get("/feed.json")
        assert http.get("/feed.json", headers={"If-None-Match": old.headers["etag"]}).status_code == 304
        feed.write_bytes(feed.read_bytes().replace(b"Example Gazette", b"Example Gazette!"))
        st = feed.stat()
        os.utime(feed, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
        new = http.get("/feed.json", headers={"If-None-Match": old.headers["etag"]})
    assert new.status_code == 200
    assert new.headers["etag"] != old.headers["etag"]
    assert b"Example Gazette!" in new.content


def test_folder_without_slash_redirects_and_missing_is_404(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=False) as http:
        r = http.get("/why-bread-rises?x=1")
        assert r.status_code == 301 and r.headers["location"] == "/why-bread-rises/?x=1"
        missing = http.get("/no-such-article/")
        assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
        assert "Not found" in main_text(missing.text)


@pytest.mark.parametrize(
    "path",
    [
        "/../config.yaml",
        "/%2e%2e/config.yaml",
        "/static/../../config.yaml",
        "/static/%2e%2e/%2e%2e/config.yaml",
        "/..%2fconfig.yaml",
        "/%5c..%5cconfig.yaml",
        "/.hidden",
        "//etc/passwd",
        "/escape/secret.txt",
    ],
)
def test_no_path_traversal(server: ServerHandle, site: Settings, path: str) -> None:
    outside = site.paths.output.parent / "secret.txt"
    outside.write_text("TOP SECRET")
    (site.paths.output / ".hidden").write_text("TOP SECRET")
    link = site.paths.output / "escape"
    if not link.exists():
        link.symlink_to(site.paths.output.parent, target_is_directory=True)
    status, _headers, body = raw_get(server, path)
    assert status in (400, 404), (path, status)
    assert b"TOP SECRET" not in body and b"site:" not in body


def test_not_built_yet_says_what_to_do(
    web_settings: Callable[..., Settings],
    make_app: Callable[..., FastAPI],
    live_server: Callable[..., ServerHandle],
) -> None:
    settings = web_settings()
    assert not settings.paths.output.exists()
    handle = live_server(settings, make_app(settings))
    with httpx.Client(base_url=handle.url) as http:
        for path in ("/", "/feed.xml"):
            r = http.get(path)
            assert r.status_code == 503
            assert "publisher build" in main_text(r.text)
        # the dynamic pages work without a built site
        assert http.get("/subscribe").status_code == 200

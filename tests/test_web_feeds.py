"""Feeds and pages served compressed, the feed list, OPML, and the tag pages' own feed links.

Real HTTP against a real uvicorn serving the built sample site (issue 13, item 16).
"""

from __future__ import annotations

import gzip
import http.client
from xml.etree import ElementTree

import httpx
import pytest

from publisher.config import Settings
from publisher.web import ServerHandle
from tests.fixtures_web import NS, parse_html
from tests.test_web_archive import server, site  # noqa: F401 (fixtures)


def get(handle: ServerHandle, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """A request with exactly these headers (no client default Accept-Encoding), body as sent."""
    conn = http.client.HTTPConnection(handle.host, handle.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name.replace("_", "-"), value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", ["/feed.xml", "/atom.xml", "/feed.json", "/", "/tags/science/"])
def test_text_is_served_gzipped_to_who_takes_it_with_an_etag_per_encoding(
    server: ServerHandle,  # noqa: F811
    site: Settings,  # noqa: F811
    path: str,
) -> None:
    file = site.paths.output / path.lstrip("/")
    file = file / "index.html" if path.endswith("/") else file
    status, plain_h, plain = get(server, path)
    assert status == 200 and plain == file.read_bytes() and "content-encoding" not in plain_h
    status, gz_h, packed = get(server, path, Accept_Encoding="br, gzip;q=0.8")
    assert status == 200 and gz_h["content-encoding"] == "gzip"
    assert gzip.decompress(packed) == plain and len(packed) < len(plain)
    assert gz_h["vary"] == plain_h["vary"] == "Accept-Encoding"
    assert gz_h["etag"] != plain_h["etag"] and gz_h["etag"].endswith('-gz"')
    # each representation revalidates against its own tag
    assert get(server, path, Accept_Encoding="gzip", If_None_Match=gz_h["etag"])[0] == 304
    assert get(server, path, If_None_Match=plain_h["etag"])[0] == 304
    assert get(server, path, Accept_Encoding="gzip", If_None_Match=plain_h["etag"])[0] == 200
    for refusal in ("gzip;q=0", "identity", "deflate", "gzip;q=zero"):
        status, h, body = get(server, path, Accept_Encoding=refusal)
        assert status == 200 and "content-encoding" not in h and body == plain, refusal


def test_the_feed_list_and_opml_name_every_feed(server: ServerHandle, site: Settings) -> None:  # noqa: F811
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/feeds")
        opml = client.get("/feeds.opml")
        tag_page = client.get("/tags/science/")
    assert page.status_code == 200 and opml.status_code == 200
    assert opml.headers["content-type"].startswith("text/x-opml")
    tags = sorted(p.parent.name for p in (site.paths.output / "tags").glob("*/feed.xml"))
    base = site.site.url.rstrip("/")
    hrefs = {a.get("href") for a in parse_html(page.text).iter(f"{{{NS['h']}}}a")}
    for path in ["", *(f"tags/{t}/" for t in tags)]:
        for name in ("feed.xml", "atom.xml", "feed.json"):
            assert f"{base}/{path}{name}" in hrefs
            assert (site.paths.output / path / name).is_file()  # every listed feed exists
    outlines = ElementTree.fromstring(opml.content).findall("./body/outline")
    assert [o.get("xmlUrl") for o in outlines] == [
        f"{base}/feed.xml",
        *(f"{base}/tags/{t}/feed.xml" for t in tags),
    ]
    assert all(o.get("type") == "rss" and o.get("text") for o in outlines)
    # a tag page links its own feeds where a person sees them
    links = parse_html(tag_page.text).findall(".//h:p[@class='tag-feeds']/h:a", NS)
    assert [a.get("href") for a in links] == [
        f"{base}/tags/science/{n}" for n in ("feed.xml", "atom.xml", "feed.json")
    ]


def test_opml_escapes_whatever_a_title_holds(site: Settings) -> None:  # noqa: F811
    from publisher.web.feedlist import feed_groups, opml

    hostile = site.model_copy(update={"site": site.site.model_copy(update={"title": "A \"Q\" <b> & 'x'"})})
    doc = ElementTree.fromstring(opml(hostile, feed_groups(hostile, ("science",))))
    assert doc.find("./head/title").text == "A \"Q\" <b> & 'x' feeds"
    assert [o.get("title") for o in doc.findall("./body/outline")] == [
        "A \"Q\" <b> & 'x'",
        "A \"Q\" <b> & 'x': science",
    ]

"""RSS 2.0 and Atom 1.0 through feedgen 1.0.0, with its known traps worked around.

feedgen traps (each pinned by a test in tests/test_feeds.py that fails when an
upgrade changes it, so the workaround can go):

- Atom entry links lose rel/type/length (issue #135): an enclosure turns into a
  second alternate link. We rewrite each entry's links with lxml afterwards.
- ``content(type='CDATA')`` writes ``type="CDATA"`` into Atom (invalid): we use
  ``type='html'`` and let lxml escape.
- ``description()`` becomes the Atom *content*: we only call ``summary()``
  (which also fills the RSS description) and ``content()``.
- ``add_entry()`` prepends by default: we pass ``order='append'``.
- Feed and entry dates default to now, and the generator carries feedgen's
  version: we set every date from the content and name ourselves as generator,
  so a rebuild is byte-identical.
- The RSS channel <link> is the last feed-level link added (not the alternate):
  we add the self link first.
- Atom dates come out as ``+00:00``: we rewrite UTC to ``Z`` (the validator
  prefers it).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from feedgen.feed import FeedGenerator
from lxml import etree

from publisher.feeds.common import FeedInfo, Item, newest_date

ATOM_NS = "http://www.w3.org/2005/Atom"
GENERATOR = "publisher"
USE_TREE = True  # see _atom_tree (the tests turn it off to compare)
_PARSER = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)


def _generator(info: FeedInfo, items: Sequence[Item], *, rss: bool) -> FeedGenerator:
    fg = FeedGenerator()
    if rss:
        fg.load_extension("dc", atom=False, rss=True)
    updated = newest_date(items)
    fg.id(info.id)
    fg.title(info.title)
    fg.description(info.description)
    fg.subtitle(info.description)
    fg.language(info.language)
    fg.author(name=info.author_name, email=info.author_email)
    fg.generator(GENERATOR)  # no version: an upgrade must not change the bytes
    fg.updated(updated)
    fg.lastBuildDate(updated)
    fg.pubDate(updated)
    # The RSS <link> is whichever feed link was added *last*: self first, then the page.
    if rss:
        fg.link(href=info.base_url + "feed.xml", rel="self", type="application/rss+xml")
    else:
        fg.link(href=info.base_url + "atom.xml", rel="self", type="application/atom+xml")
    fg.link(href=info.home_url, rel="alternate", type="text/html")
    for item in items:
        fe = fg.add_entry(order="append")
        fe.id(item.id)  # also the RSS guid, isPermaLink="false" (a tag: URI is no URL)
        fe.title(item.title)
        fe.link(href=item.url, rel="alternate", type="text/html")
        if item.has_enclosure:
            fe.enclosure(item.image_url, str(item.image_length), item.image_type)
        # The RSS description is HTML; escaping the plain summary keeps a title-like
        # "<script>" in it text, not markup. Atom gets the same string typed html.
        fe.summary(html.escape(item.summary, quote=False), type="html")
        fe.content(item.content_html, type="html")
        fe.published(item.date)
        fe.updated(item.date)
        if rss:
            # RSS <author> must be an email address; a name goes in dc:creator.
            fe.dc.dc_creator(item.author)
        else:
            fe.author(name=item.author)
        for tag in item.tags:
            fe.category(term=tag)
    return fg


def rss_bytes(info: FeedInfo, items: Sequence[Item]) -> bytes:
    """RSS 2.0 with content:encoded, dc:creator, guid, enclosure and an atom:link self."""
    return _generator(info, items, rss=True).rss_str(pretty=True, encoding="UTF-8")


def atom_bytes(info: FeedInfo, items: Sequence[Item]) -> bytes:
    """Atom 1.0, post-processed to restore entry link attributes and Z dates."""
    root = _atom_tree(_generator(info, items, rss=False))
    by_id = {item.id: item for item in items}
    for entry in root.iterfind(f"{{{ATOM_NS}}}entry"):
        item = by_id[entry.findtext(f"{{{ATOM_NS}}}id")]
        _fix_links(entry, item)
    for el in root.iter(f"{{{ATOM_NS}}}updated", f"{{{ATOM_NS}}}published"):
        if el.text and el.text.endswith("+00:00"):
            el.text = el.text[: -len("+00:00")] + "Z"
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")


def _atom_tree(fg: FeedGenerator) -> etree._Element:
    """feedgen's Atom tree as it is, or else parsed back from its text.

    ``_create_atom`` is what ``atom_str`` serialises; taking the tree saves printing and
    re-parsing every feed (half the cost of an Atom feed). It is feedgen's private API,
    so if an upgrade drops it the slow way still gives the same bytes
    (tests/test_feeds.py checks both ways agree).
    """
    create = getattr(fg, "_create_atom", None) if USE_TREE else None
    if create is not None:
        made = create()
        root = made[0] if isinstance(made, tuple) else made
        if isinstance(root, etree._Element) and root.tag == f"{{{ATOM_NS}}}feed":
            return root
    return etree.fromstring(fg.atom_str(pretty=False, encoding="UTF-8"), _PARSER)


def _fix_links(entry: etree._Element, item: Item) -> None:
    """Replace feedgen's attribute-less entry links by a proper alternate and enclosure."""
    old = entry.findall(f"{{{ATOM_NS}}}link")
    index = entry.index(old[0]) if old else len(entry)
    for el in old:
        entry.remove(el)
    links = [{"rel": "alternate", "type": "text/html", "href": item.url}]
    if item.has_enclosure:
        links.append(
            {
                "rel": "enclosure",
                "type": item.image_type,
                "length": str(item.image_length),
                "href": item.image_url or "",
            }
        )
    for offset, attrs in enumerate(links):
        el = etree.Element(f"{{{ATOM_NS}}}link")
        for key in ("href", "rel", "type", "length"):
            if key in attrs:
                el.set(key, attrs[key])
        entry.insert(index + offset, el)

"""Markdown to HTML (publisher.render.markdown): markdown-it-pyrs, markdown-it-py where it must."""

from __future__ import annotations

import html5lib
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.render.markdown import fast_parser, markdown_to_html, parser

# The same document through both parsers must agree: a rule left out of the fast parser's
# list (or one it has that markdown-it-py has not) shows up here.
COMMONMARK = """\
# Heading *one*

Setext heading
--------------

A paragraph with *emphasis*, **strong**, `code <b>`, [a link](https://example.org/a?b=1&c=2 "Title"),
![an image](media/pic.png), <https://example.org/auto>, <editor@example.org>, &copy; &#35; &amp;,
a hard break\\
and another\x20\x20
line, an escaped \\*star\\*, and a [reference][ref].

> A quote
> - with a list

1. one
2. two
   - nested

* loose

* list

```python
if a < b and c > d:
    print("x")
```

    indented code

---

| left | centre | right |
|:-----|:------:|------:|
| 1 | `two` | *three* |
| four | | six |

[ref]: https://example.org/ref 'Ref title'
"""


def test_commonmark_and_tables_render_as_markdown_it_py_does():
    out = markdown_to_html(COMMONMARK)
    assert out == parser().render(COMMONMARK)
    assert out == fast_parser().render(COMMONMARK)  # the fast path took it
    assert '<th style="text-align:center">centre</th>' in out
    assert '<td style="text-align:right"><em>three</em></td>' in out
    assert '<a href="https://example.org/ref" title="Ref title">reference</a>' in out
    assert '<code class="language-python">if a &lt; b and c &gt; d:' in out


def test_raw_html_is_escaped_not_passed_through():
    source = (
        "<script>alert(1)</script>\n\n"
        '<div onclick="x()">\n*block*\n</div>\n\n'
        "Text <img src=x onerror=alert(2)> and <b>bold</b> <!-- note -->.\n"
    )
    out = markdown_to_html(source)
    assert out == fast_parser().render(source) == parser().render(source)
    assert "<script" not in out and "<img" not in out and "<div" not in out and "<b>" not in out
    assert "<!--" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&lt;img src=x onerror=alert(2)&gt;" in out
    assert "&lt;div onclick=&quot;x()&quot;&gt;\n<em>block</em>" in out


def test_dangerous_link_schemes_are_not_linked():
    out = markdown_to_html("[a](javascript:alert(1)) [b](vbscript:x) [c](data:text/html,x) [d](JaVaScRiPt:x)")
    assert "href" not in out


def test_footnotes_render_with_markdown_it_py():
    # Written right under the paragraph, and indented by two spaces: two forms that
    # markdown-it-pyrs 0.4's footnote plugin gets wrong.
    source = "Text[^1] and more[^n], inline^[a *note*].\n[^1]: First note.\n\n  [^n]: Second note.\n"
    out = markdown_to_html(source)
    assert out == parser().render(source)
    assert '<sup class="footnote-ref"><a href="#fn1" id="fnref1">[1]</a></sup>' in out
    assert '<li id="fn1" class="footnote-item"><p>First note. <a href="#fnref1"' in out
    assert '<li id="fn2" class="footnote-item"><p>Second note. <a href="#fnref2"' in out
    assert '<li id="fn3" class="footnote-item"><p>a <em>note</em> <a href="#fnref3"' in out
    assert "]:" not in out


def test_table_with_footnote_and_raw_html_in_cells():
    source = "| a | b |\n|---|---|\n| <script>x</script> | y[^1] |\n\n[^1]: <img src=x onerror=y>\n"
    out = markdown_to_html(source)
    assert "<table>" in out and '<li id="fn1" class="footnote-item">' in out
    assert "<script" not in out and "<img" not in out


def test_input_that_panics_markdown_it_pyrs_still_renders():
    # markdown-it 0.6.0 indexes out of bounds on an unclosed "[" before a backtick.
    for source in ("[`a", "See [`config` for more", "x\n\n[`\n"):
        assert markdown_to_html(source) == parser().render(source)


# fmt: off
_PIECES = (
    "*", "_", "`", "``", "[", "]", "(", ")", "!", "<", ">", "&", "#", "\n", "\n\n", " ", "    ",
    "-", "1.", "|", ":", "---", "\\", '"', "word", "Ünï", "<script>", "<img src=x onerror=y>",
    "<div>", "<!--", "&amp;", "&#x41;", "~~~", "```", "> ", "[a]: /u", "javascript:x",
    "<http://a.b>", "| a |", "\n|---|", "![i](j)", "[^1]", "[^1]:", "^[",
)
# fmt: on


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join))
def test_any_markdown_renders_without_raw_html(source):
    out = markdown_to_html(source)
    html5lib.parseFragment(out)
    low = out.lower()
    for raw in ("<script", "<img src=x", "<div", "<!--", '="javascript'):
        assert raw not in low

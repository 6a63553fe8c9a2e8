"""``parse_mailbox`` is cached per process: a good value parses once, a bad one fails every time."""

from __future__ import annotations

import pytest

from publisher.errors import RenderError
from publisher.render.email_headers import parse_mailbox


def test_the_cached_answer_is_the_parsed_one() -> None:
    assert parse_mailbox("The Gazette <news@example.org>") == ("The Gazette", "news@example.org")
    assert parse_mailbox("The Gazette <news@example.org>") == ("The Gazette", "news@example.org")
    assert parse_mailbox("editors@example.org") == ("", "editors@example.org")


@pytest.mark.parametrize("bad", ["", "no address here <>", "<>"])
def test_a_bad_value_raises_each_time(bad: str) -> None:
    for _ in range(2):
        with pytest.raises(RenderError, match="not an email address"):
            parse_mailbox(bad)


HOSTILE = ["A <a@b.org>\r\nBcc: x@y.org", "A\x00 <a@b.org>", "=?utf-8?q?A?= <a@b.org>", "\u202eA <a@b.org>"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_give_no_line_break_or_nul(hostile: str) -> None:
    name, addr = parse_mailbox(hostile)
    assert not any(c in name + addr for c in "\r\n\x00")

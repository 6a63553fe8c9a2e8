"""How a worker rebuilds a send's messages, per kind of mail: one renderer function each.

A batch job names its kind (``issue`` when it does not: jobs queued before
kinds existed). The renderer gets the send from the store and the date the
planner put in the job, renders from this machine's copy of the project, and
returns ``ops.scaleout.Messages``: which message a row gets, and the
fingerprint the job's must match. The planner makes its fingerprint with the
same function (or, for issues, the same rendering), so a machine whose issues,
templates or welcome file differ refuses the job rather than send other mail.

Adding a kind is one function here and one line in ``RENDERERS``; the
planner calls ``ops.scaleout.hand_planned`` with that kind, the date and the
fingerprint of the message it would send itself. Sequence steps
(``sequence:<name>:<slug>``) have their renderer here; the sequence round
hands its sends over the same way the welcome catch-up does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from publisher.config import Settings
from publisher.content import load_issue
from publisher.content import signature as content_signature
from publisher.content.sequences import load_sequence
from publisher.errors import PublisherError
from publisher.ops.digest.messages import Renderers
from publisher.ops.digest.round import digest_messages
from publisher.ops.queue import load_tolerant
from publisher.ops.scaleout import Messages, fingerprint
from publisher.ops.welcome import step_message, welcome_messages
from publisher.render.email import prepare_issue_email
from publisher.store import SendInfo, Store

Renderer = Callable[[Settings, Store, SendInfo, datetime], Messages]
SEQUENCE_PREFIX = "sequence:"  # ``content.sequences.step_key``


def issue_messages(settings: Settings, store: Store, send: SendInfo, date: datetime) -> Messages:
    """An issue: one message for every row."""
    if send.kind != "issue" or not send.issue_slug:
        raise PublisherError(f"{send.key} is not an issue send")
    issue = load_issue(settings, send.issue_slug)
    prepared = prepare_issue_email(settings, issue, send_key=send.key, date=date)
    return Messages(lambda _row: prepared, fingerprint(prepared))


class _Library:
    """The issues as this worker last loaded them, loaded again only when a file changed.

    A round has a digest send per zone; loading every issue for each would
    cost more than rendering the digests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: tuple[Settings, object, Renderers] | None = None

    def renderers(self, settings: Settings) -> Renderers:
        with self._lock:
            now = content_signature(settings.paths.issues)
            seen = self._seen
            if seen is None or seen[0] is not settings or seen[1] != now:
                seen = self._seen = (settings, now, Renderers(settings, load_tolerant(settings)[0]))
            return seen[2]


_library = _Library()


def digest_variants(settings: Settings, store: Store, send: SendInfo, date: datetime) -> Messages:
    """A digest: one message per variant (article list), each row its subscriber's."""
    if send.kind != "digest":
        raise PublisherError(f"{send.key} is not a digest send")
    return digest_messages(settings, store, send, date, renderers=_library.renderers(settings))


def sequence_step(settings: Settings, store: Store, send: SendInfo, date: datetime) -> Messages:
    """A sequence step, ``sequence:<name>:<slug>``: one message for every row.

    A step missing from this machine's copy is refused, never taken as
    removed: only the planner, with the project it plans from, may skip rows.
    """
    name, _, slug = send.key.removeprefix(SEQUENCE_PREFIX).partition(":")
    if not send.key.startswith(SEQUENCE_PREFIX) or not slug:
        raise PublisherError(f"{send.key} is not a sequence step's send")
    step = next((s for s in load_sequence(settings, name) if s.key == send.key), None)
    if step is None:
        raise PublisherError(f"{send.key}: this machine's sequences/{name}/ has no step {slug}")
    prepared = step_message(settings, store, step, send_key=send.key, date=date)
    return Messages(lambda _row: prepared, fingerprint(prepared))


RENDERERS: dict[str, Renderer] = {
    "issue": issue_messages,
    "digest": digest_variants,
    "welcome": welcome_messages,
    "sequence": sequence_step,
}

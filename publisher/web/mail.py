"""Kept for the callers that still import from here: the confirmation mail is ``ops.confirm``'s now.

Building it is ``render.confirm``'s and sending it ``ops.confirm``'s, as for
every other kind of mail; the web app only says where its links lead.
"""

from __future__ import annotations

from publisher.ops.confirm import confirmations_go_to

__all__ = ["confirmations_go_to"]

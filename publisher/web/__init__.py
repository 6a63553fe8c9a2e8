"""The web app: subscribe (double opt-in), confirm, one-click unsubscribe, preferences,
the archive and feeds with conditional GET, and a JSON admin API under /api.

``create_app(settings, store=None, clock=None)`` builds it; ``serve`` runs it in
the foreground; ``start_server`` runs it in a thread (``publisher run``, tests).
"""

from publisher.web.app import create_app
from publisher.web.context import Limits
from publisher.web.server import ServerHandle, serve, start_server

__all__ = ["Limits", "ServerHandle", "create_app", "serve", "start_server"]

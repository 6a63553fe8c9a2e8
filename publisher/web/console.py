"""The editors' console under /admin, installed as one piece (create_app adds one line for it).

``admin_auth`` comes first: its middleware and error handlers guard every other console
route (sessions, roles, CSRF, the console's CSP).
"""

from __future__ import annotations

from fastapi import FastAPI

from publisher.web import admin_auth, admin_dashboard, admin_issues, admin_pages, admin_subscribers


def install(app: FastAPI) -> None:
    admin_auth.install(app)  # sessions, roles, its CSP
    admin_pages.install(app)  # sign-in, sign-out, the home page with the audit log
    admin_dashboard.install(app)  # dashboard, live progress (SSE), per-send reports
    admin_subscribers.install(app)  # subscribers: list, one subscriber, CSV upload and export
    admin_issues.install(app)  # issues: states, check problems, preview, test/queue/send

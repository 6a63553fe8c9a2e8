"""Web fixtures: a movable clock, app factories, a real uvicorn server, and a built sample site."""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import html5lib
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from publisher.config import Settings, load_settings
from publisher.store import Store
from publisher.web import Limits, ServerHandle, create_app, start_server
from tests.polling import wait_for as wait_for  # re-exported for the web tests

NS = {"h": "http://www.w3.org/1999/xhtml"}


def parse_html(html: str) -> Any:
    """A page parsed as a browser does (html5lib), XHTML namespace on every element."""
    return html5lib.parse(html, namespaceHTMLElements=True)


def form_fields(page: str) -> dict[str, list[str]]:
    """Inputs, checkboxes and selects of the first form, as a browser would see them."""
    doc = parse_html(page)
    form = doc.find(".//h:form", NS)
    assert form is not None
    fields: dict[str, list[str]] = {}
    for el in form.iter():
        tag = el.tag.split("}")[-1]
        name = el.get("name")
        if not name:
            continue
        if tag == "input":
            fields.setdefault(name, [])
            if el.get("type") in ("checkbox", "radio"):
                fields[name].append(("*" if el.get("checked") is not None else "") + el.get("value", ""))
            else:
                fields[name].append(el.get("value", ""))
        elif tag == "select":
            fields[name] = [
                o.get("value") for o in el.iter(f"{{{NS['h']}}}option") if o.get("selected") is not None
            ]
    return fields


def main_text(html: str) -> str:
    """The visible text of the page's <main>."""
    main = parse_html(html).find(".//h:main", NS)
    assert main is not None
    return " ".join("".join(main.itertext()).split())


ROOT = Path(__file__).resolve().parent.parent
API_TOKEN = "test-api-token-0123456789abcdefghijkl"
SECRET = "test-secret-0123456789abcdef0123456789"


class Clock:
    """The app's clock in tests: starts at real now (tokens are stamped with real time), moves on demand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def web_clock() -> Clock:
    """The web app's clock in a test (named apart from the scheduler tests' ``clock``)."""
    return Clock()


@pytest.fixture
def web_settings(make_settings: Callable[..., Settings], project: Path) -> Callable[..., Settings]:
    """Settings for a temp project with a temp outbox and an empty (unbuilt) output folder."""

    def factory(**overrides: Any) -> Settings:
        return make_settings(**overrides)

    return factory


@pytest.fixture
def make_app(web_clock: Clock) -> Callable[..., FastAPI]:
    """create_app with the test clock, the API token set and generous limits unless given."""

    def factory(settings: Settings, store: Store | None = None, **kw: Any) -> FastAPI:
        kw.setdefault("clock", web_clock)
        kw.setdefault("environ", {settings.web.api_token_env: API_TOKEN})
        kw.setdefault("limits", Limits(ip_burst=1000, address_burst=1000))
        return create_app(settings, store=store, **kw)

    return factory


@pytest.fixture
def web_client(
    web_settings: Callable[..., Settings], store: Store, make_app: Callable[..., FastAPI]
) -> Iterator[TestClient]:
    """An in-process client of an app on the test store (file transport: mail lands in the outbox)."""
    app = make_app(web_settings(), store)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def bound_socket() -> socket.socket:
    """A listening-ready socket on 127.0.0.1 with a free port (so settings can name the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def live_server() -> Iterator[Callable[..., ServerHandle]]:
    """Start real uvicorn servers in threads: live_server(settings, app, sock=None); stopped at teardown."""
    handles: list[ServerHandle] = []

    def start(settings: Settings, app: FastAPI, sock: socket.socket | None = None) -> ServerHandle:
        handle = start_server(settings, app, sock=sock or bound_socket())
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample issues built once into a temp project; returns the project folder (config.yaml in it)."""
    from publisher.build import build

    folder = tmp_path_factory.mktemp("built")
    shutil.copytree(ROOT / "templates", folder / "templates")
    shutil.copytree(ROOT / "issues", folder / "issues")
    shutil.copy(ROOT / "config.yaml", folder / "config.yaml")
    settings = load_settings(folder / "config.yaml", environ={"PUBLISHER_SECRET_KEY": SECRET})
    build(settings)
    assert (settings.paths.output / "feed.xml").is_file()
    return folder


def outbox_messages(settings: Settings) -> list[EmailMessage]:
    """Confirmation mails written by the file transport, oldest first."""
    folder = settings.paths.outbox / "web-confirmations"
    files = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in files]  # type: ignore[misc]


def link_from(msg: EmailMessage, kind: str) -> str:
    """The first URL containing /<kind>/ in the text part of a mail."""
    import re

    part = msg.get_body(("plain",))
    assert part is not None
    text = part.get_content()
    m = re.search(rf"https?://\S+/{kind}/\S+", text)
    assert m, f"no /{kind}/ link in:\n{text}"
    return m.group(0)


@pytest.fixture
def web_server(
    web_settings: Callable[..., Settings],
    store: Store,
    make_app: Callable[..., FastAPI],
    live_server: Callable[..., ServerHandle],
) -> ServerHandle:
    """The app over real HTTP on the default web settings and the test store."""
    return live_server(web_settings(), make_app(web_settings(), store))

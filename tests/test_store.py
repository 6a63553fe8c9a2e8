"""The store on a real database: SQLite always, PostgreSQL when PUBLISHER_TEST_DATABASE_URL is set."""

from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.errors import NotFoundError
from publisher.models import Frequency, SubscriberStatus
from publisher.store import (
    Audience,
    Filter,
    Outcomes,
    SendBusyError,
    SubscriberExistsError,
    open_store,
    upgrade,
)
from publisher.store.csvio import CsvHeaderError
from publisher.store.engine import head_revision
from publisher.store.schema import metadata
from publisher.store.values import InvalidValueError
from tests.fixtures_store import NOW, add_subscribers, current_revision, set_status_by_ids

LATER = NOW + timedelta(hours=1)


# -- schema and migrations ---------------------------------------------------------


def test_migrations_build_exactly_the_schema_module(store) -> None:
    import importlib
    import pkgutil

    import publisher.store

    for mod in pkgutil.iter_modules(publisher.store.__path__):  # tables declared beside their code
        if mod.name != "migrations":
            importlib.import_module(f"publisher.store.{mod.name}")

    def ours(obj, name, type_, reflected, compare_to) -> bool:  # procrastinate keeps its own tables
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", "")
        return not (table or "").startswith("procrastinate")

    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": ours})
        diff = compare_metadata(context, metadata)
    assert diff == []
    assert current_revision(store) == head_revision()


def test_open_and_upgrade_are_idempotent(db_url) -> None:
    assert upgrade(db_url) == head_revision()
    assert upgrade(db_url) == head_revision()
    s = open_store(db_url)
    s.subscribers.add("a@example.org", now=NOW)
    s.close()
    s = open_store(db_url)
    assert s.subscribers.count() == 1
    s.close()


def test_a_database_from_a_newer_version_is_refused_plainly(tmp_path) -> None:
    from publisher.errors import StoreError

    url = f"sqlite:///{tmp_path / 'new.db'}"
    upgrade(url)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(StoreError, match="cannot migrate"):
        open_store(url)


def test_sqlite_pragmas(tmp_path) -> None:
    s = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    with s.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert (conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0) >= 5000
    s.close()


def test_bad_url_is_a_user_error(tmp_path) -> None:
    from publisher.errors import StoreError

    with pytest.raises(StoreError, match="unsupported database"):
        open_store("mysql://x@y/z")
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("nonsense")


# -- subscribers -------------------------------------------------------------------------


def test_add_normalises_and_refuses_duplicates(store) -> None:
    s = store.subscribers.add(
        "  Ann.Lee@Example.ORG ", name="  Ann   Lee ", now=NOW, topics="Science; cities;science"
    )
    assert s.email == "ann.lee@example.org"
    assert s.name == "Ann Lee"
    assert s.topics == ("cities", "science")
    assert s.created_at == NOW
    with pytest.raises(SubscriberExistsError):
        store.subscribers.add("ANN.LEE@example.org", now=NOW)
    got = store.subscribers.get("ann.lee@EXAMPLE.org")
    assert got is not None and got.id == s.id and got.created_at == NOW and got.created_at.tzinfo


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"email": "not-an-address"}, "not a valid email"),
        ({"email": ""}, "empty"),
        ({"email": "a@b.org", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"email": "a@b.org", "status": "maybe"}, "unknown status"),
        ({"email": "a@b.org", "frequency": "hourly"}, "unknown frequency"),
        ({"email": "a@b.org", "timezone": "posixrules"}, "unknown time zone"),
        ({"email": "a@b.org", "timezone": "right/UTC"}, "unknown time zone"),
        ({"email": "a@b.org", "name": "Ann\r\nBcc: evil@x.org"}, "line breaks"),
        ({"email": "a@b.org", "name": "=?utf-8?q?x=0D=0AX-Evil:_1?="}, "'=[?]'"),
        ({"email": "a@b.org", "name": "Ann \u202eevil"}, "text-direction"),
        ({"email": "a@b.org", "name": "Ann\x85X"}, "control"),
        ({"email": "a@b.org", "name": "x" * 10_000}, "over 200"),
    ],
)
def test_add_rejects_bad_values(store, kwargs, message) -> None:
    kwargs = dict(kwargs)
    email = kwargs.pop("email")
    with pytest.raises(InvalidValueError, match=message):
        store.subscribers.add(email, now=NOW, **kwargs)
    assert store.subscribers.count() == 0
    if "name" in kwargs:  # a name is refused on the way in by every path, changes too
        store.subscribers.add(email, now=NOW, name="Ok")
        with pytest.raises(InvalidValueError, match=message):
            store.subscribers.update_preferences(email, now=NOW, name=kwargs["name"])
        assert store.subscribers.get(email).name == "Ok"


def test_list_filters_status_preferences_remove(store) -> None:
    store.subscribers.add("a@example.org", name="Alice", now=NOW, topics="science")
    store.subscribers.add("b@example.org", name="Bob", now=NOW, frequency="weekly", timezone="Europe/Paris")
    store.subscribers.add("c@example.org", now=NOW, status="pending")
    assert [x.email for x in store.subscribers.list()] == ["a@example.org", "b@example.org", "c@example.org"]
    assert [x.email for x in store.subscribers.list(Filter(status=SubscriberStatus.PENDING))] == [
        "c@example.org"
    ]
    assert [x.email for x in store.subscribers.list(Filter(frequency=Frequency.WEEKLY))] == ["b@example.org"]
    assert [x.email for x in store.subscribers.list(Filter(topic="science"))] == ["a@example.org"]
    assert [x.email for x in store.subscribers.list(Filter(search="bob"))] == ["b@example.org"]
    assert [x.email for x in store.subscribers.list(Filter(search="%"))] == []
    assert store.subscribers.list(limit=1, offset=1)[0].email == "b@example.org"

    changed = store.subscribers.set_status("c@example.org", "confirmed", now=LATER)
    assert changed.status is SubscriberStatus.CONFIRMED and changed.updated_at == LATER
    prefs = store.subscribers.update_preferences(
        "b@example.org", now=LATER, frequency="daily", topics=["Cities"], name="Robert", timezone="Asia/Tokyo"
    )
    assert (prefs.frequency, prefs.topics, prefs.name, prefs.timezone) == (
        Frequency.DAILY,
        ("cities",),
        "Robert",
        "Asia/Tokyo",
    )
    with pytest.raises(NotFoundError):
        store.subscribers.set_status("nobody@example.org", "bounced", now=LATER)
    with pytest.raises(InvalidValueError):
        store.subscribers.update_preferences("b@example.org", now=LATER, timezone="Nowhere/Land")
    assert store.subscribers.counts_by_status() == {"confirmed": 3}
    assert store.subscribers.remove("A@example.org") is True
    assert store.subscribers.remove("a@example.org") is False
    assert store.subscribers.count() == 2


def test_bounces_by_id_leave_the_list(store) -> None:
    emails = add_subscribers(store, 4)
    ids = [store.subscribers.get(e).id for e in emails[:2]]
    assert set_status_by_ids(store, ids, "bounced", now=LATER) == 2
    assert set_status_by_ids(store, [], "bounced", now=LATER) == 0
    assert store.subscribers.counts_by_status() == {"bounced": 2, "confirmed": 2}
    assert store.ledger.audience_size() == 2


def test_iter_streams_in_chunks(store) -> None:
    emails = add_subscribers(store, 45)
    assert [s.email for s in store.subscribers.iter(chunk=10)] == emails


# -- CSV import / export -----------------------------------------------------------------------


def _import(store, text: str):
    return store.subscribers.import_csv(io.StringIO(text), now=NOW, source_name="list.csv", chunk=3)


def test_import_reports_each_bad_row_and_imports_the_rest(store) -> None:
    text = (
        "Email,Name,Status,Frequency,Topics,Timezone\n"
        "ann@example.org,Ann,,,science;cities,Europe/Paris\n"  # row 2 ok
        "not-an-email,Bad,,,,\n"  # row 3
        'bob@example.org,"Bob\r\nBcc: x@y.org",,weekly,,\n'  # row 4: a line break in the name
        "eve@example.org,<script>alert(1)</script>,,,,\n"  # row 5: markup in the name
        "carl@example.org,Carl,,,,Mars/Base\n"  # row 6
        "dora@example.org,Dora,sleeping,,,\n"  # row 7
        "ANN@example.org,Annie,,,,\n"  # row 8: duplicate of row 2, merged
        "fay@example.org,Fay,pending,daily,,UTC,extra\n"  # row 9: too many fields
        "\n"
        "gus@example.org,Gus\n"  # row 11: short row, missing cells are empty
    )
    report = _import(store, text)
    assert [(p.line, p.where) for p in report.problems] == [
        (3, "list.csv"),
        (4, "list.csv"),
        (5, "list.csv"),
        (6, "list.csv"),
        (7, "list.csv"),
        (9, "list.csv"),
    ]
    messages = [p.message for p in report.problems]
    assert messages[0].startswith("email: not a valid email")
    assert messages[1].startswith("name: ") and messages[2].startswith("name: ")
    assert messages[3].startswith("timezone: unknown time zone")
    assert messages[4].startswith("status: unknown status")
    assert "fields" in messages[5]
    assert report.merged == 1 and report.notices[0].line == 8
    assert report.added == 2 and report.refused == 6
    ann = store.subscribers.get("ann@example.org")
    assert ann.name == "Annie" and ann.topics == ("cities", "science") and ann.timezone == "Europe/Paris"
    assert store.subscribers.get("bob@example.org") is None
    assert store.subscribers.get("eve@example.org") is None
    assert store.subscribers.get("gus@example.org").status is SubscriberStatus.CONFIRMED


def test_import_malformed_quoting_is_reported_by_row(store) -> None:
    text = 'email,name\na@example.org,"Al"ice"\nb@example.org,Bea\nc@example.org,"never closed\n'
    report = _import(store, text)
    assert [p.line for p in report.problems] == [2, 4]
    assert all("malformed CSV" in p.message for p in report.problems)
    assert store.subscribers.get("b@example.org") is not None


def test_import_refuses_unknown_or_missing_columns(store) -> None:
    with pytest.raises(CsvHeaderError) as exc:
        _import(store, "email,name,shoe_size\na@example.org,A,42\n")
    assert "shoe_size" in str(exc.value) and exc.value.problems[0].line == 1
    with pytest.raises(CsvHeaderError, match="no 'email' column"):
        _import(store, "name\nA\n")
    with pytest.raises(CsvHeaderError, match="empty"):
        _import(store, "")
    assert store.subscribers.count() == 0


def test_import_not_utf8_row_is_reported(store) -> None:
    raw = b"email,name\na@example.org,Ana\nb@example.org,\xff\xfeBad\n"
    report = store.subscribers.import_csv(
        io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="surrogateescape"), now=NOW
    )
    assert [p.line for p in report.problems] == [3] and "UTF-8" in report.problems[0].message
    assert report.added == 1


def test_import_updates_but_never_resubscribes(store) -> None:
    store.subscribers.add("gone@example.org", now=NOW)
    store.subscribers.set_status("gone@example.org", "unsubscribed", now=NOW)
    store.subscribers.add("kept@example.org", name="Old", now=NOW)
    report = _import(store, "email,name,status\ngone@example.org,,confirmed\nkept@example.org,New,\n")
    assert store.subscribers.get("gone@example.org").status is SubscriberStatus.UNSUBSCRIBED
    assert "does not resubscribe" in report.notices[0].message and report.notices[0].line == 2
    assert store.subscribers.get("kept@example.org").name == "New"
    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)


def test_export_round_trips(store) -> None:
    _import(
        store,
        "email,name,status,frequency,topics,timezone\n"
        'a@example.org,"Lee, Ann ""AL""",confirmed,weekly,science;cities,Europe/Paris\n'
        "b@example.org,Bo,pending,instant,,UTC\n"
        "c@example.org,,unsubscribed,daily,,Asia/Tokyo\n",
    )
    out = io.StringIO()
    assert store.subscribers.export_csv(out) == 3
    before = store.subscribers.list()
    report = _import(store, out.getvalue())
    assert not report.problems and report.unchanged == 3
    assert [
        (x.email, x.name, x.status, x.frequency, x.topics, x.timezone) for x in store.subscribers.list()
    ] == [(x.email, x.name, x.status, x.frequency, x.topics, x.timezone) for x in before]
    assert before[0].name == 'Lee, Ann "AL"'
    only = io.StringIO()
    assert store.subscribers.export_csv(only, Filter(status=SubscriberStatus.PENDING)) == 1


# -- the ledger ---------------------------------------------------------------------------------


def _mixed_list(store) -> None:
    _import(
        store,
        "email,status,frequency\n"
        "a@example.org,confirmed,instant\nb@example.org,confirmed,instant\n"
        "c@example.org,pending,instant\nd@example.org,unsubscribed,instant\n"
        "e@example.org,confirmed,weekly\nf@example.org,confirmed,instant\n",
    )


def test_plan_covers_confirmed_instant_once(store) -> None:
    _mixed_list(store)
    assert store.ledger.audience_size() == 3
    plan = store.ledger.plan_send("issue", "issue:first", now=NOW, issue_slug="first")
    assert plan.created and plan.send.planned == 3 and plan.send.status == "scheduled"
    again = store.ledger.plan_send("issue", "issue:first", now=LATER, issue_slug="first")
    assert not again.created and again.send.id == plan.send.id and again.send.created_at == NOW
    counts = store.ledger.counts(plan.send.id)
    assert (counts.planned, counts.pending, counts.sent) == (3, 3, 0)
    rows = store.ledger.pending(plan.send.id)
    assert [r.email for r in rows] == ["a@example.org", "b@example.org", "f@example.org"]
    weekly = store.ledger.plan_send(
        "digest", "digest:weekly:2024-W09", now=NOW, audience=Audience(frequencies=("weekly",))
    )
    assert weekly.send.planned == 1


def test_concurrent_plans_write_one_plan(store) -> None:
    add_subscribers(store, 200)
    results = []

    def plan() -> None:
        results.append(store.ledger.plan_send("issue", "issue:race", now=NOW, issue_slug="race"))

    threads = [threading.Thread(target=plan) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.created for r in results) == [False, False, False, True]
    assert store.ledger.counts(results[0].send.id).pending == 200


def test_pending_pages_and_record_outcomes(store) -> None:
    emails = add_subscribers(store, 25)
    send = store.ledger.plan_send("issue", "issue:x", now=NOW, issue_slug="x").send
    first = store.ledger.pending(send.id, limit=10)
    second = store.ledger.pending(send.id, after_id=first[-1].id, limit=10)
    assert [r.email for r in first + second] == emails[:20]
    assert first[0].name == "Reader 0" and first[0].subscriber_status == "confirmed"
    out = Outcomes()
    out.sent += [(r.id, f"<m{r.id}@x>") for r in first]
    out.failed.append((second[0].id, "550 5.1.1 no such user"))
    out.bounced_subscribers.append(second[0].subscriber_id)
    out.deferred.append((second[1].id, "451 try later"))
    out.skipped.append((second[2].id, "unsubscribed before delivery"))
    out.sent.append((first[0].id, "<dup@x>"))  # a second result for a sent row changes nothing
    store.ledger.record(out, now=LATER)
    c = store.ledger.counts(send.id)
    assert (c.planned, c.sent, c.failed, c.skipped, c.pending) == (25, 10, 1, 1, 13)
    assert store.ledger.failures(send.id) == [(second[0].email, "550 5.1.1 no such user")]
    assert store.subscribers.get(second[0].email).status is SubscriberStatus.BOUNCED
    with store.read() as conn:
        row = conn.execute(
            sa.text("SELECT status, attempts, last_error, message_id, sent_at FROM deliveries WHERE id = :i"),
            {"i": first[0].id},
        ).one()
        deferred = conn.execute(
            sa.text("SELECT status, attempts, last_error FROM deliveries WHERE id = :i"), {"i": second[1].id}
        ).one()
    assert row[:4] == ("sent", 1, None, f"<m{first[0].id}@x>") and row[4] is not None
    assert tuple(deferred) == ("pending", 1, "451 try later")
    ids = [r.id for r in store.ledger.pending(send.id, limit=100)]
    assert second[1].id in ids and first[0].id not in ids
    assert [r.id for r in store.ledger.pending(send.id, id_range=(ids[0], ids[2]))] == ids[:3]


def test_removed_subscriber_leaves_the_plan(store) -> None:
    emails = add_subscribers(store, 3)
    send = store.ledger.plan_send("issue", "issue:x", now=NOW).send
    store.subscribers.remove(emails[1])
    assert [r.email for r in store.ledger.pending(send.id)] == [emails[0], emails[2]]


def test_lease_excludes_a_second_owner_until_expiry(store) -> None:
    add_subscribers(store, 2)
    send = store.ledger.plan_send("issue", "issue:x", now=NOW).send
    ttl = timedelta(seconds=30)
    got = store.ledger.acquire(send.id, "host:1:a", now=NOW, ttl=ttl)
    assert got.status == "running" and got.lease_owner == "host:1:a" and got.started_at == NOW
    with pytest.raises(SendBusyError, match="host:1:a"):
        store.ledger.acquire(send.id, "host:2:b", now=NOW + timedelta(seconds=10), ttl=ttl)
    assert store.ledger.renew(send.id, "host:1:a", now=NOW + timedelta(seconds=20), ttl=ttl)
    with pytest.raises(SendBusyError):
        store.ledger.acquire(send.id, "host:2:b", now=NOW + timedelta(seconds=45), ttl=ttl)
    taken = store.ledger.acquire(send.id, "host:2:b", now=NOW + timedelta(seconds=51), ttl=ttl)
    assert taken.lease_owner == "host:2:b"
    assert not store.ledger.renew(send.id, "host:1:a", now=NOW + timedelta(seconds=52), ttl=ttl)
    stolen = store.ledger.acquire(
        send.id, "host:3:c", now=NOW + timedelta(seconds=53), ttl=ttl, steal_from="host:2:b"
    )
    assert stolen.lease_owner == "host:3:c"
    paused = store.ledger.release(send.id, "host:3:c", now=LATER)
    assert paused.status == "paused" and paused.lease_owner is None
    out = Outcomes()
    out.sent += [(r.id, "<m@x>") for r in store.ledger.pending(send.id)]
    store.ledger.record(out, now=LATER)
    store.ledger.acquire(send.id, "host:4:d", now=LATER, ttl=ttl)
    done = store.ledger.release(send.id, "host:4:d", now=LATER)
    assert done.status == "done" and done.finished_at == LATER
    listed = store.ledger.sends()
    assert listed[0][0].key == "issue:x" and listed[0][1].sent == 2


# -- the fast path of address validation agrees with email-validator -----------------------------------


def _reference(address: str) -> str | None:
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


@settings(max_examples=400, deadline=None)
@given(
    local=st.text(alphabet="aZ09.+-_'!#~\"() ", min_size=0, max_size=12),
    domain=st.sampled_from(
        ["example.org", "Example.ORG", "b", "x..y.org", "-a.org", "münchen.de", "a.b-c.io"]
    ),
)
def test_normalise_email_matches_email_validator(local: str, domain: str) -> None:
    from publisher.store.values import normalise_email

    address = f"{local}@{domain}"
    expected = _reference(address)
    try:
        got = normalise_email(address)
    except InvalidValueError:
        got = None
    assert got == expected


GARBAGE = [*'ab@.xyz,"\r\n;\x00 é<>', "example.org", "Europe/Paris", "weekly", "\ud800x"]


@settings(max_examples=60, deadline=None)
@given(body=st.lists(st.sampled_from(GARBAGE), max_size=120).map("".join))
def test_import_never_crashes_on_garbage(tmp_path_factory, body: str) -> None:
    """Whatever follows a valid header, the import reports rows instead of raising."""
    db = tmp_path_factory.mktemp("garbage") / "g.db"
    with open_store(f"sqlite:///{db}") as store:
        report = store.subscribers.import_csv(
            io.StringIO("email,name,frequency,timezone\n" + body, newline=""), now=NOW
        )
        assert all(p.line is not None and p.line >= 2 for p in report.problems + report.notices)
        assert store.subscribers.count() == report.added
        assert report.imported + report.merged + sum(
            1 for p in report.problems if "malformed" not in p.message
        ) == (report.rows)

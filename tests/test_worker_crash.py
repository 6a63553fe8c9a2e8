"""A worker killed mid-batch (kill -9): another one finishes the send, nothing stays `doing`."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from publisher.ops.send import issue_key
from tests.fixtures_store import add_subscribers
from tests.fixtures_worker import SLUG, Scale, fan_out, wait_until

pytestmark = pytest.mark.postgres

STALLED_AFTER = "2"  # seconds: short, so the test does not wait the production 30 s


def test_kill_9_mid_batch_then_another_worker_finishes_with_bounded_duplicates(
    scale: Scale, start_worker
) -> None:
    concurrency = scale.settings.email.concurrency
    scale.reconfigure(scale={"batch_size": 150})
    emails = add_subscribers(scale.store, 450)
    scale.server.set_faults(data_delay_ms=15)  # slow enough to be killed in the middle of a batch
    first = start_worker("--stalled-after", STALLED_AFTER)
    done = fan_out(scale)
    assert done.jobs == 3
    wait_until(lambda: scale.server.count() >= 40, timeout=30)
    first.kill()
    at_kill = scale.server.count()
    recorded = scale.scalar("SELECT count(*) FROM deliveries WHERE status = 'sent'")
    assert 0 < at_kill < 450 and not first.batches()  # it died inside its first batch
    assert scale.jobs("doing") == 1  # its job, left behind by the dead worker

    scale.server.set_faults()
    second = start_worker("--stalled-after", STALLED_AFTER)
    wait_until(lambda: scale.store.ledger.counts(done.send.id).pending == 0, timeout=60)
    wait_until(lambda: scale.jobs() == 0, timeout=15)  # none failed, none left `doing`

    received = Counter(m.rcpt for m in scale.server.received())
    assert set(received) == set(emails)  # everyone at least once
    duplicates = sum(n - 1 for n in received.values())
    # Only what the dead worker had in flight (accepted, not yet recorded) is sent again:
    # at most one message per SMTP connection, and the copy carries the same Message-ID.
    assert duplicates <= concurrency, (duplicates, at_kill, recorded)
    assert duplicates <= at_kill - recorded + concurrency
    for address, n in received.items():
        if n > 1:
            ids = {m.message()["Message-ID"] for m in scale.server.received() if m.rcpt == address}
            assert len(ids) == 1
    assert second.sent() == 450 - recorded
    assert "retrying job" in second.log()  # the stalled-job retry put the dead worker's job back
    send = scale.store.ledger.get_send(issue_key(SLUG))
    assert send.status == "done"
    # The dead worker's batch claim went with its connection: nothing holds it now.
    assert scale.scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0


def test_sigterm_lets_the_running_batch_finish(scale: Scale, start_worker) -> None:
    scale.reconfigure(scale={"batch_size": 100})
    add_subscribers(scale.store, 200)
    scale.server.set_faults(data_delay_ms=10)
    worker = start_worker("--stalled-after", STALLED_AFTER)
    fan_out(scale)
    wait_until(lambda: scale.server.count() >= 20, timeout=30)
    started = time.monotonic()
    assert worker.stop() == 0
    assert time.monotonic() - started < 20
    sent = scale.scalar("SELECT count(*) FROM deliveries WHERE status = 'sent'")
    assert scale.server.count() == sent  # stopped cleanly: nothing accepted and not recorded
    assert sent % 100 == 0 and sent >= 100  # whole batches only
    assert scale.jobs("doing") == 0

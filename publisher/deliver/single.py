"""One message outside any send (a test copy, a confirmation mail), through the same pool as a send's."""

from __future__ import annotations

import threading
from collections.abc import Callable

from publisher.deliver.envelope import Envelope, Result
from publisher.deliver.pool import DeliveryPool, Transport
from publisher.deliver.retry import RetryPolicy
from publisher.deliver.signing import DkimSigner
from publisher.errors import PublisherError


def send_one(
    transports: Callable[[], Transport],
    env: Envelope,
    *,
    retry: RetryPolicy | None = None,
    signer: DkimSigner | None = None,
    stop: threading.Event | None = None,
) -> tuple[Result, PublisherError | None]:
    """One message outside any send (a test copy, a confirmation mail): (its result, the fatal error).

    The same pool with one connection, so such mail is retried, signed and
    reported exactly as a send's is. ``stop`` (a shutdown) abandons it.
    """
    pool: DeliveryPool[Envelope] = DeliveryPool(
        transports, lambda e: e, concurrency=1, retry=retry, signer=signer
    ).start()
    pool.submit(env)
    result = None
    try:
        while result is None:
            if stop is not None and stop.is_set():
                pool.abort()
            result = pool.get(timeout=0.2)
        pool.ack(result)
    finally:
        pool.close()
    return result, pool.fatal

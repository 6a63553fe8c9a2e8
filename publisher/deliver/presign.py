"""DKIM signatures made ahead, on worker threads, while the pool's thread talks SMTP.

OpenSSL's RSA signature (~280 us for 2048 bits) is most of a signed message's
cost, and ``cryptography`` releases the GIL while it runs: signed on the pool's
one thread, it serialises with everything else (a signed send ran at 0.32-0.42x
the unsigned one in bench/send.py). So each message is built (personalised) on
the caller's thread when it is submitted, and its signature is computed by a
small thread pool while earlier messages are on the wire; the pool takes the
finished envelope when the message's turn comes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from publisher.deliver.envelope import Envelope
from publisher.deliver.signing import DkimSigner


class SigningAhead:
    """``start(item)`` builds now and signs in the background; the Future holds the signed envelope."""

    def __init__(self, build: Callable[[Any], Envelope], signer: DkimSigner, workers: int = 2) -> None:
        self._build = build
        self._signer = signer
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dkim")

    def start(self, item: Any) -> Future[Envelope]:
        try:
            env = self._build(item)
        except Exception as exc:  # reported when the message's turn comes, as an unsigned build would be
            failed: Future[Envelope] = Future()
            failed.set_exception(exc)
            return failed
        return self._executor.submit(self._sign, env)

    def _sign(self, env: Envelope) -> Envelope:
        return replace(env, data=self._signer.sign(env.data))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

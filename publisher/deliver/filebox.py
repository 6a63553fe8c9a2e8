"""``transport: file``, the embedded default: each message becomes an ``.eml`` file.

Files go to ``<outbox>/<send key, made safe>/<message id>.eml``, written to a
temporary name and renamed, so a reader never sees half a message and a
re-send of the same message replaces its file instead of adding a second one.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from publisher.deliver.envelope import Deferred, Envelope

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """A file or folder name from a send key or Message-ID ('issue:a/b' -> 'issue-a-b')."""
    name = _UNSAFE.sub("-", text).strip(".-")
    return name[:120] or "message"


def outbox_for(outbox: Path, send_key: str) -> Path:
    return outbox / safe_name(send_key)


class FileTransport:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def send(self, env: Envelope, gate: Callable[[], None] | None = None) -> str:
        stem = env.message_id.strip("<>").split("@")[0] if env.message_id else env.recipient
        target = self.folder / f"{safe_name(stem)}.eml"
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.open()
            with open(tmp, "wb") as fh:
                fh.write(env.data)
            if gate is not None:
                gate()
            os.replace(tmp, target)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if not isinstance(exc, OSError):
                raise
            raise Deferred(f"cannot write {target}: {exc.strerror or exc}", connection=True) from None
        return f"250 written to {target.name}"

    def close(self) -> None:
        pass

"""Map over a process pool whose workers get the build's context once, from its initializer.

The context is a frozen value handed to ``ProcessPoolExecutor(initializer=...)``:
under ``fork`` (Linux's default before Python 3.14) the children inherit it
without pickling; under ``spawn`` and ``forkserver`` (macOS, Python 3.14) it is
pickled once per worker, never per task. The mapped function takes the context
as its first argument, so the same code runs in a worker or, for a handful of
items, in this process.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

C = TypeVar("C")
T = TypeVar("T")
R = TypeVar("R")
PARALLEL_MIN = 64  # below this many items a pool costs more than it saves

_WORKER: tuple[Callable[[Any, Any], Any], Any] | None = None  # (function, context) in a pool child


def jobs_default() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def parallel_map(
    fn: Callable[[C, T], R],
    items: Sequence[T],
    jobs: int,
    context: C,
    *,
    chunk: int = 0,
    start_method: str | None = None,
) -> Iterator[R]:
    """``fn(context, item)`` for each item, in order, over ``jobs`` processes.

    A generator, so a progress bar can follow the results as they come.
    ``start_method``: multiprocessing's (``fork``, ``spawn``, ``forkserver``); None for
    the platform's default.
    """
    if jobs <= 1 or len(items) < PARALLEL_MIN:
        yield from (fn(context, item) for item in items)
        return
    size = chunk or max(8, min(128, len(items) // (jobs * 8)))
    mp = multiprocessing.get_context(start_method)
    prime = getattr(context, "prime", None)
    if callable(prime) and mp.get_start_method() == "fork":
        prime()  # forked children inherit what it loaded; spawned ones warm themselves
    # forked children's collections then leave inherited objects (and their pages) alone;
    # a build that froze its loaded state itself unfreezes it when it ends
    already = gc.get_freeze_count() > 0
    gc.freeze()
    try:
        with ProcessPoolExecutor(
            jobs,
            mp_context=mp,
            initializer=_start,
            initargs=(fn, context),
        ) as pool:
            yield from pool.map(_call, items, chunksize=size)
    finally:
        if not already:
            gc.unfreeze()


def _start(fn: Callable[[Any, Any], Any], context: Any) -> None:
    """The pool's initializer: keep the function and its context; ``context.warm()`` if it has one
    (a worker pays its heavy imports there, once, before its first task)."""
    global _WORKER
    _WORKER = (fn, context)
    warm = getattr(context, "warm", None)
    if callable(warm):
        warm()


def _call(item: Any) -> Any:
    assert _WORKER is not None, "parallel_map's initializer did not run"
    fn, context = _WORKER
    return fn(context, item)

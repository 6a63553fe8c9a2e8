"""The build engine's seams: the pool under every start method, the typed tasks, the SQLite cache."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from publisher.build import build
from publisher.build.cache import CacheState
from publisher.build.store import BuildCache, cache_dir
from publisher.build.tasks import ArticlePage, Feeds, IssueEmail, ListPage, Task
from publisher.config import Settings
from tests.test_build import big_site


def files_of(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture
def big(project: Path, make_settings: Callable[..., Settings]) -> Settings:
    big_site(project, 80)  # 80 issues: more than the pool's minimum, so both pools run
    return make_settings(paths={"state": str(project / ".state")})


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_a_build_under_each_start_method_writes_the_same_bytes(
    big: Settings, tmp_path: Path, method: str
) -> None:
    """The pools get their context from the initializer, so no start method sees less than fork."""
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"{method} is not available here")
    reference = tmp_path / "serial"
    build(big, reference, jobs=1)  # no pool at all
    out = tmp_path / method
    report = build(big, out, jobs=2, start_method=method)
    assert report.emails == 80 and report.jobs == 2
    assert files_of(out) == files_of(reference)
    again = build(big, out, jobs=2, start_method=method)
    assert again.written == () and again.removed == ()


def test_each_task_kind_names_its_cost_and_renders_its_own_outputs() -> None:
    """Heavy tasks go first (emails, then feeds, lists, pages), each a small frozen value."""
    tasks: list[Task] = [
        ArticlePage("a/index.html", "k", "a"),
        ListPage("index.html", "k", "", 0),
        Feeds("", "k", ""),
        IssueEmail("emails/x.html", "k", "x", "/issues/x.md"),
    ]
    assert [type(t).__name__ for t in sorted(tasks, key=lambda t: t.cost)] == [
        "IssueEmail",
        "Feeds",
        "ListPage",
        "ArticlePage",
    ]
    with pytest.raises(AttributeError):
        setattr(tasks[0], "key", "other")  # noqa: B010  # frozen: that is what the test checks


def test_the_cache_keeps_the_manifest_whatever_its_paths_hold(big: Settings, tmp_path: Path) -> None:
    """Outputs, units and the related index round-trip through the SQLite file; saving writes
    only what changed (a path gone from the manifest is gone from the file)."""
    out = tmp_path / "site"
    build(big, out, emails=False)
    manifest = {"a/index.html": ("0" * 32, 12), "odd\x00name": ("1" * 32, 2**40), "short": ("abc", 1)}
    with BuildCache.opened(big, out) as cache:
        state = cache.load()
        assert state.related is not None and len(state.units) == 80
        state.outputs = dict(manifest)
        cache.save(state)
    with BuildCache.opened(big, out) as cache:
        back = cache.load()
        assert back.outputs == manifest
        assert back.units == state.units and back.related is not None
        assert back.related.top == state.related.top


def test_a_torn_cache_file_costs_one_cold_build(big: Settings, tmp_path: Path) -> None:
    out = tmp_path / "site"
    first = build(big, out, emails=False)
    before = files_of(out)
    path = cache_dir(big, out) / "cache.sqlite"
    path.write_bytes(b"not a database" * 100)
    for name in ("cache.sqlite-wal", "cache.sqlite-shm"):
        (path.parent / name).unlink(missing_ok=True)
    again = build(big, out, emails=False)
    assert again.reloaded == first.reloaded == 80
    assert files_of(out) == before
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM units").fetchone() == (80,)


def test_an_empty_cache_loads_as_an_empty_state(big: Settings, tmp_path: Path) -> None:
    with BuildCache.opened(big, tmp_path / "nowhere") as cache:
        assert cache.load() == CacheState()

"""``write_if_changed`` remembers the folders it made, and still writes when one is gone since."""

from __future__ import annotations

import shutil
from pathlib import Path

from publisher.build.tasks import write_if_changed


def test_a_fresh_file_is_written_into_a_folder_removed_after_the_first(tmp_path: Path) -> None:
    folder = tmp_path / "site" / "emails"
    folder.mkdir(parents=True)
    assert write_if_changed(folder / "a.eml", b"one", fresh=True)
    shutil.rmtree(tmp_path / "site")  # a watch-mode rebuild after the output was deleted
    assert write_if_changed(folder / "b.eml", b"two", fresh=True)
    assert (folder / "b.eml").read_bytes() == b"two"
    assert sorted(p.name for p in folder.iterdir()) == ["b.eml"]  # no temporary file left


def test_a_fresh_file_makes_its_missing_parents(tmp_path: Path) -> None:
    target = tmp_path / "x" / "y" / "index.html"
    assert write_if_changed(target, b"<p>", fresh=True)
    assert target.read_bytes() == b"<p>"
    assert not write_if_changed(target, b"<p>")  # same bytes, not fresh: left alone

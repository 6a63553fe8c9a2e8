"""The build engine: content -> pages, feeds, related lists and emails (see ``pipeline``).

``pipeline.build`` reads as the steps in order, each owned by one module:
``store`` (the cache), ``library`` (issues re-read when changed), ``ranking``
(related news), ``plan`` (a key per output, a task per stale one), ``tasks``
and ``render`` (the typed tasks over a process pool, ``pool``), ``files``
(images, the stylesheet, stale outputs).
"""

from publisher.build.files import clean_output
from publisher.build.pipeline import BuildReport, build
from publisher.feeds import FEED_FILES

__all__ = ["FEED_FILES", "BuildReport", "build", "clean_output"]

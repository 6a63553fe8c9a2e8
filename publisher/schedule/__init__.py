"""The scheduler: `publisher run` wakes up queued issues and digest rounds on time.

``apscheduler_adapter`` is the only module that talks to APScheduler;
``guard`` keeps one run per database; ``runner`` is the loop; ``web`` serves
the web app beside it when there is one. What is due is always decided from
our tables (``ops.queue``, ``ops.digest``), never from the job store.
"""

from publisher.schedule.guard import AlreadyRunningError, RunGuard
from publisher.schedule.runner import Runner, RunOptions, run_scheduler

__all__ = ["AlreadyRunningError", "RunGuard", "RunOptions", "Runner", "run_scheduler"]

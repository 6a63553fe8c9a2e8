"""Digests: latest and related news for daily and weekly subscribers, at their own local time.

``periods`` says which period an instant falls in for a zone (DST-proof,
wall-clock based); ``plan`` says who is due and what each gets (pure), a page
of subscribers at a time, and ``record`` plans, renders and records a round page by page;
``messages`` has each distinct article list rendered once (by ``render.digest``)
and prepared per send; ``round`` runs a round and drains it (or hands it to workers)
with ``ops.send.drain``. The scheduler calls :func:`run_digest` every minute
or so and lets the plan decide who is due.
"""

from publisher.ops.digest.messages import DigestRenderer
from publisher.ops.digest.periods import Period, boundary, current_period, digest_key
from publisher.ops.digest.plan import PagePlan, Picker, RoundPlan, ZonePlan, plan_page, zone_periods
from publisher.ops.digest.record import plan_and_record
from publisher.ops.digest.round import FREQUENCIES, DigestReport, run_digest

__all__ = [
    "FREQUENCIES",
    "DigestRenderer",
    "DigestReport",
    "PagePlan",
    "Period",
    "Picker",
    "RoundPlan",
    "ZonePlan",
    "boundary",
    "current_period",
    "digest_key",
    "plan_and_record",
    "plan_page",
    "run_digest",
    "zone_periods",
]

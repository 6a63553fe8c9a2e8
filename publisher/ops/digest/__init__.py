"""Digests: latest and related news for daily and weekly subscribers, at their own local time.

``periods`` says which period an instant falls in for a zone (DST-proof,
wall-clock based); ``plan`` says who is due and what each gets (pure);
``messages`` has each distinct article list rendered once (by ``render.digest``)
and prepared per send; ``round`` records a round in the store and drains it
with ``ops.send.drain``. The scheduler calls :func:`run_digest` every minute
or so and lets the plan decide who is due.
"""

from publisher.ops.digest.messages import DigestRenderer
from publisher.ops.digest.periods import Period, boundary, current_period, digest_key
from publisher.ops.digest.plan import RoundPlan, ZonePlan, plan_round, zone_periods
from publisher.ops.digest.round import FREQUENCIES, DigestReport, plan_digest, run_digest

__all__ = [
    "FREQUENCIES",
    "DigestRenderer",
    "DigestReport",
    "Period",
    "RoundPlan",
    "ZonePlan",
    "boundary",
    "current_period",
    "digest_key",
    "plan_digest",
    "plan_round",
    "run_digest",
    "zone_periods",
]

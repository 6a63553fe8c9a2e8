"""Digests: latest and related news for daily and weekly subscribers, at their own local time.

``periods`` says which period an instant falls in for a zone (DST-proof,
wall-clock based); ``plan`` says who is due and what each gets (pure);
``render`` renders one email per distinct article list; ``round`` records a
round in the store and drains it with ``ops.send.drain``. The scheduler calls
:func:`run_digest` every minute or so and lets the plan decide who is due.
"""

from publisher.ops.digest.periods import Period, boundary, current_period, digest_key
from publisher.ops.digest.plan import RoundPlan, ZonePlan, plan_round, zone_periods
from publisher.ops.digest.render import DigestRenderer, RenderedDigest, render_digest
from publisher.ops.digest.round import FREQUENCIES, DigestReport, plan_digest, run_digest

__all__ = [
    "FREQUENCIES",
    "DigestRenderer",
    "DigestReport",
    "Period",
    "RenderedDigest",
    "RoundPlan",
    "ZonePlan",
    "boundary",
    "current_period",
    "digest_key",
    "plan_digest",
    "plan_round",
    "render_digest",
    "run_digest",
    "zone_periods",
]

"""The retry schedule of a failing webhook delivery: a receiver down for an hour still gets
every event, within one capped interval of coming back; after a day the delivery fails."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from lims.events.services import retry_delay

PRODUCTION = {
    "LIMS_WEBHOOK_BACKOFF_S": 5.0,
    "LIMS_WEBHOOK_BACKOFF_MAX_S": 600.0,
    "LIMS_WEBHOOK_RETRY_FOR_S": 86400.0,
}
T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def _attempt_times(outage_s: float) -> list[float]:
    """Seconds after creation at which attempts are made until one lands after the outage."""
    t, attempt, times = 0.0, 1, [0.0]
    while t < outage_s:
        delay = retry_delay(attempt, T0, T0 + timedelta(seconds=t))
        assert delay is not None, f"gave up at attempt {attempt}, {t:.0f} s in"
        t += delay
        attempt += 1
        times.append(t)
    return times


@override_settings(**PRODUCTION)
@pytest.mark.parametrize("outage_s", [60, 635, 3600, 6 * 3600])
def test_a_receiver_back_after_an_outage_gets_the_event_within_one_capped_interval(outage_s):
    times = _attempt_times(outage_s)
    assert times[-1] - outage_s <= 600
    assert all(b - a <= 600 for a, b in itertools.pairwise(times))


@override_settings(**PRODUCTION)
def test_the_backoff_doubles_from_five_seconds_then_holds_at_ten_minutes():
    delays = [retry_delay(n, T0, T0) for n in range(1, 12)]
    assert delays[:4] == [5, 10, 20, 40]
    assert delays[-1] == 600 and max(delays) == 600
    assert retry_delay(10_000, T0, T0) == 600  # no overflow however many attempts


@override_settings(**PRODUCTION)
def test_after_a_day_the_delivery_is_given_up():
    assert retry_delay(50, T0, T0 + timedelta(hours=23, minutes=49)) == 600
    assert retry_delay(50, T0, T0 + timedelta(hours=23, minutes=51)) is None

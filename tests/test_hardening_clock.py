"""Issue 20, defect 6: the test clock is bounded, /admin/clock never answers 500, and it can be reset."""

from __future__ import annotations

import pytest

from license_server.clock import MAX_CLOCK, ControlledClock
from tests.admin_support import admin_settings, call
from tests.conftest import START


@pytest.fixture
def settings(tmp_path):
    return admin_settings(tmp_path)


@pytest.mark.parametrize("change", [{"advance": "3000000d"}, {"advance": 10**20}, {"set": "9999-12-31T23:59:59Z"},
                                    {"advance": "-3000000d"}, {"set": "0001-01-01"}, {"advance": "99999999999999w"}])
async def test_moving_the_clock_out_of_bounds_is_refused(client, change):
    status, _, doc = await call(client, "POST", "/admin/clock", change)
    assert status == 400 and doc["error"]["code"] == "CLOCK_OUT_OF_RANGE", doc
    status, _, doc = await call(client, "GET", "/admin/clock")
    assert status == 200 and doc["now"] == START


async def test_reset_brings_the_clock_back(client, clock):
    status, _, doc = await call(client, "POST", "/admin/clock", {"advance": "31d"})
    assert status == 200 and doc["now"] == START + 31 * 86400
    status, _, doc = await call(client, "POST", "/admin/clock", {"reset": True})
    assert status == 200 and doc["now"] == START
    status, _, doc = await call(client, "POST", "/admin/clock", {"reset": True, "advance": "1d"})
    assert status == 400 and doc["error"]["code"] == "ADMIN_REQUEST_INVALID"


def test_controlled_clock_bounds():
    clock = ControlledClock(START, frozen=True)
    with pytest.raises(ValueError):
        clock.advance(MAX_CLOCK)
    with pytest.raises(ValueError):
        clock.set(MAX_CLOCK + 1)
    assert clock.now() == START
    assert clock.set(MAX_CLOCK) == MAX_CLOCK
    assert clock.reset() == START


def test_clocks_started_in_different_processes_read_the_same_second(monkeypatch):
    """Regression: the start time and the ticks were truncated apart, so two replicas whose clocks started at
    different fractions of a second read seconds one apart at the same instant (a lapsed lease looked live)."""
    import license_server.clock as clock_module

    wall, mono = [1000.9], [50.9]
    monkeypatch.setattr(clock_module.time, "time", lambda: wall[0])
    monkeypatch.setattr(clock_module.time, "monotonic", lambda: mono[0])
    early = ControlledClock()
    wall[0], mono[0] = 1001.2, 51.2
    late = ControlledClock()
    wall[0], mono[0] = 1001.5, 51.5
    assert early.now() == late.now() == 1001

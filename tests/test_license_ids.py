"""License ids begin with their issue second (so the store's indexes on them grow at one end) and
keep 88 random bits (so they stay unguessable and unique)."""

from __future__ import annotations

import re

from license_server.core.license_ids import new_license_id
from license_server.core.model import LicenseKind
from tests.conftest import START, WidevineExchange


def test_ids_are_32_hex_digits_in_issue_order() -> None:
    earlier, later = new_license_id(START), new_license_id(START + 1)
    assert re.fullmatch(r"[0-9a-f]{32}", earlier) and re.fullmatch(r"[0-9a-f]{32}", later)
    assert earlier < later
    assert earlier.startswith(f"{START:010x}")


def test_ids_of_one_second_are_distinct() -> None:
    assert len({new_license_id(START) for _ in range(5000)}) == 5000


async def test_a_served_license_id_begins_with_the_servers_clock(client, make_device) -> None:
    status, _, outcome, _ = await WidevineExchange(client).acquire(make_device("L1"), "demo-movie",
                                                                    LicenseKind.TEMPORARY)
    assert status == 200
    assert outcome.license_id.startswith(f"{START:010x}")  # the test clock's second, not the wall clock's

"""One integer reader for every provider (issue 12, item 15)."""

from __future__ import annotations

import pytest

from autorun_cli.providers import _coerce
from autorun_cli.providers.generic import map_session
from autorun_cli.providers.sendrealm import map_step
from autorun_cli.providers.tenant import map_execution


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (-3, -3),
        (3.0, 3),  # integral float: the number it is
        (-2.0, -2),
        (2.5, None),
        (float("inf"), None),
        (float("nan"), None),
        (1e300, int(1e300)),
        ("7", 7),
        (" 7 ", 7),
        ("-3", -3),  # negative strings read like negative numbers
        ("+4", 4),
        ("3.0", None),
        ("1e3", None),
        ("²", None),  # str.isdigit() says yes, int() raises
        ("٣", None),  # non-ASCII digits
        ("9" * 5000, None),  # past int()'s 4300-digit limit: no ValueError
        ("", None),
        ("<string>", None),
        (True, None),
        (False, None),
        (None, None),
        ([1], None),
        ({"n": 1}, None),
    ],
)
def test_as_int(value, expected):
    assert _coerce.as_int(value) == expected


@pytest.mark.parametrize(("value", "expected"), [("-3", None), (-1, None), (-1.0, None), (0, 0), ("12", 12), (4.0, 4)])
def test_as_count_refuses_negatives(value, expected):
    assert _coerce.as_count(value) == expected


def _tenant(value):
    return map_execution(
        {
            "execution_id": "0e5c8a3f-9b2d-4f1e-a6c7-d8e9f0a1b2c3",
            "status": "completed",
            "actions_total": value,
            "actions_successful": value,
            "actions_failed": 0,
        }
    ).extra["actions_total"]


def _generic(value):
    return map_session({"id": "s1", "status": "NEW", "steps_count": value}).extra["steps_count"]


def _sendrealm(value):
    return map_step({"step_key": "k", "status": "completed", "attempt": value}).attempt


@pytest.mark.parametrize("read", [_tenant, _generic, _sendrealm], ids=["tenant", "generic", "sendrealm"])
@pytest.mark.parametrize(("value", "expected"), [(3.0, 3), ("3", 3), ("-3", None), (-3, None), ("²", None), (2.5, None), (True, None)])
def test_providers_read_counts_alike(read, value, expected):
    assert read(value) == expected

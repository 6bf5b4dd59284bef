from decimal import Decimal

import pytest

from corral.common.errors import InvalidRequest
from corral.common.slots import ResourceSlot, format_size, parse_size, validate_request


@pytest.mark.parametrize("text, expected", [
    ("512m", 512 * 2**20), ("4G", 4 * 2**30), ("1.5GiB", 3 * 2**29), ("1024", 1024), (2048, 2048), ("1k", 1024),
])
def test_parse_size(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "-1g", "1x", "1..2g"])
def test_parse_size_rejects_garbage(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_size(text)


def test_arithmetic_is_exact_and_zero_slots_vanish() -> None:
    a = ResourceSlot({"cpu": "0.1", "cuda.shares": "0.2"})
    total = ResourceSlot()
    for _ in range(10):
        total = total + a
    assert total == {"cpu": Decimal("1.0"), "cuda.shares": Decimal("2.0")}
    assert (total - total) == ResourceSlot()
    assert ResourceSlot({"cpu": 0}) == ResourceSlot()


def test_fits_and_exceeding() -> None:
    capacity = ResourceSlot({"cpu": 4, "mem": parse_size("8g")})
    assert ResourceSlot({"cpu": 4}).fits_in(capacity)
    assert ResourceSlot({"cpu": 5, "mem": 1, "cuda.device": 1}).exceeding(capacity) == ["cpu", "cuda.device"]


def test_json_roundtrip_keeps_decimals() -> None:
    slot = ResourceSlot({"cuda.shares": "0.33", "mem": 10})
    assert ResourceSlot.from_json(slot.to_json()) == slot
    assert slot.to_json() == {"cuda.shares": "0.33", "mem": "10"}


@pytest.mark.parametrize("request_, needle", [
    ({"gpu": 1}, "unknown resource slot"),
    ({"cpu": -1}, "negative"),
    ({"cpu": "0.001"}, "multiple of 0.01"),
    ({"cuda.device": "1.5"}, "multiple of 1"),
    ({"cpu": 100000}, "larger than any node"),
    ({"cuda.device": 1, "cuda.shares": "0.5"}, "either"),
    ({"cpu": "nan"}, "finite"),
    ({"cpu": True}, "not a number"),
])
def test_validate_request_refuses(request_: dict, needle: str) -> None:
    with pytest.raises(InvalidRequest, match=needle):
        validate_request(request_)


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(3 * 2**29) == "1.5 GiB"

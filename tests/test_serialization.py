from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from hasten import DecodeError, SerializationError, Settings, SignatureError
from hasten.serialization import Codec


def codec(**settings: object) -> Codec:
    return Codec("q", Settings(**settings))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["msgpack", "json"])
def test_plain_data_round_trips(name: str) -> None:
    c = codec(serializer=name)
    data = ["task", {"a": 1, "b": "x", "c": [1.5, None, True]}, None, None]
    assert c.open("id", c.seal("id", data)) == data


def test_msgpack_keeps_bytes_and_encodes_rich_types_as_text() -> None:
    c = codec()
    value = {"raw": b"\x00\xff", "when": datetime(2026, 1, 2, tzinfo=UTC), "id": UUID(int=1)}
    out = c.open("id", c.seal("id", value))
    assert out["raw"] == b"\x00\xff"
    assert out["when"] == "2026-01-02T00:00:00Z"
    assert out["id"] == "00000000-0000-0000-0000-000000000001"
    assert c.open("id", c.seal("id", Decimal("1.5"))) == "1.5"


def test_unserializable_value_raises_serialization_error() -> None:
    with pytest.raises(SerializationError):
        codec().seal("id", {"f": lambda: None})
    with pytest.raises(SerializationError):
        codec(serializer="json").seal("id", {"f": object()})


def test_garbage_raises_decode_error() -> None:
    with pytest.raises(DecodeError):
        codec().open("id", b"\xc1\xc1\xc1")
    with pytest.raises(DecodeError):
        codec(serializer="json").open("id", b"{not json")


def test_signed_payload_verifies_before_decoding() -> None:
    c = codec(serializer="pickle", signing_key=b"k")
    sealed = c.seal("job-1", {"x": 1})
    assert c.open("job-1", sealed) == {"x": 1}
    with pytest.raises(SignatureError):
        c.open("job-1", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(SignatureError):
        c.open("job-1", b"short")


def test_signature_is_bound_to_job_id_and_queue() -> None:
    c = codec(serializer="pickle", signing_key=b"k")
    sealed = c.seal("job-1", {"x": 1})
    with pytest.raises(SignatureError):
        c.open("job-2", sealed)
    other_queue = Codec("other", Settings(serializer="pickle", signing_key=b"k"))
    with pytest.raises(SignatureError):
        other_queue.open("job-1", sealed)


def test_wrong_key_is_rejected() -> None:
    sealed = codec(signing_key=b"a").seal("id", [1])
    with pytest.raises(SignatureError):
        codec(signing_key=b"b").open("id", sealed)

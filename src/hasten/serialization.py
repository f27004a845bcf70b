"""Encode job payloads and results: msgpack by default, JSON, or signed pickle.

A job's payload is ``serializer([task, arguments, options])``; with a signing key it is
followed by an HMAC-SHA256 over (queue, job id, payload), checked before anything is
decoded. A result record is hasten's own msgpack map, whose value part is encoded by the
queue's serializer (and signed the same way).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from typing import Any, Protocol

import msgpack
from pydantic_core import to_jsonable_python

from hasten.errors import DecodeError, SerializationError, SignatureError
from hasten.settings import Settings

__all__ = ["Codec", "JsonSerializer", "MsgpackSerializer", "PickleSerializer", "Serializer"]

_MAC_SIZE = 32


class Serializer(Protocol):
    """Turns plain data into bytes and back."""

    name: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


def _fallback(obj: Any) -> Any:
    # datetimes, UUIDs, Decimals, enums, sets, dataclasses: their JSON form, which the
    # worker's validation turns back into the annotated type.
    try:
        return to_jsonable_python(obj)
    except Exception as exc:
        raise SerializationError(f"cannot serialize {type(obj).__name__}: {exc}") from exc


class MsgpackSerializer:
    """msgpack with bytes kept as bytes; decoding is bounded by the payload limit."""

    name = "msgpack"

    def __init__(self, max_bytes: int = 1024 * 1024) -> None:
        self._max = max_bytes
        self._packer = msgpack.Packer(default=_fallback, use_bin_type=True)

    def dumps(self, obj: Any) -> bytes:
        try:
            return self._packer.pack(obj)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError) as exc:
            self._packer.reset()
            raise SerializationError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)


class JsonSerializer:
    """UTF-8 JSON; bytes become strings, so prefer msgpack for binary arguments."""

    name = "json"

    def dumps(self, obj: Any) -> bytes:
        try:
            return json.dumps(obj, default=_fallback, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise SerializationError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


class PickleSerializer:
    """pickle, for values nothing else can encode; only ever used with a signing key."""

    name = "pickle"

    def dumps(self, obj: Any) -> bytes:
        try:
            return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise SerializationError(str(exc)) from exc

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class Codec:
    """The serializer of one queue, plus signing and size limits."""

    __slots__ = ("_key", "_record", "max_bytes", "queue", "serializer")

    def __init__(self, queue: str, settings: Settings) -> None:
        self.queue = queue
        self.max_bytes = settings.max_payload_bytes
        self._key = settings.signing_key
        self.serializer: Serializer
        if settings.serializer == "msgpack":
            self.serializer = MsgpackSerializer(settings.max_payload_bytes)
        elif settings.serializer == "json":
            self.serializer = JsonSerializer()
        else:
            self.serializer = PickleSerializer()
        self._record = MsgpackSerializer(settings.max_payload_bytes * 2)

    def _mac(self, job_id: str, data: bytes) -> bytes:
        assert self._key is not None
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        mac.update(f"{len(self.queue)}:{self.queue}:{len(job_id)}:{job_id}:".encode())
        mac.update(data)
        return mac.digest()

    def seal(self, job_id: str, obj: Any) -> bytes:
        """Encode *obj* for job *job_id*, signed when the queue has a key."""
        data = self.serializer.dumps(obj)
        if self._key is not None:
            data += self._mac(job_id, data)
        return data

    def open(self, job_id: str, data: bytes) -> Any:
        """Verify and decode what `seal` produced; raises `DecodeError`."""
        if self._key is not None:
            if len(data) < _MAC_SIZE:
                raise SignatureError("payload is shorter than its signature")
            data, mac = data[:-_MAC_SIZE], data[-_MAC_SIZE:]
            if not hmac.compare_digest(mac, self._mac(job_id, data)):
                raise SignatureError("payload signature does not match this queue and job id")
        try:
            return self.serializer.loads(data)
        except Exception as exc:
            raise DecodeError(f"{self.serializer.name} payload does not decode: {exc}") from exc

    def pack_record(self, record: dict[str, Any]) -> bytes:
        return self._record.dumps(record)

    def unpack_record(self, data: bytes) -> dict[str, Any]:
        record = self._record.loads(data)
        if not isinstance(record, dict):
            raise DecodeError("result record is not a map")
        return record

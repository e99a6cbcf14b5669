"""What the shared tier stores for one key, and how it becomes bytes.

An `Entry` carries the value together with what the read path needs to decide
without a second round trip: the version it was written under (fencing), its
logical expiry (wall-clock seconds, comparable across processes) and how long the
load that produced it took (XFetch's delta). `value is None` is a cached miss.

Codecs use msgspec with the caller's type, so a `Cache[Book]` gives back `Book`
instances, not dicts. Entries are msgpack (or JSON) arrays, not maps: smaller and
faster, at the price of field order being part of the format.
"""

from __future__ import annotations

from types import ModuleType
from typing import ClassVar, Generic, Literal, Protocol, TypeVar

import msgspec
import msgspec.json
import msgspec.msgpack

__all__ = ["Codec", "Entry", "JsonCodec", "MsgpackCodec", "make_codec"]

V = TypeVar("V")


class Entry(msgspec.Struct, Generic[V], array_like=True, frozen=True, gc=False):
    version: str
    expires_at: float  # wall-clock seconds; a logical expiry, the storage TTL may be longer
    delta: float  # seconds the load took, for XFetch
    value: V | None  # None: the loader found nothing (negative caching)


class Codec(Protocol[V]):
    """Turns entries and bare values into bytes and back, preserving the value type.

    `decode_entry` and `decode_value` raise `msgspec.DecodeError` (or
    `msgspec.ValidationError`) on bytes they cannot read; callers decide whether
    that is a miss or an error.
    """

    def encode_entry(self, entry: Entry[V]) -> bytes: ...

    def decode_entry(self, data: bytes) -> Entry[V]: ...

    def encode_value(self, value: V) -> bytes: ...

    def decode_value(self, data: bytes) -> V: ...


class _MsgspecCodec(Generic[V]):
    """Both codecs: msgspec encoders and typed decoders of one format."""

    __slots__ = ("_encoder", "_entry_decoder", "_value_decoder")
    _format: ClassVar[ModuleType]  # msgspec.msgpack or msgspec.json
    _encoder: msgspec.msgpack.Encoder | msgspec.json.Encoder
    _entry_decoder: msgspec.msgpack.Decoder[Entry[V]] | msgspec.json.Decoder[Entry[V]]
    _value_decoder: msgspec.msgpack.Decoder[V] | msgspec.json.Decoder[V]

    def __init__(self, value_type: type[V]) -> None:
        self._encoder = self._format.Encoder()
        self._entry_decoder = self._format.Decoder(Entry[value_type])  # type: ignore[valid-type]  # a runtime type argument, as msgspec wants
        self._value_decoder = self._format.Decoder(value_type)

    def encode_entry(self, entry: Entry[V]) -> bytes:
        return self._encoder.encode(entry)

    def decode_entry(self, data: bytes) -> Entry[V]:
        return self._entry_decoder.decode(data)

    def encode_value(self, value: V) -> bytes:
        return self._encoder.encode(value)

    def decode_value(self, data: bytes) -> V:
        return self._value_decoder.decode(data)


class MsgpackCodec(_MsgspecCodec[V]):
    __slots__ = ()
    _format: ClassVar[ModuleType] = msgspec.msgpack


class JsonCodec(_MsgspecCodec[V]):
    """For entries that people or non-Python services read straight from Redis."""

    __slots__ = ()
    _format: ClassVar[ModuleType] = msgspec.json


def make_codec(value_type: type[V], serializer: Literal["msgpack", "json"]) -> Codec[V]:
    if serializer == "msgpack":
        return MsgpackCodec(value_type)
    return JsonCodec(value_type)

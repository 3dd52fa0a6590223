"""Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl sends that way.

kubectl's generators (`kubectl create secret generic …`) build a typed object and POST it
as `application/vnd.kubernetes.protobuf`; a real server decodes it, and client-go does not
fall back to JSON on 415. The envelope is "k8s\\x00" and a `runtime.Unknown` (typeMeta = 1,
raw = 2) whose `raw` is the object's message (k8s.io/api/core/v1/generated.proto). Only
Secrets are understood here, into the JSON the rest of the server takes; other kinds are
refused with 415. Field numbers follow the generated.proto files; unknown fields are skipped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

from revision_controller.testing.store import JSON, ApiError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def decode(body: bytes) -> JSON:
    """The object a protobuf request body holds, as JSON; 400 when malformed, 415 for other kinds."""
    if not body.startswith(_MAGIC):
        raise ApiError(400, "BadRequest", "the protobuf body does not start with the k8s\\x00 envelope")
    try:
        envelope = _fields(body[len(_MAGIC):])
        type_meta = _fields(envelope.get(1, [b""])[-1])
        api_version, kind = _text(type_meta, 1), _text(type_meta, 2)
        if (api_version, kind) != ("v1", "Secret"):
            raise ApiError(415, "UnsupportedMediaType", f"this test server decodes protobuf only for v1 Secrets, "
                                                        f"not {api_version} {kind}: send it as application/json")
        return {"apiVersion": api_version, "kind": kind, **_secret(envelope.get(2, [b""])[-1])}
    except (IndexError, ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "BadRequest", f"the protobuf body is malformed: {error}") from None


def _secret(raw: bytes) -> JSON:
    fields = _fields(raw)
    secret: JSON = {"metadata": _object_meta(fields.get(1, [b""])[-1])}
    data = {key: base64.b64encode(value).decode() for key, value in _map(fields, 2)}
    string_data = {key: value.decode() for key, value in _map(fields, 4)}
    for name, value in (("data", data), ("type", _text(fields, 3)), ("stringData", string_data)):
        if value:
            secret[name] = value
    if fields.get(5):
        secret["immutable"] = bool(_varint(fields[5][-1], 0)[0])
    return secret


def _object_meta(raw: bytes) -> JSON:
    fields = _fields(raw)
    meta: JSON = {}
    for number, name in ((1, "name"), (2, "generateName"), (3, "namespace")):
        if _text(fields, number):
            meta[name] = _text(fields, number)
    for number, name in ((11, "labels"), (12, "annotations")):
        pairs = {key: value.decode() for key, value in _map(fields, number)}
        if pairs:
            meta[name] = pairs
    if fields.get(14):
        meta["finalizers"] = [bytes(value).decode() for value in fields[14]]
    return meta


def _map(fields: dict[int, list[bytes]], number: int) -> Iterator[tuple[str, bytes]]:
    for entry in fields.get(number, []):
        pair = _fields(entry)
        yield _text(pair, 1), pair.get(2, [b""])[-1]


def _text(fields: dict[int, list[bytes]], number: int) -> str:
    return fields.get(number, [b""])[-1].decode()


def _fields(message: bytes) -> dict[int, list[bytes]]:
    """Each field's values by number: length-delimited ones as their bytes, varints as their encoding."""
    fields: dict[int, list[bytes]] = {}
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        number, wire = key >> 3, key & 7
        start = position
        if wire == _VARINT:
            _, position = _varint(message, position)
        elif wire == _BYTES:
            length, start = _varint(message, position)
            position = start + length
        elif wire in (_FIXED64, _FIXED32):
            position += 8 if wire == _FIXED64 else 4
        else:
            raise ValueError(f"wire type {wire} of field {number}")
        if position > len(message):
            raise ValueError(f"field {number} runs past the end")
        fields.setdefault(number, []).append(message[start:position])
    return fields


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")

"""Decoding the protobuf bodies kubectl's generators send. The first bodies are byte for byte what
kubectl 1.33 sent for `kubectl create secret …`; the others are built here field by field."""

from __future__ import annotations

import pytest

from revision_controller.testing.protobuf import decode
from revision_controller.testing.store import ApiError

# kubectl create secret generic basic --from-literal=username=u --from-literal=password=p \
#   --type=kubernetes.io/basic-auth
BASIC_AUTH = (b'k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12O\n\x15\n\x05basic\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00'
              b'\x12\r\n\x08password\x12\x01p\x12\r\n\x08username\x12\x01u\x1a\x18kubernetes.io/basic-auth\x1a\x00"\x00')
# kubectl create secret generic gh --from-literal=token=abc
GENERIC = (b'k8s\x00\n\x0c\n\x02v1\x12\x06Secret\x12$\n\x12\n\x02gh\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00'
           b'\x12\x0c\n\x05token\x12\x03abc\x1a\x00\x1a\x00"\x00')


def field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def varint(value: int) -> bytes:
    out = b""
    while value > 0x7F:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def envelope(api_version: bytes, kind: bytes, raw: bytes) -> bytes:
    return b"k8s\x00" + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


def test_the_secrets_kubectl_sends() -> None:
    assert decode(BASIC_AUTH) == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "basic"},
                                  "data": {"password": "cA==", "username": "dQ=="},
                                  "type": "kubernetes.io/basic-auth"}
    assert decode(GENERIC) == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "gh"},
                               "data": {"token": "YWJj"}}


def test_metadata_maps_string_data_and_immutable() -> None:
    meta = (field(2, b"token-") + field(3, b"team") + field(11, field(1, b"app") + field(2, b"fn"))
            + field(12, field(1, b"note") + field(2, b"x")) + field(14, b"keep") + field(7, 300))
    raw = field(1, meta) + field(4, field(1, b"password") + field(2, b"s3cret")) + field(5, 1)
    assert decode(envelope(b"v1", b"Secret", raw)) == {
        "apiVersion": "v1", "kind": "Secret", "stringData": {"password": "s3cret"}, "immutable": True,
        "metadata": {"generateName": "token-", "namespace": "team", "labels": {"app": "fn"},
                     "annotations": {"note": "x"}, "finalizers": ["keep"]}}


def test_other_kinds_are_unsupported_media() -> None:
    with pytest.raises(ApiError) as refused:
        decode(envelope(b"v1", b"ConfigMap", b""))
    assert refused.value.code == 415 and "only for v1 Secrets, not v1 ConfigMap" in refused.value.message


@pytest.mark.parametrize("body", [b"", b"{}", GENERIC[:30], b"k8s\x00\x0f", b"k8s\x00\n\x80", b"k8s\x00" + b"\xff" * 12,
                                  envelope(b"v1", b"Secret", field(1, b"\xff\xfe"))])
def test_malformed_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(ApiError) as refused:
        decode(body)
    assert refused.value.code == 400

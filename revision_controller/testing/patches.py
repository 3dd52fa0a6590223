"""RFC 7386 JSON merge patch and RFC 6902 JSON patch, as the API server applies them.

Both functions are pure: they never modify their arguments.
"""

from __future__ import annotations

import copy
from typing import Any

JSONValue = Any


class PatchError(Exception):
    """The patch cannot be applied; the API server answers 422 Unprocessable Entity."""


def merge_patch(target: JSONValue, patch: JSONValue) -> JSONValue:
    """RFC 7386: mappings merge recursively, null deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def json_patch(document: JSONValue, operations: list[JSONValue]) -> JSONValue:
    """RFC 6902: apply every operation in order; any failure leaves nothing applied."""
    result = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict):
            raise PatchError(f"patch operation is not an object: {operation!r}")
        result = _apply(result, operation)
    return result


def _apply(document: JSONValue, operation: dict[str, JSONValue]) -> JSONValue:
    op = operation.get("op")
    path = _pointer(_required(operation, "path"))
    if op == "add":
        return _add(document, path, copy.deepcopy(_required(operation, "value")))
    if op == "remove":
        return _remove(document, path)[0]
    if op == "replace":
        value = copy.deepcopy(_required(operation, "value"))
        return value if not path else _add(_remove(document, path)[0], path, value)
    if op == "move":
        source = _pointer(_required(operation, "from"))
        if path[:len(source)] == source and len(path) > len(source):
            raise PatchError(f"cannot move {_format(source)} into its own child {_format(path)}")
        document, value = _remove(document, source)
        return _add(document, path, value)
    if op == "copy":
        value = _get(document, _pointer(_required(operation, "from")))
        return _add(document, path, copy.deepcopy(value))
    if op == "test":
        if not _json_equal(_get(document, path), _required(operation, "value")):
            raise PatchError(f"testing value {_format(path)} failed: test failed")
        return document
    raise PatchError(f"unexpected kind of patch operation: {op!r}")


def _required(operation: dict[str, JSONValue], key: str) -> JSONValue:
    if key not in operation:
        raise PatchError(f"patch operation {operation.get('op')!r} is missing {key!r}")
    return operation[key]


def _pointer(text: JSONValue) -> list[str]:
    """RFC 6901 reference tokens; `~1` must be undone before `~0`."""
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise PatchError(f"invalid JSON pointer: {text!r}")
    if not text:
        return []
    return [token.replace("~1", "/").replace("~0", "~") for token in text[1:].split("/")]


def _format(path: list[str]) -> str:
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in path)


def _get(document: JSONValue, path: list[str]) -> JSONValue:
    for depth, token in enumerate(path):
        document = _child(document, token, path[:depth + 1])
    return document


def _child(container: JSONValue, token: str, path: list[str]) -> JSONValue:
    if isinstance(container, dict) and token in container:
        return container[token]
    if isinstance(container, list):
        return container[_index(container, token, path, allow_end=False)]
    raise PatchError(f"path {_format(path)} does not exist")


def _index(array: list[JSONValue], token: str, path: list[str], allow_end: bool) -> int:
    if allow_end and token == "-":
        return len(array)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"invalid array index in {_format(path)}")
    index = int(token)
    if index > len(array) or (index == len(array) and not allow_end):
        raise PatchError(f"array index out of bounds in {_format(path)}")
    return index


def _add(document: JSONValue, path: list[str], value: JSONValue) -> JSONValue:
    if not path:
        return value
    parent = _get(document, path[:-1])
    token = path[-1]
    if isinstance(parent, dict):
        parent[token] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, token, path, allow_end=True), value)
    else:
        raise PatchError(f"cannot add {_format(path)}: parent is not an object or array")
    return document


def _remove(document: JSONValue, path: list[str]) -> tuple[JSONValue, JSONValue]:
    """The document without the value at `path`, and that value."""
    if not path:
        raise PatchError("cannot remove the whole document")
    parent = _get(document, path[:-1])
    value = _child(parent, path[-1], path)
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        del parent[int(path[-1])]
    return document, value


def _json_equal(left: JSONValue, right: JSONValue) -> bool:
    """JSON equality: unlike Python's, `true` is not `1` and key order does not matter."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, (int, float)) and isinstance(right, (int, float)):
        return left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_json_equal, left, right))
    return type(left) is type(right) and left == right

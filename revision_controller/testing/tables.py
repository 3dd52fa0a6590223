"""The server-side rows of `kubectl get`: a `meta.k8s.io/v1` Table from a CRD's printer columns.

Asked for with `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`. Cells are computed
as the apiextensions server does: a `string` column prints the first JSONPath match, a `date`
column the age in Kubernetes' short form ("5m2s"), a column with no match is null.
Only the JSONPath the printer columns use is understood: `.a.b`, `[n]`, `[?(@.k=="v")]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from revision_controller.testing.store import JSON, ResourceType

TABLE_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
_STEP = re.compile(r'\.([\w-]+)|\[(\d+)\]|\[\?\(@\.([\w.-]+)\s*==\s*"([^"]*)"\)\]')


def table(res: ResourceType, version: str, objects: Iterable[JSON], resource_version: str | None,
          include_object: str = "Metadata", now: datetime | None = None) -> JSON:
    now = now or datetime.now(UTC)
    metadata = {"resourceVersion": resource_version} if resource_version is not None else {}
    return {"kind": "Table", "apiVersion": f"{TABLE_GROUP}/v1", "metadata": metadata,
            "columnDefinitions": _columns(res),
            "rows": [_row(res, version, obj, include_object, now) for obj in objects]}


def _columns(res: ResourceType) -> list[JSON]:
    name = {"name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace. Is required when creating resources, "
                           "although some resources may allow a client to request the generation of an "
                           "appropriate name automatically. Name is primarily intended for creation "
                           "idempotence and configuration definition. Cannot be updated."}
    return [name, *({"name": column.name, "type": column.type, "format": "", "priority": column.priority,
                      "description": column.description} for column in res.printer_columns)]


def _row(res: ResourceType, version: str, obj: JSON, include_object: str, now: datetime) -> JSON:
    cells: list[Any] = [obj["metadata"]["name"]]
    for column in res.printer_columns:
        found = find(obj, column.json_path)
        if not found:
            cells.append(None)
        elif column.type == "date":
            cells.append(_age(found[0], now))
        elif column.type == "string":
            cells.append(found[0] if isinstance(found[0], str) else _go_print(found[0]))
        else:
            cells.append(found[0])
    row: JSON = {"cells": cells}
    if include_object == "Object":
        row["object"] = res.render(obj, version)
    elif include_object != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj["metadata"]}
    return row


def find(obj: Any, path: str) -> list[Any]:
    """What `path` (a JSONPath of the kinds above, with or without braces) matches in `obj`."""
    path = path.strip().removeprefix("{").removesuffix("}")
    values = [obj]
    position = 0
    while position < len(path):
        step = _STEP.match(path, position)
        if step is None:
            raise ValueError(f"unsupported JSONPath {path!r} at {position}")
        key, index, field, wanted = step.groups()
        values = list(_step(values, key, index, field, wanted))
        position = step.end()
    return values


def _step(values: list[Any], key: str | None, index: str | None, field: str | None,
          wanted: str | None) -> Iterable[Any]:
    for value in values:
        if key is not None and isinstance(value, dict) and key in value:
            yield value[key]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            yield value[int(index)]
        elif field is not None and isinstance(value, list):
            yield from (item for item in value if find(item, f".{field}") == [wanted])


def _go_print(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _age(value: Any, now: datetime) -> str:
    try:
        then = datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    return human_duration(int((now - then).total_seconds()))


def human_duration(seconds: int) -> str:
    """k8s.io/apimachinery's duration.HumanDuration, to the second."""
    if seconds < -1:
        return "<invalid>"
    seconds = max(seconds, 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 192:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"

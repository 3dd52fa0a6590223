"""The server-side rows of `kubectl get`: a `meta.k8s.io/v1` Table.

Asked for with `Accept: application/json;as=Table;g=meta.k8s.io;v=v1`. Two kinds have one:
- Functions, from the CRD's printer columns, computed as the apiextensions server does:
  a `string` column prints the first JSONPath match, a `date` column the age in Kubernetes'
  short form ("5m2s"), a column with no match is null. Only the JSONPath the printer
  columns use is understood: `.a.b`, `[n]`, `[?(@.k=="v")]`.
- Events, in core v1 and `events.k8s.io/v1` alike, with the columns and cells of the
  server's own Event printer (pkg/printers/internalversion), which reads the core form.
Other kinds get no Table; kubectl then prints names and ages itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from revision_controller.testing.store import JSON, ResourceType

TABLE_GROUP = "meta.k8s.io"
TABLE_VERSIONS = ("v1", "v1beta1")
_STEP = re.compile(r'\.([\w-]+)|\[(\d+)\]|\[\?\(@\.([\w.-]+)\s*==\s*"([^"]*)"\)\]')
_NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "priority": 0,
                "description": "Name must be unique within a namespace. Is required when creating resources, "
                               "although some resources may allow a client to request the generation of an "
                               "appropriate name automatically. Name is primarily intended for creation "
                               "idempotence and configuration definition. Cannot be updated."}
# (name, priority): kubectl shows priority 0 columns, and the others with `-o wide`.
_EVENT_COLUMNS = (("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1), ("Source", 1),
                  ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1))

Cells = Callable[[JSON, datetime], list[Any]]


def has_table(res: ResourceType) -> bool:
    return bool(res.printer_columns) or _is_event(res)


def table(res: ResourceType, version: str, objects: Iterable[JSON], resource_version: str | None,
          include_object: str = "Metadata", now: datetime | None = None) -> JSON:
    now = now or datetime.now(UTC)
    metadata = {"resourceVersion": resource_version} if resource_version is not None else {}
    columns, cells = _format(res)
    return {"kind": "Table", "apiVersion": f"{TABLE_GROUP}/v1", "metadata": metadata,
            "columnDefinitions": columns,
            "rows": [_row(res, version, obj, cells(obj, now), include_object) for obj in objects]}


def _is_event(res: ResourceType) -> bool:
    return (res.stored.group, res.stored.kind) == ("", "Event")


def _format(res: ResourceType) -> tuple[list[JSON], Cells]:
    if _is_event(res):
        return ([{"name": name, "type": "string", "format": "", "priority": priority, "description": ""}
                 for name, priority in _EVENT_COLUMNS], _event_cells)
    columns = [_NAME_COLUMN, *({"name": column.name, "type": column.type, "format": "", "priority": column.priority,
                                "description": column.description} for column in res.printer_columns)]
    return columns, lambda obj, now: _printer_cells(res, obj, now)


def _row(res: ResourceType, version: str, obj: JSON, cells: list[Any], include_object: str) -> JSON:
    row: JSON = {"cells": cells}
    if include_object == "Object":
        row["object"] = res.render(obj, version)
    elif include_object != "None":
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                         "metadata": obj["metadata"]}
    return row


def _printer_cells(res: ResourceType, obj: JSON, now: datetime) -> list[Any]:
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
    return cells


def _event_cells(event: JSON, now: datetime) -> list[Any]:
    """As the server's printEvent: a series' last observation and count win, a new-style Event
    without timestamps is seen at its eventTime, and an Event without a count happened once."""
    involved = event.get("involvedObject") or {}
    first = _age(event.get("firstTimestamp") or event.get("eventTime"), now)
    last = _age(event["lastTimestamp"], now) if event.get("lastTimestamp") else first
    count = event.get("count") or 1
    series = event.get("series")
    if isinstance(series, dict):
        last, count = _age(series.get("lastObservedTime"), now), series.get("count", 0)
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent", "")
    instance = source.get("host") or event.get("reportingInstance", "")
    return [last, event.get("type", ""), event.get("reason", ""), target, involved.get("fieldPath", ""),
            f"{component}, {instance}" if instance else component, str(event.get("message", "")).strip(),
            first, count, event["metadata"]["name"]]


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
    """A Time ("…T10:00:00Z") or MicroTime ("…T10:00:00.123456Z") as an age; "<unknown>" when unset."""
    if not value:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(str(value))
    except ValueError:
        return "<invalid>"
    return human_duration(int((now - then).total_seconds())) if then.tzinfo else "<invalid>"


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

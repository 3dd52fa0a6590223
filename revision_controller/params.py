"""The `openfunction.io/revision-controller-params` annotation, parsed as the contract says.

Pure: text in, `Params` or `InvalidParameters` out. The original controller read
the YAML into a string map, so scalars of any YAML type are taken as their text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import yaml

from revision_controller.duration import DurationTooLong, parse_duration

SWITCH_ANNOTATION = "openfunction.io/revision-controller"
PARAMS_ANNOTATION = "openfunction.io/revision-controller-params"
# Any new value polls the Function's target at once ("check now"); webhooks on a standby set it too.
REQUESTED_AT_ANNOTATION = "openfunction.io/revision-controller-requested-at"
SWITCH_ON = "enable"

TYPES = ("source", "source-image", "image")
REPO_TYPES = ("github", "gitlab", "gitee", "git")
AUTH_TYPES = ("PrivateToken", "OAuthToken", "JobToken")
KNOWN_KEYS = ("type", "polling-interval", "repo-type", "base-url", "auth-type", "project-id",
              "insecure-registry", "paths")
# `paths` alone may be a list (or one comma-separated string) of patterns: paths.py reads them.
LIST_KEYS = ("paths",)
DEFAULT_POLLING_INTERVAL = 5.0
# A handful of short keys fit in a few hundred bytes; anything far longer is not parameters.
MAX_PARAMS_BYTES = 8192
# Parameters are a flat mapping of scalars. PyYAML takes about a second to reach its recursion
# limit in 1,000 nested brackets, so nesting is refused before it parses.
MAX_PARAMS_DEPTH = 16
_BRACKETS = re.compile(r"[\[\]{}]")
# Values are quoted in messages up to this length.
SHOWN_CHARACTERS = 80


@dataclass(frozen=True)
class Params:
    type: str = "source"
    polling_interval: float = DEFAULT_POLLING_INTERVAL
    repo_type: str = "github"
    base_url: str = ""
    auth_type: str = ""
    project_id: str = ""
    insecure_registry: bool = False
    paths: tuple[str, ...] | None = None  # None: any new commit rebuilds
    unknown_keys: tuple[str, ...] = ()


class InvalidParameters(ValueError):
    """The annotation cannot be used; the message names the key and value and what to write."""


# Most Functions of a cluster share a few annotations; YAML is slow to parse (150 µs each),
# and 10,000 Functions are all planned again at every start and re-list.
@functools.lru_cache(maxsize=4096)
def parse_params(text: str | None, default_interval: float = DEFAULT_POLLING_INTERVAL) -> Params:
    values = _mapping(text)
    interval = _interval(values.get("polling-interval"), default_interval)
    kind = _choice(values, "type", TYPES, "source")
    repo_type = _choice(values, "repo-type", REPO_TYPES, "github")
    auth_type = _choice(values, "auth-type", AUTH_TYPES, "")
    return Params(
        type=kind,
        polling_interval=interval,
        repo_type=repo_type,
        base_url=values.get("base-url", ""),
        auth_type=auth_type,
        project_id=values.get("project-id", ""),
        insecure_registry=_boolean(values.get("insecure-registry")),
        paths=_patterns(values["paths"]) if "paths" in values else None,
        unknown_keys=tuple(sorted(key for key in values if key not in KNOWN_KEYS)),
    )


def _mapping(text: str | None) -> dict[str, str]:
    if text is None or not text.strip():
        return {}
    size = len(text.encode())
    if size > MAX_PARAMS_BYTES:
        raise InvalidParameters(f"{PARAMS_ANNOTATION} is {size} bytes long, more than parameters ever "
                                f"need ({MAX_PARAMS_BYTES}): write a mapping such as "
                                f"'type: source\\npolling-interval: 1m'")
    if _depth(text) > MAX_PARAMS_DEPTH:
        raise InvalidParameters(f"{PARAMS_ANNOTATION} nests brackets more than {MAX_PARAMS_DEPTH} deep, "
                                f"and parameters are single values: write a mapping such as "
                                f"'type: source\\npolling-interval: 1m'")
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise InvalidParameters(
            f"{PARAMS_ANNOTATION} is not valid YAML{at}: write a mapping such as "
            f"'type: source\\npolling-interval: 1m'") from None
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError) as error:
        # PyYAML's constructors raise these for tags it cannot honour (`!!int 1s`,
        # `!!timestamp x`, `!!float` of nothing) and its composer for nesting too deep.
        raise InvalidParameters(
            f"{PARAMS_ANNOTATION} cannot be read ({type(error).__name__}: a YAML tag or nesting it "
            f"cannot honour): write plain values, e.g. 'polling-interval: 1m'") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidParameters(
            f"{PARAMS_ANNOTATION} must be a YAML mapping of parameters, got a "
            f"{type(loaded).__name__}: write e.g. 'polling-interval: 1m'")
    return {str(key): _list(str(key), value) if str(key) in LIST_KEYS and isinstance(value, list)
            else _scalar(str(key), value) for key, value in loaded.items()}


def _list(key: str, values: list[object]) -> str:
    """A list of scalars as one comma-separated value, the other spelling the key accepts."""
    items = [_scalar(key, value) for value in values]
    if any("," in item for item in items):
        raise InvalidParameters(f"{key} lists a pattern with a comma: write each pattern as its own item")
    return ",".join(items)


def _patterns(value: str) -> tuple[str, ...]:
    patterns = tuple(item.strip() for item in value.split(","))
    if not any(patterns):
        raise InvalidParameters("paths is empty: list the folders and files whose changes rebuild this "
                                "Function, e.g. paths: [\".\", \"/go.mod\"], or remove it to rebuild on any commit")
    return tuple(pattern for pattern in patterns if pattern)


def _depth(text: str) -> int:
    """How deep flow brackets nest, quoted or not: a bound, not YAML's reading."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(text):
        depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
    return deepest


def _shown(value: str) -> str:
    """The value as a message quotes it: in full when short, its start otherwise."""
    if len(value) <= SHOWN_CHARACTERS:
        return repr(value)
    return f"{value[:SHOWN_CHARACTERS]!r}... ({len(value)} characters)"


def _scalar(key: str, value: object) -> str:
    if isinstance(value, (dict, list)):
        raise InvalidParameters(f"parameter {_shown(key)} must be a single value, got a {type(value).__name__}")
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _choice(values: dict[str, str], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = values.get(key, "")
    if value == "":
        return default
    if value not in allowed:
        raise InvalidParameters(f"{key} {_shown(value)} is not supported: use one of {', '.join(allowed)}")
    return value


def _interval(value: str | None, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        seconds = parse_duration(value)
    except DurationTooLong:
        raise InvalidParameters(f"polling-interval {_shown(value)} is longer than a Go duration can be "
                                f"(about 292 years): write e.g. 1h") from None
    except ValueError:
        raise InvalidParameters(
            f"polling-interval {_shown(value)} is not a duration: write a number with a unit, "
            f"e.g. 30s, 1m, 1h30m or 500ms") from None
    if seconds <= 0:
        raise InvalidParameters(f"polling-interval {_shown(value)} must be greater than zero, e.g. 30s")
    return seconds


def _boolean(value: str | None) -> bool:
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise InvalidParameters(f"insecure-registry {_shown(value)} must be true or false")
    return lowered == "true"

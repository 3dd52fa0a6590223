"""The Functions `revision-controller check` reads: YAML documents from files or stdin, or one
Function from a cluster. Reading never writes anywhere.

Whatever a file holds ends as a clear `InputError`, never a traceback; a file is read up to
`MAX_INPUT_BYTES`, past which it is refused rather than parsed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, BinaryIO

import urllib3
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from revision_controller.function import KIND, FunctionRef
from revision_controller.kube import FunctionsApi, api_error_summary

MAX_INPUT_BYTES = 10 * 1024 * 1024
STDIN = "-"
DEFAULT_NAMESPACE = "default"
# NAMESPACE/NAME as Kubernetes spells them: a DNS label, then a DNS subdomain.
FUNCTION_REF = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """An input cannot be read: the message names it and says why."""


class ClusterError(Exception):
    """The cluster could not be asked for a Function (unreachable, refused)."""


@dataclass(frozen=True)
class Document:
    """A Function's API object and where it was read: a file (and which of its documents), or the cluster."""

    source: str
    obj: dict[str, Any]


@dataclass(frozen=True)
class Skipped:
    source: str
    why: str


def is_function_ref(argument: str) -> bool:
    """Whether an argument names a Function in a cluster rather than a file."""
    return bool(FUNCTION_REF.match(argument)) and not os.path.exists(argument)


def read_input(name: str, stdin: BinaryIO) -> bytes:
    """The bytes of a file, or of stdin for `-`, up to MAX_INPUT_BYTES."""
    try:
        if name == STDIN:
            data = stdin.read(MAX_INPUT_BYTES + 1)
        else:
            with open(name, "rb") as file:
                data = file.read(MAX_INPUT_BYTES + 1)
    except OSError as error:
        raise InputError(f"{name}: cannot be read: {error.strerror or error}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{name}: larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB, more than Function "
                         "manifests take: give the files that hold the Functions")
    return data


def functions_in(data: bytes, name: str) -> tuple[list[Document], list[Skipped]]:
    """The Functions among the YAML documents of one input, and the documents skipped. Pure."""
    documents = _documents(data, name)
    several = len(documents) > 1
    found, skipped = [], []
    for number, obj in enumerate(documents, start=1):
        source = f"{name}#{number}" if several else name
        if not isinstance(obj, dict):
            skipped.append(Skipped(source, f"a YAML {type(obj).__name__}, not a Kubernetes object"))
        elif obj.get("kind") != KIND:
            skipped.append(Skipped(source, f"kind {str(obj.get('kind'))[:80]!r}, not {KIND}"))
        else:
            found.append(Document(source, with_namespace(obj)))
    return found, skipped


def _documents(data: bytes, name: str) -> list[object]:
    try:
        return [obj for obj in yaml.load_all(data, Loader=_Loader) if obj is not None]
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise InputError(f"{name}: not YAML{at}: {problem}") from None
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError) as error:
        # PyYAML's constructors raise these for tags it cannot honour, its composer for deep nesting.
        raise InputError(f"{name}: cannot be read as YAML ({type(error).__name__}: a tag or nesting "
                         "it cannot honour)") from None


def with_namespace(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with `default` as its namespace when it names none, as kubectl applies it."""
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if isinstance(metadata.get("namespace"), str) and metadata["namespace"]:
        return obj
    return {**obj, "metadata": {**metadata, "namespace": DEFAULT_NAMESPACE}}


def read_function(api: client.ApiClient, version: str, argument: str) -> Document:
    """One Function from the cluster, by NAMESPACE/NAME: a GET, nothing else."""
    namespace, name = argument.split("/", 1)
    functions = FunctionsApi(api, version)
    try:
        obj = functions.get(FunctionRef(namespace, name))
    except ApiException as error:
        if error.status == 404:
            raise InputError(f"{argument}: no such Function in the cluster ({functions.api_version})") from None
        raise ClusterError(f"{argument}: the cluster could not be asked for it: "
                           f"{api_error_summary(error)}") from None
    except (urllib3.exceptions.HTTPError, OSError) as error:
        raise ClusterError(f"{argument}: the cluster could not be asked for it: "
                           f"{api_error_summary(error)}") from None
    return Document(f"cluster, {functions.api_version}", obj)

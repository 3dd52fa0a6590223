"""Reading the hosts' comparisons of two commits into `ChangedFiles`, in one place for every host.

A comparison the provider cannot vouch for is not an error but an uncertain answer: its
reason finishes the sentence "rebuilt because ...", and the daemon rebuilds. What is parsed
is bounded: an answer over `MAX_ANSWER_BYTES` is not read, a list over `MAX_FILES` is cut.
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeGuard

from providers.base import ChangedFiles
from providers.failures import Subject, bad_answer

MAX_ANSWER_BYTES = 32 * 1024 * 1024
MAX_FILES = 10_000


def short(sha: str) -> str:
    return sha[:7]


def not_an_ancestor(base: str, head: str) -> ChangedFiles:
    return ChangedFiles(uncertain=f"the recorded commit {short(base)} is not an ancestor of the head "
                                  f"{short(head)}: history was rewritten")


def unknown_commit(base: str) -> ChangedFiles:
    return ChangedFiles(uncertain=f"the server does not know the recorded commit {short(base)}: "
                                  "history was rewritten")


def too_large() -> ChangedFiles:
    return ChangedFiles(uncertain=f"the server's list of changed files is over {MAX_ANSWER_BYTES // 2**20} MiB, "
                                  "too large to read")


def bounded(chunks: Iterable[bytes]) -> bytes | None:
    """The chunks of an answer joined, None as soon as they pass MAX_ANSWER_BYTES."""
    kept: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        kept.append(chunk)
    return b"".join(kept)


def json_document(body: str, subject: Subject) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise bad_answer(subject) from None


def github_files(files: object, subject: Subject, *, truncated: str = "") -> ChangedFiles:
    """GitHub's (and Gitee's) `files`: `filename`, and `previous_filename` for a renamed or copied
    file. `truncated`, when not empty, is why the list is known to be incomplete.

    No list at all, or a rename without its old path, is uncertain: the old path may be the one
    that matters."""
    if files is None:
        return ChangedFiles(uncertain="the server did not list the changed files")
    entries = _entries(files, subject)
    paths: list[str] = []
    uncertain = ""
    for entry in entries[:MAX_FILES]:
        name, previous = entry.get("filename"), entry.get("previous_filename")
        if not _is_path(name) or not (previous is None or _is_path(previous)):
            raise bad_answer(subject)
        if previous is not None:
            paths.append(previous)
        elif entry.get("status") == "renamed" and not uncertain:
            uncertain = f"the server did not say which file was renamed to {name}"
        paths.append(name)
    return _changed(paths, len(entries), truncated or uncertain)


def gitlab_files(diffs: object, subject: Subject, *, truncated: str = "") -> ChangedFiles:
    """GitLab's `diffs`: each with `old_path` and `new_path`, equal unless renamed."""
    entries = _entries(diffs, subject)
    paths: list[str] = []
    for entry in entries[:MAX_FILES]:
        old, new = entry.get("old_path"), entry.get("new_path")
        if not (_is_path(old) and _is_path(new)):
            raise bad_answer(subject)
        paths += [old, new]
    return _changed(paths, len(entries), truncated)


def _entries(files: object, subject: Subject) -> list[dict[str, object]]:
    if not isinstance(files, list) or not all(isinstance(entry, dict) for entry in files):
        raise bad_answer(subject)
    return files


def _is_path(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _changed(paths: list[str], listed: int, uncertain: str) -> ChangedFiles:
    if listed > MAX_FILES and not uncertain:
        uncertain = f"the server listed {listed} changed files, more than the {MAX_FILES} read"
    return ChangedFiles(files=tuple(dict.fromkeys(path.lstrip("/") for path in paths)), uncertain=uncertain)

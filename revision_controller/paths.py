"""Which changed files concern a Function: its `paths` patterns, read against the repository root.

A pattern is relative to the Function's `sourceSubPath` unless it begins with `/` (the
repository root); `.` is the sub-path itself. `*` matches within one folder, `**` across
folders. A pattern that names a folder covers everything in it. Pure: no I/O.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

MAX_PATTERNS = 100
MAX_PATTERN_CHARACTERS = 1000


class InvalidPaths(ValueError):
    """A pattern cannot be used; the message names it and says what to write."""


@dataclass(frozen=True)
class PathFilter:
    """The patterns of one Function, each as written and as a regular expression on a
    repository-relative path (no leading slash)."""

    patterns: tuple[str, ...]
    _expressions: tuple[re.Pattern[str], ...]

    def matches(self, changed: str) -> bool:
        """Whether a changed file (a repository-relative path) is one of these paths or lies
        in a folder one of them names."""
        path = changed.strip("/")
        candidates = [path, *_folders(path)]
        return any(expression.fullmatch(candidate) for expression in self._expressions for candidate in candidates)

    def matching(self, changed: list[str]) -> list[str]:
        return [path for path in changed if self.matches(path)]


def path_filter(patterns: list[str], sub_path: str) -> PathFilter:
    """The filter for `patterns` of a Function built from `sub_path`; InvalidPaths naming a bad one."""
    if not patterns:
        raise InvalidPaths("paths is empty: list at least one pattern, e.g. paths: [\".\"]")
    if len(patterns) > MAX_PATTERNS:
        raise InvalidPaths(f"paths lists {len(patterns)} patterns, more than {MAX_PATTERNS}: use '**' "
                           "to cover several folders at once")
    rooted = tuple(_rooted(pattern, sub_path) for pattern in patterns)
    return PathFilter(tuple(patterns), tuple(re.compile(_expression(pattern)) for pattern in rooted))


def _rooted(pattern: str, sub_path: str) -> str:
    """The pattern as a repository-relative path, without leading or trailing slashes."""
    text = pattern.strip()
    shown = repr(text[:80])
    if not text or len(text) > MAX_PATTERN_CHARACTERS or any(ord(c) < 32 or c == "\\" for c in text):
        raise InvalidPaths(f"paths pattern {shown} is empty, too long or holds control characters or "
                           "backslashes: write a folder or file such as '.', 'src/**' or '/go.mod'")
    if "***" in text:
        raise InvalidPaths(f"paths pattern {shown} has '***': use '*' within a folder or '**' across folders")
    relative = text.lstrip("/")
    base = "" if text.startswith("/") else sub_path.strip().strip("/")
    joined = posixpath.normpath(posixpath.join(base, relative) if base or relative else ".")
    if joined == ".." or joined.startswith("../"):
        raise InvalidPaths(f"paths pattern {shown} leaves the repository: patterns are relative to "
                           "sourceSubPath, or to the repository root when they begin with '/'")
    return "" if joined == "." else joined


_TOKENS = re.compile(r"(\*\*/|/\*\*$|\*\*|\*)")
_TRANSLATED = {"**/": "(?:[^/]+/)*", "/**": "(?:/[^/]+)*", "**": ".*", "*": "[^/]*"}


def _expression(pattern: str) -> str:
    """`*` within a folder, `**` across folders; the root (an empty pattern) is every path."""
    if not pattern:
        return ".*"
    return "".join(_TRANSLATED.get(token, re.escape(token)) for token in _TOKENS.split(pattern) if token)


def _folders(path: str) -> list[str]:
    """The folders a path lies in, innermost first, without the root."""
    folders = []
    head = posixpath.dirname(path)
    while head:
        folders.append(head)
        head = posixpath.dirname(head)
    return folders

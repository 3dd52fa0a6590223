"""`paths` patterns against changed files: relative to the sub-path, rooted with '/', '*' and '**'."""

from __future__ import annotations

import pytest

from revision_controller.paths import MAX_PATTERNS, InvalidPaths, path_filter


@pytest.mark.parametrize("patterns, sub_path, changed, expected", [
    (["."], "functions/a", "functions/a/main.go", True),
    (["."], "functions/a", "functions/a/lib/util.go", True),
    (["."], "functions/a", "functions/b/main.go", False),
    (["."], "functions/a", "functions/ab/main.go", False),
    (["."], "", "README.md", True),
    (["/go.mod"], "functions/a", "go.mod", True),
    (["/go.mod"], "functions/a", "functions/a/go.mod", False),
    (["go.mod"], "functions/a", "functions/a/go.mod", True),
    (["/libs/common/**"], "functions/a", "libs/common/x/y.go", True),
    (["/libs/common/**"], "functions/a", "libs/commons/y.go", False),
    (["/libs/common"], "functions/a", "libs/common/y.go", True),
    (["*.go"], "functions/a", "functions/a/main.go", True),
    (["*.go"], "functions/a", "functions/a/sub/main.go", False),
    (["**/*.go"], "functions/a", "functions/a/sub/deep/main.go", True),
    (["**/*.go"], "functions/a", "functions/a/main.go", True),
    (["**/*.go"], "functions/a", "functions/a/main.py", False),
    (["../shared"], "functions/a", "functions/shared/x.go", True),
    (["/"], "functions/a", "anything/at/all", True),
    (["src/*/handler.go"], "", "src/hello/handler.go", True),
    (["src/*/handler.go"], "", "src/hello/deep/handler.go", False),
    (["a.b"], "", "axb", False),  # no regular expression leaks through
])
def test_a_changed_file_matches_or_not(patterns: list[str], sub_path: str, changed: str, expected: bool) -> None:
    assert path_filter(patterns, sub_path).matches(changed) is expected


def test_matching_keeps_the_changed_files_that_match_in_order() -> None:
    paths = path_filter([".", "/go.mod"], "functions/a")
    assert paths.matching(["README.md", "go.mod", "functions/a/x.go", "functions/b/x.go"]) == [
        "go.mod", "functions/a/x.go"]


@pytest.mark.parametrize("patterns, sub_path, message", [
    ([], "", "paths is empty"),
    ([""], "", "is empty, too long"),
    (["a\nb"], "", "control characters"),
    (["a\\b"], "", "backslashes"),
    (["x" * 1001], "", "too long"),
    (["../../../outside"], "functions/a", "leaves the repository"),
    (["/.."], "", "leaves the repository"),
    (["a/***"], "", "'***'"),
    (["."] * (MAX_PATTERNS + 1), "", "more than 100"),
])
def test_a_pattern_that_cannot_be_used_is_refused_saying_why(patterns: list[str], sub_path: str,
                                                             message: str) -> None:
    with pytest.raises(InvalidPaths, match=message.replace("*", r"\*")):
        path_filter(patterns, sub_path)

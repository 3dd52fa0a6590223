from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers import changes
from providers.base import ChangedFiles, GitSource, Unavailable
from providers.changes import bounded, github_files, gitlab_files
from providers.failures import Subject

SUBJECT = Subject(GitSource("github", "https://api.github.com", "octo/hello"))


def test_paths_are_listed_once_in_order_without_a_leading_slash() -> None:
    files = [{"filename": "b.txt"}, {"filename": "/a.txt"}, {"filename": "b.txt"},
             {"filename": "c.txt", "previous_filename": "a.txt", "status": "renamed"}]

    assert github_files(files, SUBJECT) == ChangedFiles(files=("b.txt", "a.txt", "c.txt"))


def test_a_copy_lists_its_source_too() -> None:
    files = [{"filename": "copy.py", "previous_filename": "src.py", "status": "copied"}]

    assert github_files(files, SUBJECT).files == ("src.py", "copy.py")


def test_a_known_truncation_is_the_reason_given() -> None:
    files = [{"filename": "new.py", "status": "renamed"}]

    assert github_files(files, SUBJECT, truncated="cut").uncertain == "cut"


def test_more_files_than_are_read_is_uncertain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MAX_FILES", 3)

    changed = gitlab_files([{"old_path": f"{i}", "new_path": f"{i}"} for i in range(5)], SUBJECT)

    assert changed == ChangedFiles(files=("0", "1", "2"),
                                   uncertain="the server listed 5 changed files, more than the 3 read")


def test_no_list_at_all_is_uncertain() -> None:
    assert github_files(None, SUBJECT) == ChangedFiles(uncertain="the server did not list the changed files")


@pytest.mark.parametrize("files", [{}, ["a"], [{"filename": ""}], [{"filename": "a", "previous_filename": 1}]])
def test_an_odd_github_list_is_unreadable(files: object) -> None:
    with pytest.raises(Unavailable, match="could not be read"):
        github_files(files, SUBJECT)


@pytest.mark.parametrize("diffs", [None, [{"old_path": "a"}], [{"old_path": "a", "new_path": None}]])
def test_an_odd_gitlab_list_is_unreadable(diffs: object) -> None:
    with pytest.raises(Unavailable, match="could not be read"):
        gitlab_files(diffs, SUBJECT)


def test_bounded_stops_reading_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "MAX_ANSWER_BYTES", 4)
    read: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        for chunk in (b"ab", b"cd", b"ef", b"gh"):
            read.append(chunk)
            yield chunk

    assert bounded([b"ab", b"cd"]) == b"abcd"
    assert bounded(chunks()) is None
    assert read == [b"ab", b"cd", b"ef"]

from revision_controller.decision import source_patch, with_precondition
from revision_controller.function import FunctionRef, FunctionView


def view(commit: str) -> FunctionView:
    return FunctionView(FunctionRef("ns", "fn"), "uid", "12", commit_sha=commit)


def test_a_moved_head_clears_build_and_records_the_new_commit() -> None:
    assert source_patch(view("old"), "new") == {
        "status": {"build": None, "sources": [{"name": "default", "git": {"commitSha": "new"}}]}}


def test_nothing_is_written_when_the_head_has_not_moved() -> None:
    assert source_patch(view("same"), "same") is None


def test_nothing_is_written_before_the_first_build_records_a_commit() -> None:
    assert source_patch(view(""), "new") is None


def test_the_patch_carries_the_resource_version_it_was_decided_on() -> None:
    patch = source_patch(view("old"), "new")
    assert with_precondition(patch, "12") == {"metadata": {"resourceVersion": "12"}, **patch}

from providers import ChangedFiles
from revision_controller.decision import Screened, decide, screen, with_precondition
from revision_controller.function import FunctionRef, FunctionView
from revision_controller.paths import path_filter

REF = FunctionRef("ns", "fn")


def view(commit: str = "", bundle: str = "", image: str = "") -> FunctionView:
    return FunctionView(REF, "uid", "12", commit_sha=commit, bundle_digest=bundle, image_digest=image,
                        bundle_image="r/src:v1", image="r/app:v1")


def test_source_a_moved_head_clears_build_and_records_the_new_commit() -> None:
    change = decide("source", view(commit="old"), "new")
    assert change.patch == {
        "status": {"build": None, "sources": [{"name": "default", "git": {"commitSha": "new"}}]}}
    assert change.reason == "SourceChanged" and "old" in change.message and "new" in change.message


def test_source_nothing_is_written_when_the_head_has_not_moved() -> None:
    assert decide("source", view(commit="same"), "same") is None


def test_source_nothing_is_written_before_the_first_build_records_a_commit() -> None:
    assert decide("source", view(), "new") is None


def test_source_image_a_moved_digest_clears_build_and_records_the_bundle_digest() -> None:
    change = decide("source-image", view(bundle="sha256:a"), "sha256:b")
    assert change.patch == {
        "status": {"build": None, "sources": [{"name": "default", "bundle": {"digest": "sha256:b"}}]}}
    assert change.reason == "SourceImageChanged" and "r/src:v1" in change.message
    assert decide("source-image", view(bundle="sha256:b"), "sha256:b") is None


def test_image_a_moved_digest_resets_serving_and_pins_the_new_digest() -> None:
    change = decide("image", view(image="sha256:a"), "sha256:b")
    assert change.patch == {"status": {"serving": {"state": "", "resourceHash": ""},
                                       "revision": {"imageDigest": "sha256:b"}}}
    assert change.reason == "ImageChanged" and "r/app:v1" in change.message
    assert decide("image", view(image="sha256:b"), "sha256:b") is None


def test_image_types_write_even_when_no_digest_was_recorded_as_the_contract_says() -> None:
    assert decide("image", view(), "sha256:b").patch["status"]["revision"] == {"imageDigest": "sha256:b"}
    assert decide("source-image", view(), "sha256:b") is not None


def test_the_patch_carries_the_resource_version_it_was_decided_on() -> None:
    patch = decide("source", view(commit="old"), "new").patch
    assert with_precondition(patch, "12") == {"metadata": {"resourceVersion": "12"}, **patch}


BASE, HEAD = "a" * 40, "b" * 40


def screened(files: tuple[str, ...], uncertain: str = "", patterns: tuple[str, ...] = (".",)) -> Screened:
    change = decide("source", view(commit=BASE), HEAD)
    assert change is not None
    return screen(change, HEAD, path_filter(list(patterns), "a"), ChangedFiles(files, uncertain))


def test_paths_a_change_in_the_functions_folder_is_written_and_names_the_files_that_matched() -> None:
    result = screened(("a/main.go", "b/main.go"))
    assert result.change is not None and result.matched == ("a/main.go",)
    assert result.change.patch == decide("source", view(commit=BASE), HEAD).patch
    assert result.change.message.endswith("(a/main.go in paths)")


def test_paths_a_change_elsewhere_is_not_written_and_says_which_files_changed() -> None:
    result = screened(("b/main.go", "README.md"))
    assert result.change is None and result.matched == ()
    assert result.skipped == (f'source moved to {HEAD}, but no changed file is in paths ["."]: '
                              "not rebuilt (changed: b/main.go, README.md)")


def test_paths_an_uncertain_comparison_rebuilds_and_says_why() -> None:
    result = screened(("b/main.go",), uncertain="history was rewritten")
    assert result.change is not None
    assert result.change.message.endswith(", although paths is set, because history was rewritten")


def test_paths_a_long_list_of_files_is_shown_in_part() -> None:
    files = tuple(f"a/{n}.go" for n in range(25))
    message = screened(files).change.message
    assert "a/9.go and 15 more in paths" in message and "a/10.go" not in message

import copy
from collections import Counter

import pytest

from revision_controller.function import FunctionView, view_of
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.planning import Plan, plan_function
from revision_controller.targets import ImageTarget, SecretRef


def function(params: str | None = None, switch: str | None = "enable", spec: dict | None = None,
             **src: object) -> FunctionView:
    annotations = {}
    if switch is not None:
        annotations[SWITCH_ANNOTATION] = switch
    if params is not None:
        annotations[PARAMS_ANNOTATION] = params
    src_repo = {"url": "https://github.com/o/r.git", "revision": "main", **src}
    fields = {"build": {"srcRepo": src_repo}, "serving": {}, "image": "ghcr.io/o/app:v1"}
    return view_of({"metadata": {"namespace": "ns", "name": "fn", "annotations": annotations},
                    "spec": {**fields, **(spec or {})}})


def test_an_enabled_function_subscribes_to_its_branch() -> None:
    plan = plan_function(function("polling-interval: 1m", sourceSubPath="fn/a"), 5)
    assert plan.notice is None
    sub = plan.subscription
    assert sub.interval == 60 and sub.type == "source" and sub.sub_path == "fn/a"
    assert (sub.target.source.repo_type, sub.target.source.repository) == ("github", "o/r")
    assert sub.target.branch == "main" and sub.target.credentials is None


def test_credentials_are_read_from_the_functions_namespace() -> None:
    plan = plan_function(function(credentials={"name": "git-token"}), 5)
    assert plan.subscription.target.credentials == SecretRef("ns", "git-token")


def test_an_empty_revision_means_the_default_branch() -> None:
    assert plan_function(function(revision=""), 5).subscription.target.branch == ""


@pytest.mark.parametrize("switch", [None, "disable", "Enable", "true"])
def test_anything_but_enable_is_off_and_says_nothing(switch: str | None) -> None:
    assert plan_function(function(switch=switch), 5) == Plan()


@pytest.mark.parametrize("revision", ["1a2b3c4", "0123456789abcdef0123456789abcdef01234567", "DEADBEEF"])
def test_a_commit_sha_revision_cannot_move(revision: str) -> None:
    plan = plan_function(function(revision=revision), 5)
    assert plan.subscription is None
    assert plan.notice.reason == "NotWatched" and revision in plan.notice.message


def test_branch_names_that_are_not_shas_are_watched() -> None:
    for revision in ("release-1", "abc123", "v1.0.0", "0123456789abcdef0123456789abcdef012345678"):
        assert plan_function(function(revision=revision), 5).subscription, revision


def test_source_without_build_or_url_is_not_watched() -> None:
    no_build = view_of({"metadata": {"namespace": "ns", "name": "fn",
                                     "annotations": {SWITCH_ANNOTATION: "enable"}}, "spec": {}})
    assert "spec.build" in plan_function(no_build, 5).notice.message
    assert "srcRepo.url" in plan_function(function(url=""), 5).notice.message


@pytest.mark.parametrize("params, named", [
    ("polling-interval: 5", "polling-interval '5'"),
    ("repo-type: svn", "repo-type 'svn'"),
    ("{", "not valid YAML"),
])
def test_bad_parameters_are_a_warning_naming_the_value(params: str, named: str) -> None:
    plan = plan_function(function(params), 5)
    assert plan.subscription is None
    assert (plan.notice.type, plan.notice.reason) == ("Warning", "InvalidParameters")
    assert named in plan.notice.message


def test_a_url_the_provider_cannot_read_is_a_warning() -> None:
    plan = plan_function(function("repo-type: git", url="git@example.com:o/r.git"), 5)
    assert plan.subscription is None and plan.notice.reason == "InvalidParameters"


def test_unknown_keys_warn_but_the_function_is_still_watched() -> None:
    plan = plan_function(function("pollingInterval: 1m"), 5)
    assert plan.subscription is not None
    assert plan.notice.reason == "UnknownParameters" and "pollingInterval" in plan.notice.message


def test_url_spellings_of_one_repository_share_one_target() -> None:
    targets = {plan_function(function(url=url), 5).subscription.target
               for url in ("https://github.com/o/r", "https://github.com/o/r.git", "git@github.com:o/r.git")}
    assert len(targets) == 1


def test_the_samples_that_build_from_one_branch_share_one_target(samples: dict[str, dict]) -> None:
    targets: Counter = Counter()
    spellings: Counter = Counter()
    for obj in samples.values():
        enabled = copy.deepcopy(obj)
        enabled.setdefault("metadata", {})["annotations"] = {SWITCH_ANNOTATION: "enable"}
        enabled["metadata"].setdefault("namespace", "default")
        plan = plan_function(view_of(enabled), 5)
        if plan.subscription:
            targets[plan.subscription.target] += 1
            if plan.subscription.target.source.repository == "OpenFunction/samples":
                spellings[enabled["spec"]["build"]["srcRepo"]["url"]] += 1
    (shared, count), = targets.most_common(1)
    assert (shared.source.repository, shared.branch) == ("OpenFunction/samples", "main")
    # The contract's 22 spell the URL alike; a 23rd writes it without ".git" and is the same branch.
    assert spellings == {"https://github.com/OpenFunction/samples.git": 22,
                         "https://github.com/OpenFunction/samples": 1}
    assert count == 23


def test_type_image_subscribes_to_the_served_image_with_its_credentials() -> None:
    plan = plan_function(function("type: image\ninsecure-registry: true",
                                  spec={"image": "localhost:5000/app:v2", "imageCredentials": {"name": "push"}}), 5)
    target = plan.subscription.target
    assert isinstance(target, ImageTarget) and plan.subscription.type == "image"
    assert (target.reference.registry, target.reference.repository, target.reference.tag) == \
        ("localhost:5000", "app", "v2")
    assert target.insecure and target.credentials == SecretRef("ns", "push")


def test_type_source_image_subscribes_to_the_bundle_image() -> None:
    src = {"bundleContainer": {"image": "ghcr.io/o/src:v1"}}
    plan = plan_function(function("type: source-image", **src), 5)
    assert plan.subscription.target.reference.repository == "o/src"
    assert plan.subscription.target.insecure is False


@pytest.mark.parametrize("params, spec, src, said", [
    ("type: image", {"serving": None}, {}, "spec.serving"),
    ("type: image", {"image": "ghcr.io/o/app@sha256:" + "a" * 64}, {}, "pinned by digest"),
    ("type: image", {"image": ""}, {}, "spec.image"),
    ("type: source-image", {}, {}, "bundleContainer"),
    ("type: source-image", {}, {"bundleContainer": {"image": "o/src@sha256:" + "b" * 64}}, "pinned by digest"),
])
def test_image_types_that_cannot_move_say_why(params: str, spec: dict, src: dict, said: str) -> None:
    plan = plan_function(function(params, spec=spec, **src), 5)
    assert plan.subscription is None and plan.notice.reason == "NotWatched"
    assert said in plan.notice.message


def test_a_bad_image_reference_is_a_warning() -> None:
    plan = plan_function(function("type: image", spec={"image": "Not A Reference"}), 5)
    assert plan.subscription is None and plan.notice.reason == "InvalidParameters"
    assert "spec.image" in plan.notice.message


def test_one_image_in_two_types_is_one_target() -> None:
    served = plan_function(function("type: image", spec={"image": "ghcr.io/o/x:v1"}), 5).subscription
    bundled = plan_function(function("type: source-image",
                                     bundleContainer={"image": "ghcr.io/o/x:v1"}), 5).subscription
    assert served.target == bundled.target and (served.type, bundled.type) == ("image", "source-image")


def test_paths_are_read_against_the_functions_sub_path() -> None:
    plan = plan_function(function('paths: [".", "/go.mod"]', sourceSubPath="functions/a"), 5)
    paths = plan.subscription.paths
    assert plan.notice is None and paths.patterns == (".", "/go.mod")
    assert paths.matching(["functions/a/main.go", "go.mod", "functions/b/main.go"]) == [
        "functions/a/main.go", "go.mod"]


def test_without_paths_any_commit_rebuilds() -> None:
    assert plan_function(function(sourceSubPath="functions/a"), 5).subscription.paths is None


def test_invalid_paths_are_invalid_parameters_and_the_function_is_not_watched() -> None:
    plan = plan_function(function('paths: ["../../elsewhere"]', sourceSubPath="a"), 5)
    assert plan.subscription is None
    assert plan.notice.reason == "InvalidParameters" and "leaves the repository" in plan.notice.message


def test_paths_on_an_image_function_are_ignored_and_said_so() -> None:
    plan = plan_function(function('type: image\npaths: ["."]'), 5)
    assert isinstance(plan.subscription.target, ImageTarget) and plan.subscription.paths is None
    assert plan.notice.reason == "UnknownParameters" and "paths is ignored for type image" in plan.notice.message

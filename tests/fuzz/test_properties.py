"""Every input gives a value or the project's own error, never another exception, never a hang.

The project's own errors, each with a message for the Function's owner:
`InvalidParameters` (the params annotation), `ValueError` from `parse_duration` (Go's
`time.ParseDuration` refuses the text; `DurationTooLong` past its range), `InvalidSource`
(a repository URL, a base-url, an image reference, a docker config), `CredentialsError` (a
Secret). Planning, views of API objects and the status patch decision have none: they
always give a value."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from providers import InvalidSource, endpoint, open_provider, parse_reference, parse_source
from revision_controller.credentials import CredentialsError, git_token, registry_auth_in, secret_data
from revision_controller.decision import decide, with_precondition
from revision_controller.duration import MAX_SECONDS, format_duration, parse_duration
from revision_controller.function import view_of
from revision_controller.params import AUTH_TYPES, REPO_TYPES, InvalidParameters, Params, parse_params
from revision_controller.planning import plan_function
from revision_controller.targets import GitTarget, ImageTarget, SecretRef
from tests.fuzz import strategies as s
from tests.fuzz.tally import counted

# Inputs run to megabytes; a message quotes at most a few short values.
MESSAGE_LIMIT = 5_000
REF = SecretRef("ns", "creds")


def readable(error: Exception) -> None:
    """A refusal a user can act on: some words, not a wall of the input."""
    message = str(error)
    assert 10 < len(message) < MESSAGE_LIMIT, message[:200]


@given(s.params_texts, st.sampled_from([5.0, 0.5, 3600.0]))
@example("polling-interval: !!int 1s", 5.0)
@example("polling-interval: " + s.nested(3_000), 5.0)
@example("repo-type: git\npolling-interval: 99999999999999999999h", 5.0)
@example("polling-interval: 1" + "0" * 5_000, 5.0)
@example("polling-interval: " + "9" * 8_000, 5.0)  # once cubic backtracking in the duration's regex: a hang
@example("0: !!float", 5.0)  # once an IndexError out of PyYAML
@counted("params annotation", InvalidParameters)
def test_params(text: str | None, default: float) -> None:
    try:
        params = parse_params(text, default)
    except InvalidParameters as error:
        readable(error)
        raise
    assert isinstance(params, Params)
    assert 0 < params.polling_interval <= MAX_SECONDS
    assert params.repo_type in REPO_TYPES and params.auth_type in (*AUTH_TYPES, "")


@given(s.durations)
@example("\u0661s")
@example("9" * 400 + "h")
@example("9" * 8_000)  # once cubic backtracking: minutes
@counted("Go durations", ValueError)
def test_durations(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError as error:
        assert str(error).startswith("invalid duration"), error
        raise
    assert math.isfinite(seconds) and abs(seconds) <= MAX_SECONDS
    assert format_duration(abs(seconds))


@given(st.sampled_from([*REPO_TYPES, "bitbucket", ""]), s.repository_urls(), s.base_urls, s.some_text,
       st.sampled_from([*AUTH_TYPES, ""]))
@example("git", "http://127.0.0.1:1 2/x", "", "", "")
@example("github", "https://github.com/o/r", "http://h:1 2/api/v3", "", "")
@example("git", "https://[fe80::1%25/a/b", "", "", "")
@example("gitlab", "https://github.com/0/0", "https://[::1]:3000/0", "", "")  # once an IPv6 host lost its brackets
@example("github", "a" * 1_000_000, "", "", "")
@example("gitlab", "https://github.com/0", "", "0000\x08" + "\U00018cd6" * 900, "")
@counted("repository URLs", InvalidSource)
def test_repository_urls(repo_type: str, url: str, base_url: str, project_id: str, auth_type: str) -> None:
    try:
        source = parse_source(repo_type, url, base_url=base_url, project_id=project_id, auth_type=auth_type)
    except InvalidSource as error:
        readable(error)
        raise
    assert GitTarget(source, "main").describe()
    for token in (None, "token"):  # what a poll does before its first request
        assert endpoint(source, token) is not None
        open_provider(source, token).close()


@given(s.image_references())
@example("localhost:5000/app:v1")
@example("[::1]:5000/app@sha256:" + "a" * 64)
@counted("image references", InvalidSource)
def test_image_references(text: str) -> None:
    try:
        reference = parse_reference(text)
    except InvalidSource as error:
        readable(error)
        raise
    assert reference.registry and reference.repository and ImageTarget(reference).describe()


@given(s.functions(), st.sampled_from(["source", "source-image", "image"]), s.some_text)
@example({"metadata": {"annotations": ["enable"]}, "status": {"sources": 5}}, "source", "a" * 40)
@example({"status": {"sources": "default"}, "spec": {"build": "yes"}}, "image", "sha256:1")
@example({"metadata": {"annotations": {"openfunction.io/revision-controller-params": ["x"]}}}, "source", "")
@counted("Function objects and status")
def test_function_objects(obj: object, type_: str, observed: str) -> None:
    view = view_of(obj)
    plan = plan_function(view, 5.0)
    assert plan.subscription is not None or plan.notice is not None or view.switch != "enable"
    if plan.notice:
        assert len(plan.notice.message) < MESSAGE_LIMIT
    change = decide(type_, view, observed)
    if change is not None:
        assert with_precondition(change.patch, view.resource_version)["metadata"]
        assert change.reason.endswith("Changed")


@given(s.secret_data, s.secret_types, st.sampled_from(["r.example:5000", "registry-1.docker.io", "127.0.0.1:1"]))
@example({".dockerconfigjson": s.b64(('{"auths": ' + s.nested(100_000, '') + "}").encode())},
         "kubernetes.io/dockerconfigjson", "r.example:5000")
@example({".dockerconfigjson": s.b64(b'{"auths": {"r.example:5000": {"auth": ' + s.nested(990, "").encode() +
                                     b"}}}")}, "kubernetes.io/dockerconfigjson", "r.example:5000")
@counted("Secrets: docker configs", CredentialsError)
def test_docker_config_secrets(data: dict[str, str], secret_type: str, registry: str) -> None:
    try:
        auth = registry_auth_in(REF, secret_type, secret_data(REF, data), registry)
    except CredentialsError as error:
        readable(error)
        assert "Secret ns/creds" in str(error)
        raise
    assert auth is None or (isinstance(auth.username, str) and auth.username)


@given(s.secret_data)
@example({"password": s.b64(b"tok\nen")})
@example({"password": s.b64(b"t" * 1_000_000)})
@example({"password": "\x80"})  # once a ValueError out of base64: not ASCII
@counted("Secrets: git tokens", CredentialsError)
def test_git_token_secrets(data: dict[str, str]) -> None:
    try:
        token = git_token(REF, secret_data(REF, data))
    except CredentialsError as error:
        readable(error)
        assert "Secret ns/creds" in str(error)
        raise
    assert token.isascii() and token.isprintable() and " " not in token

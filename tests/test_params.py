import pytest

from revision_controller.params import InvalidParameters, Params, parse_params


def test_absent_or_empty_params_are_the_defaults() -> None:
    assert parse_params(None) == Params()
    assert parse_params("") == Params()
    assert parse_params("   \n") == Params()
    assert parse_params("~") == Params()


def test_every_contract_parameter_is_read() -> None:
    params = parse_params(
        "type: source\npolling-interval: 1h30m\nrepo-type: gitlab\nbase-url: https://gl.example/\n"
        "auth-type: OAuthToken\nproject-id: 42\ninsecure-registry: true\n")
    assert params == Params(type="source", polling_interval=5400, repo_type="gitlab",
                            base_url="https://gl.example/", auth_type="OAuthToken", project_id="42",
                            insecure_registry=True)


def test_default_interval_comes_from_the_daemon_flag() -> None:
    assert parse_params("type: source", default_interval=60).polling_interval == 60
    assert parse_params("polling-interval: 500ms", default_interval=60).polling_interval == 0.5


def test_yaml_scalars_are_taken_as_text_like_the_original() -> None:
    assert parse_params("project-id: 123").project_id == "123"
    assert parse_params("insecure-registry: 'false'").insecure_registry is False
    assert parse_params("base-url:").base_url == ""


def test_unknown_keys_are_kept_for_a_warning_but_do_not_stop_watching() -> None:
    params = parse_params("pollingInterval: 1m\ntype: source")
    assert params.unknown_keys == ("pollingInterval",)
    assert params.polling_interval == 5


@pytest.mark.parametrize("text, named", [
    ("type: [source", "not valid YAML"),
    ("- type: source", "mapping"),
    ("just a string", "mapping"),
    ("type: build", "type 'build'"),
    ("repo-type: bitbucket", "repo-type 'bitbucket'"),
    ("auth-type: Basic", "auth-type 'Basic'"),
    ("polling-interval: 5", "polling-interval '5'"),
    ("polling-interval: 1d", "polling-interval '1d'"),
    ("polling-interval: 0s", "greater than zero"),
    ("polling-interval: -1m", "greater than zero"),
    ("insecure-registry: maybe", "insecure-registry 'maybe'"),
    ("type: {a: b}", "single value"),
])
def test_bad_values_are_named_in_the_error(text: str, named: str) -> None:
    with pytest.raises(InvalidParameters) as raised:
        parse_params(text)
    assert named in str(raised.value)


@pytest.mark.parametrize("text", [
    "polling-interval: " + "[" * 3000 + "1s" + "]" * 3000,
    "polling-interval: !!int 1s", "polling-interval: !!bool 1s", "polling-interval: !!timestamp x",
    "polling-interval: !!python/name:os.system ''", "a: " + "x" * 9000,
    "polling-interval: 99999999999999999999h",
    "polling-interval: {a: {b: [1, 2]}}",
])
def test_hostile_parameters_are_invalid_parameters_and_nothing_else(text: str) -> None:
    with pytest.raises(InvalidParameters) as caught:
        parse_params(text)
    assert len(str(caught.value)) < 500  # the message names the problem; it does not echo the input


def test_the_longest_go_duration_is_taken_and_one_past_it_is_not() -> None:
    assert parse_params("polling-interval: 2562047h").polling_interval == 2562047 * 3600
    with pytest.raises(InvalidParameters, match="292 years"):
        parse_params("polling-interval: 2562048h")


@pytest.mark.parametrize("text, paths", [
    ('paths: [".", "/go.mod", "/libs/common/**"]', (".", "/go.mod", "/libs/common/**")),
    ("paths: ., /go.mod", (".", "/go.mod")),
    ("paths:\n  - .\n  - /go.mod", (".", "/go.mod")),
    ("polling-interval: 1m", None),
])
def test_paths_are_a_list_or_one_comma_separated_string_and_absent_by_default(text: str, paths: object) -> None:
    assert parse_params(text).paths == paths
    assert "paths" not in parse_params(text).unknown_keys


@pytest.mark.parametrize("text, message", [("paths: []", "paths is empty"), ('paths: ""', "paths is empty"),
                                           ('paths: ["a,b"]', "with a comma"), ("paths: [[a]]", "single value")])
def test_paths_that_name_nothing_are_invalid_parameters(text: str, message: str) -> None:
    with pytest.raises(InvalidParameters, match=message):
        parse_params(text)

"""`revision-controller check`: the report of one Function (pure), its inputs, output and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from providers import ChangedFiles
from revision_controller.check import (
    OFFLINE,
    Assessment,
    Observation,
    Report,
    as_json,
    as_text,
    assess,
    exit_code,
    needs_comparison,
    report,
)
from revision_controller.checking import CheckOptions, run_check
from revision_controller.cli import parser
from revision_controller.decision import decide
from revision_controller.function import view_of
from revision_controller.manifests import MAX_INPUT_BYTES
from revision_controller.params import PARAMS_ANNOTATION, SWITCH_ANNOTATION
from revision_controller.testing.gitserver import GitServer
from tests.canary import leaks, secret

OLD, NEW = "1" * 40, "2" * 40
KEYS = ["function", "source", "watched", "reason", "message", "parameters", "target", "observed", "recorded",
        "decision", "patch", "changed", "matched", "uncertain", "error", "exit"]


def manifest(params: str | None = None, switch: str | None = "enable", commit: str = OLD,
             url: str = "https://github.com/o/r.git", **src: Any) -> dict[str, Any]:
    annotations = {key: value for key, value in ((SWITCH_ANNOTATION, switch), (PARAMS_ANNOTATION, params))
                   if value is not None}
    return {"apiVersion": "core.openfunction.io/v1beta2", "kind": "Function",
            "metadata": {"namespace": "ns", "name": "fn", "annotations": annotations},
            "spec": {"image": "ghcr.io/o/app:v1", "serving": {},
                     "build": {"srcRepo": {"url": url, "revision": "main", "sourceSubPath": "fn/a", **src}}},
            "status": {"sources": [{"name": "default", "git": {"commitSha": commit}}] if commit else []}}


def assessed(params: str | None = None, switch: str | None = "enable", **fields: Any) -> Assessment:
    return assess(view_of(manifest(params, switch, **fields)), "fn.yaml", 5.0)


def test_a_watched_function_reports_its_parameters_with_defaults_and_its_target() -> None:
    done = report(assessed("polling-interval: 1m"))
    assert (done.function, done.source, done.watched, done.reason, done.exit) == ("ns/fn", "fn.yaml", True, "", 0)
    assert done.parameters == {"type": "source", "polling-interval": "1m", "repo-type": "github", "base-url": "",
                               "auth-type": "", "project-id": "", "insecure-registry": False, "paths": None,
                               "unknown": []}
    assert done.target == {"describe": "github https://api.github.com o/r@main", "repo_type": "github",
                           "server": "https://api.github.com", "repository": "o/r", "branch": "main",
                           "sub_path": "fn/a", "credentials": None}
    assert done.recorded == OLD and done.decision == OFFLINE and done.patch is None


def test_unknown_keys_are_reported_on_a_watched_function() -> None:
    done = report(assessed("pollingInterval: 1m"))
    assert done.watched and done.reason == "UnknownParameters" and "pollingInterval" in done.message
    assert done.parameters["unknown"] == ["pollingInterval"] and done.exit == 0


@pytest.mark.parametrize("switch, said", [(None, "is absent"), ("disable", "is 'disable'")])
def test_a_function_not_enabled_says_why_and_what_it_would_watch(switch: str | None, said: str) -> None:
    done = report(assessed(switch=switch, credentials={"name": "git"}))
    assert not done.watched and done.reason == "NotEnabled" and done.exit == 0
    assert f"{SWITCH_ANNOTATION} {said}, not 'enable'" in done.message
    assert done.target["repository"] == "o/r" and done.target["credentials"] == "ns/git"
    assert done.decision == "nothing to do: not watched"


def test_an_unwatchable_function_says_why_and_has_no_target() -> None:
    done = report(assessed(revision="0123abc"))
    assert (done.watched, done.reason, done.target) == (False, "NotWatched", None)
    assert "commit SHA" in done.message and done.exit == 0
    off = report(assessed(switch=None, revision="0123abc"))
    assert "enabled, it would not be watched either" in off.message and "commit SHA" in off.message


@pytest.mark.parametrize("switch", ["enable", None])
def test_invalid_parameters_exit_2_whether_or_not_enabled(switch: str | None) -> None:
    done = report(assessed("polling-interval: soon", switch=switch))
    assert (done.watched, done.reason, done.parameters, done.exit) == (False, "InvalidParameters", None, 2)
    assert "polling-interval 'soon'" in done.message


def test_the_patch_is_the_daemons_change_and_an_unmoved_or_unbuilt_source_is_nothing() -> None:
    moved = report(assessed(), Observation(NEW))
    assert moved.patch == decide("source", assessed().view, NEW).patch
    assert moved.patch == {"status": {"build": None, "sources": [{"name": "default", "git": {"commitSha": NEW}}]}}
    assert moved.observed == NEW and moved.recorded == OLD
    assert moved.decision.startswith("would patch, with Event SourceChanged: source changed from")
    assert report(assessed(), Observation(OLD)).decision == "nothing to do: the head is the recorded commit"
    unbuilt = report(assessed(commit=""), Observation(NEW))
    assert unbuilt.patch is None and "never built" in unbuilt.decision


def test_paths_screen_the_change_as_the_daemon_does() -> None:
    with_paths = assessed("paths: ['.']")
    assert needs_comparison(with_paths, NEW) and not needs_comparison(with_paths, OLD)
    assert not needs_comparison(assessed(), NEW)
    inside = report(with_paths, Observation(NEW, ChangedFiles(("fn/a/main.go", "docs/x.md"))))
    assert inside.patch is not None and inside.matched == ["fn/a/main.go"]
    assert inside.changed == ["fn/a/main.go", "docs/x.md"]
    outside = report(with_paths, Observation(NEW, ChangedFiles(("docs/x.md",))))
    assert outside.patch is None and outside.matched == [] and outside.exit == 0
    assert outside.decision.startswith("nothing to do: source moved to") and "docs/x.md" in outside.decision
    unsure = report(with_paths, Observation(NEW, ChangedFiles(uncertain="history was rewritten")))
    assert unsure.patch is not None and unsure.uncertain == "history was rewritten"
    assert "history was rewritten" in unsure.decision


@pytest.mark.parametrize("params, spec, status, expected", [
    ("type: image", {}, {"revision": {"imageDigest": "sha256:a"}},
     {"status": {"serving": {"state": "", "resourceHash": ""}, "revision": {"imageDigest": "sha256:b"}}}),
    ("type: source-image", {"build": {"srcRepo": {"bundleContainer": {"image": "o/src:v1"}}}},
     {"sources": [{"name": "default", "bundle": {"digest": "sha256:a"}}]},
     {"status": {"build": None, "sources": [{"name": "default", "bundle": {"digest": "sha256:b"}}]}}),
])
def test_image_types_compare_digests(params: str, spec: dict, status: dict, expected: dict) -> None:
    obj = manifest(params)
    obj["spec"].update(spec)
    obj["status"] = status
    assessment = assess(view_of(obj), "fn.yaml", 5.0)
    assert report(assessment, Observation("sha256:b")).patch == expected
    same = report(assessment, Observation("sha256:a"))
    assert (same.patch, same.recorded) == (None, "sha256:a")
    assert same.decision == "nothing to do: the digest is the recorded one"
    assert "registry" in same.target and not needs_comparison(assessment, "sha256:b")


def test_a_target_that_could_not_be_read_exits_1_and_invalid_parameters_win() -> None:
    failed = report(assessed(), error="no such branch")
    assert (failed.error, failed.exit, failed.patch) == ("no such branch", 1, None)
    invalid = report(assessed("type: nope"))
    assert exit_code([]) == 0 and exit_code([report(assessed())]) == 0
    assert exit_code([report(assessed()), failed]) == 1 and exit_code([failed, invalid]) == 2


def test_json_has_stable_keys_and_text_names_each_part() -> None:
    reports = [report(assessed("paths: [src]"), Observation(NEW, ChangedFiles(("fn/a/src/x.go",)))),
               report(assessed(switch=None))]
    loaded = json.loads(as_json(reports))
    assert [list(item) for item in loaded] == [KEYS, KEYS] and list(Report.__dataclass_fields__) == KEYS
    text = as_text(reports[0])
    assert text[0] == "ns/fn (fn.yaml)" and text[1] == "  watched: yes"
    assert text[2].startswith("  parameters: type=source polling-interval=5s repo-type=github base-url= ")
    assert text[2].endswith(" paths=src")
    assert text[3] == "  target: github https://api.github.com o/r@main (sub path fn/a)"
    assert text[4] == f"  head: {NEW} (recorded: {OLD})"
    assert "  paths: changed fn/a/src/x.go; matched fn/a/src/x.go" in text
    assert json.loads(text[text.index("  paths: changed fn/a/src/x.go; matched fn/a/src/x.go") + 1]
                      .removeprefix("  would patch: ")) == reports[0].patch
    off = as_text(reports[1])
    assert off[1].startswith("  watched: no (NotEnabled): the annotation") and "paths=(any change)" in off[2]
    assert off[3].startswith("  target once enabled: github")


def check(*inputs: str, stdin: bytes = b"", **options: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_check(CheckOptions(inputs, **options), io.BytesIO(stdin), out, err)
    return code, out.getvalue(), err.getvalue()


def test_documents_that_are_not_functions_are_skipped_and_said_so(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all([{"kind": "Deployment"}, manifest(switch=None), ["a list"]]))
    code, out, _ = check(str(path), offline=True)
    assert code == 0
    assert f"skipped {path}#1: kind 'Deployment', not Function" in out
    assert f"skipped {path}#3: a YAML list, not a Kubernetes object" in out
    assert f"ns/fn ({path}#2)" in out
    code, out, err = check(str(path), offline=True, output="json")
    assert code == 0 and len(json.loads(out)) == 1 and "skipped" in err


def test_stdin_and_a_function_without_namespace_in_default() -> None:
    obj = manifest(switch=None)
    del obj["metadata"]["namespace"]
    code, out, _ = check("-", stdin=yaml.safe_dump(obj).encode(), offline=True, output="json")
    assert code == 0 and json.loads(out)[0]["function"] == "default/fn" and json.loads(out)[0]["source"] == "stdin"


@pytest.mark.parametrize("content, said", [
    (None, "cannot be read: No such file or directory"),
    (b"a: [1, 2\n", "not YAML at line 2, column 1"),
    (b"kind: Deployment\n", "no Function in the input"),
    (b"", "no Function in the input"),
    (b"\xff\xfe\x00", "not YAML"),
    (b"[" * 100_000, "not YAML"),
])
def test_inputs_that_hold_no_function_exit_2_with_a_clear_message(tmp_path: Path, content: bytes | None,
                                                                    said: str) -> None:
    path = tmp_path / "in.yaml"
    if content is not None:
        path.write_bytes(content)
    code, out, err = check(str(path), offline=True)
    assert (code, out) == (2, "") and said in err and "Traceback" not in err


def test_an_input_past_the_bound_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_INPUT_BYTES + 1))
    code, _, err = check(str(path), offline=True)
    assert code == 2 and "larger than 10 MiB" in err


def test_namespace_slash_name_needs_a_kubeconfig() -> None:
    code, _, err = check("ns/fn", offline=True)
    assert code == 2 and "give --kubeconfig" in err


@pytest.mark.parametrize("content", [b"", b"two words", b"x" * 20_000])
def test_a_token_file_holds_one_token(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "token").write_bytes(content)
    (tmp_path / "fn.yaml").write_text(yaml.safe_dump(manifest()))
    code, _, err = check(str(tmp_path / "fn.yaml"), token_file=str(tmp_path / "token"))
    assert code == 2 and "--token-file" in err and "words" not in err


def test_a_refused_token_is_an_unreadable_target_and_never_printed(tmp_path: Path) -> None:
    token = secret("check-token")
    (tmp_path / "token").write_text(token + "\n")
    with GitServer(password="another-password") as server:
        repo = server.create_repository("app")
        (tmp_path / "fn.yaml").write_text(yaml.safe_dump(manifest("repo-type: git", url=repo.url)))
        for output in ("text", "json"):
            code, out, err = check(str(tmp_path / "fn.yaml"), token_file=str(tmp_path / "token"), output=output)
            assert code == 1 and not leaks(out + err)
            assert "error:" in out or json.loads(out)[0]["error"]
    assert any(leaks(request.authorization or "") for request in server.requests)  # it was sent, to the server


def test_credentials_written_into_a_url_are_never_printed() -> None:
    done = report(assessed("repo-type: git", url=f"https://me:{secret('url-password')}@example.com/r.git"))
    assert done.watched and done.target["repository"] == "https://***@example.com/r.git"
    assert not leaks(as_json([done])) and not leaks("\n".join(as_text(done)))


def test_control_characters_a_function_holds_are_escaped_in_text() -> None:
    obj = manifest(switch="\x1b[2Jon")
    obj["metadata"]["name"] = "fn\x1b]0;title\x07"
    text = "\n".join(as_text(report(assess(view_of(obj), "fn.yaml", 5.0))))
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;title\\x07" in text


def test_the_cli_parses_check_arguments() -> None:
    args = parser().parse_args(["check", "a.yaml", "-", "--offline", "--output", "json",
                                "--default-polling-interval", "1m"])
    assert (args.inputs, args.offline, args.output, args.default_polling_interval) == (["a.yaml", "-"], True,
                                                                                        "json", 60.0)
    assert args.function_version == "v1beta2" and args.token_file == "" and args.kubeconfig is None
    for wrong in (["check"], ["check", "a.yaml", "--output", "xml"]):
        with pytest.raises(SystemExit) as exited:
            parser().parse_args(wrong)
        assert exited.value.code == 2

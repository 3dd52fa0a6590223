"""`revision-controller check` as its own process, with its defaults: OpenFunction's samples offline,
a real git server online, and a Function read from the API stand-in, which it never writes to."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from revision_controller.params import SWITCH_ANNOTATION
from revision_controller.testing import ApiServer
from revision_controller.testing.gitserver import GitServer
from tests.canary import leaks, secret
from tests.conftest import SAMPLES
from tests.e2e.conftest import NAMESPACE, free_port, function_manifest, secret_manifest

CHECK_TOKEN = "revision-controller-check-token"
GITHUB_URL = re.compile(r"^https://github\.com/([^/]+/[^/]+?)(?:\.git)?$")


def check(*args: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "revision_controller.cli", "check", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def check_json(*args: str) -> tuple[int, list[dict[str, Any]]]:
    code, out, err = check("--output", "json", *args)
    assert out, err
    return code, json.loads(out)


def sample_functions() -> list[tuple[str, dict[str, Any]]]:
    """The samples' Functions with the source `check` names them by, in the order it reads them."""
    if not SAMPLES.is_dir():
        pytest.skip(f"OpenFunction samples not found at {SAMPLES}: these tests need ../shared beside the "
                    "checkout, as in CI")
    found = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        found += [(f"{path}#{number}" if len(documents) > 1 else str(path), doc)
                  for number, doc in enumerate(documents, start=1) if doc.get("kind") == "Function"]
    return found


def expected_target(sample: dict[str, Any]) -> dict[str, Any] | None:
    """The target a sample names: its GitHub owner/repo, revision and sub path."""
    src = ((sample["spec"].get("build") or {}).get("srcRepo")) or {}
    if not src:
        return None
    repository = GITHUB_URL.match(src["url"]).group(1)
    return {"describe": f"github https://api.github.com {repository}@{src['revision']}", "repo_type": "github",
            "server": "https://api.github.com", "repository": repository, "branch": src["revision"],
            "sub_path": (src.get("sourceSubPath") or "").strip(), "credentials": None}


def test_the_samples_are_not_enabled_and_say_what_they_would_watch() -> None:
    samples = sample_functions()
    code, reports = check_json("--offline", *sorted(str(path) for path in SAMPLES.glob("*.yaml")))
    assert code == 0 and len(reports) == len(samples) == 28
    for (source, sample), found in zip(samples, reports, strict=True):
        assert found["source"] == source
        assert found["function"] == f"default/{sample['metadata']['name']}"
        assert (found["watched"], found["reason"], found["exit"]) == (False, "NotEnabled", 0)
        assert found["message"].startswith(f"not watched: the annotation {SWITCH_ANNOTATION} is absent")
        assert found["target"] == expected_target(sample), source
        assert found["parameters"]["type"] == "source" and found["parameters"]["polling-interval"] == "5s"
        if found["target"] is None:
            assert "would not be watched either: type source needs spec.build" in found["message"]


def test_the_samples_once_enabled_subscribe_to_their_targets(tmp_path: Path) -> None:
    samples = sample_functions()
    enabled = []
    for _, sample in samples:
        copied = copy.deepcopy(sample)
        copied["metadata"]["annotations"] = {**(copied["metadata"].get("annotations") or {}),
                                             SWITCH_ANNOTATION: "enable"}
        enabled.append(copied)
    path = tmp_path / "enabled.yaml"
    path.write_text(yaml.safe_dump_all(enabled))
    code, reports = check_json("--offline", str(path))
    assert code == 0 and len(reports) == 28
    for (source, sample), found in zip(samples, reports, strict=True):
        target = expected_target(sample)
        assert found["target"] == target, source
        if target is None:
            assert (found["watched"], found["reason"]) == (False, "NotWatched")
            assert "type source needs spec.build" in found["message"]
        else:
            assert (found["watched"], found["reason"], found["decision"]) == (True, "", "not polled (--offline)")
    assert sum(found["watched"] for found in reports) == 24


def built_from(manifest: dict[str, Any], commit: str, name: str | None = None,
               params: str | None = None) -> dict[str, Any]:
    """A Function file's document, as it was last built from `commit`."""
    copied = copy.deepcopy(manifest)
    if name:
        copied["metadata"]["name"] = name
    if params:
        copied["metadata"]["annotations"]["openfunction.io/revision-controller-params"] = params
    copied["status"] = {"sources": [{"name": "default", "git": {"commitSha": commit}}]}
    return copied


def test_against_a_git_server_it_prints_the_daemons_patch_and_screens_paths(tmp_path: Path,
                                                                             gitserver: GitServer) -> None:
    repo = gitserver.create_repository("app", branch="main")
    first = repo.head("main")
    second = repo.commit("code", files={"functions/app/main.go": "package main // 2\n"})
    third = repo.commit("docs", files={"docs/readme.md": "more\n"})
    base = function_manifest("app", repo.url, "repo-type: git")
    path = tmp_path / "functions.yaml"
    path.write_text(yaml.safe_dump_all([
        built_from(base, first),
        built_from(base, second, "docs-only", "repo-type: git\npaths: ['.']"),
        built_from(base, first, "both", "repo-type: git\npaths: ['.']"),
        built_from(base, third, "current"),
        built_from(base, "0" * 40, "unknown-base", "repo-type: git\npaths: ['.']")]))
    code, (plain, docs_only, both, current, unknown_base) = check_json(str(path))
    assert code == 0
    # As the daemon: one read of the head for all five Functions, one comparison per recorded commit.
    assert sum(request.kind == "fetch" for request in gitserver.requests) == 3
    assert gitserver.ls_remote_count("app") <= 1 + 3
    assert unknown_base["patch"] is not None and unknown_base["uncertain"]
    assert f"although paths is set, because {unknown_base['uncertain']}" in unknown_base["decision"]
    patch = {"status": {"build": None, "sources": [{"name": "default", "git": {"commitSha": third}}]}}
    assert (plain["observed"], plain["recorded"], plain["patch"]) == (third, first, patch)
    assert plain["decision"].startswith("would patch, with Event SourceChanged: source changed from")
    assert plain["changed"] is None
    assert (docs_only["patch"], docs_only["changed"], docs_only["matched"]) == (None, ["docs/readme.md"], [])
    assert docs_only["decision"].startswith("nothing to do: source moved to")
    assert both["patch"] == patch and both["matched"] == ["functions/app/main.go"]
    assert sorted(both["changed"]) == ["docs/readme.md", "functions/app/main.go"]
    assert current["patch"] is None and current["decision"] == "nothing to do: the head is the recorded commit"
    code, out, _ = check(str(path))
    assert code == 0 and f"  would patch: {json.dumps(patch)}" in out.splitlines()
    assert "  paths: changed docs/readme.md; matched nothing" in out.splitlines()


def test_an_unreachable_server_exits_1_and_invalid_parameters_exit_2(tmp_path: Path) -> None:
    unreachable = function_manifest("gone", f"http://127.0.0.1:{free_port()}/gone.git", "repo-type: git")
    invalid = function_manifest("invalid", "https://github.com/o/r.git", "polling-interval: soon")
    (tmp_path / "gone.yaml").write_text(yaml.safe_dump(built_from(unreachable, "1" * 40)))
    (tmp_path / "invalid.yaml").write_text(yaml.safe_dump(invalid))
    code, (gone,) = check_json(str(tmp_path / "gone.yaml"))
    assert code == 1 and gone["error"] and gone["patch"] is None and gone["exit"] == 1
    code, out, _ = check(str(tmp_path / "invalid.yaml"))
    assert code == 2 and "watched: no (InvalidParameters): polling-interval 'soon'" in out
    code, reports = check_json(str(tmp_path / "gone.yaml"), str(tmp_path / "invalid.yaml"))
    assert code == 2 and [found["exit"] for found in reports] == [1, 2]


def test_from_a_cluster_it_reads_the_function_and_its_secret_and_writes_nothing(
        apiserver: ApiServer, tmp_path: Path) -> None:
    token = secret("check-git-token")
    with GitServer(password=token) as private:
        repo = private.create_repository("private", branch="main")
        first = repo.head("main")
        second = repo.commit("code", files={"functions/app/main.go": "package main // 2\n"})
        apiserver.create(secret_manifest("git-token", token))
        apiserver.create(built_from(function_manifest("app", repo.url, "repo-type: git", credentials="git-token"),
                                    first))
        kubeconfig = apiserver.write_kubeconfig(tmp_path / "check-kubeconfig", token=CHECK_TOKEN)
        code, out, err = check("--kubeconfig", str(kubeconfig), f"{NAMESPACE}/app", f"{NAMESPACE}/missing")
        assert code == 2 and "default/missing: no such Function in the cluster" in err and not out
        code, out, err = check("--kubeconfig", str(kubeconfig), "--output", "json", f"{NAMESPACE}/app")
    assert code == 0, err
    (found,) = json.loads(out)
    assert found["source"] == "cluster, core.openfunction.io/v1beta2"
    assert found["target"]["credentials"] == f"{NAMESPACE}/git-token"
    assert found["patch"] == {"status": {"build": None,
                                         "sources": [{"name": "default", "git": {"commitSha": second}}]}}
    assert not leaks(out + err)
    calls = [(request.method, request.path) for request in apiserver.requests if request.token == CHECK_TOKEN]
    assert {method for method, _ in calls} == {"GET"}, calls
    assert any(path.endswith("/secrets/git-token") for _, path in calls)
    stored = apiserver.get("core.openfunction.io/v1beta2", "Function", NAMESPACE, "app")
    assert stored["status"]["sources"][0]["git"]["commitSha"] == first

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from github import Auth, BadCredentialsException, Github, GithubException, RateLimitExceededException

from providers import github as github_provider
from providers.base import GitSource, NotFound, Unauthorized
from revision_controller.testing.forge import Forge
from revision_controller.testing.github import SECONDARY_MESSAGE, GitHubServer
from tests.testing.conftest import (
    assert_git_lists_public_and_private_refs,
    assert_provider_compares_commits,
    assert_provider_recovers_after_faults,
    ls_remote,
    renaming,
)

TOKEN = "gh-standin-token"
QUERY = ("query($o0: String!, $n0: String!, $q0: String!, $o1: String!, $n1: String!, $o2: String!, "
         "$n2: String!, $q2: String!) { rateLimit { limit remaining resetAt cost } "
         "r0: repository(owner: $o0, name: $n0) { ref(qualifiedName: $q0) { target { oid } } } "
         "r1: repository(owner: $o1, name: $n1) { defaultBranchRef { name target { oid } } } "
         "r2: repository(owner: $o2, name: $n2) { ref(qualifiedName: $q2) { target { oid } } } }")


def serve(forge: Forge, **options: Any) -> GitHubServer:
    server = GitHubServer(forge, **options)
    server.start()
    return server


@pytest.fixture
def server(forge: Forge) -> Iterator[GitHubServer]:
    srv = serve(forge)
    yield srv
    srv.stop()


def client(server: GitHubServer, token: str | None = TOKEN) -> Github:
    return Github(base_url=server.api_url, auth=Auth.Token(token) if token else None, timeout=5, retry=None)


def test_pygithub_reads_repository_commits_and_branch(forge: Forge, server: GitHubServer) -> None:
    repo = forge.create_repository("octo/hello", default_branch="trunk")
    first = repo.head()
    second = repo.commit("feature work", {"f.txt": "x"}, branch="release/1.x")
    forge.grant(TOKEN)

    remote = client(server).get_repo("octo/hello")

    assert (remote.id, remote.full_name, remote.default_branch) == (repo.id, "octo/hello", "trunk")
    assert remote.owner.login == "octo" and remote.private is False
    assert remote.clone_url == server.clone_url("octo/hello")
    assert [c.sha for c in remote.get_commits(sha="release/1.x")] == [second, first]
    assert remote.get_commits(sha="release/1.x").get_page(0)[0].sha == second
    assert remote.get_branch("release/1.x").commit.sha == second
    assert remote.get_commit("trunk").commit.message == "initial commit"


def test_names_are_matched_in_any_case_and_answered_canonically(forge: Forge, server: GitHubServer) -> None:
    forge.create_repository("Octo/Hello")

    assert client(server, None).get_repo("octo/HELLO").full_name == "Octo/Hello"


def test_sha_media_type_then_304_with_the_etag_costs_nothing_for_a_token(
        forge: Forge, server: GitHubServer) -> None:
    repo = forge.create_repository("octo/hello")
    forge.grant(TOKEN)
    requester = client(server).requester
    path, accept = "/repos/octo/hello/commits/main", {"Accept": "application/vnd.github.sha"}

    status, headers, body = requester.requestJson("GET", path, headers=accept)
    assert (status, body) == (200, repo.head())
    remaining = headers["x-ratelimit-remaining"]
    status, headers, body = requester.requestJson("GET", path, headers={**accept,
                                                                        "If-None-Match": headers["etag"]})

    assert (status, body) == (304, "")
    assert headers["x-ratelimit-remaining"] == remaining
    assert server.units_spent(TOKEN) == 1
    repo.commit("move")
    status, _, body = requester.requestJson("GET", path, headers={**accept, "If-None-Match": headers["etag"]})
    assert (status, body) == (200, repo.head())


def test_anonymous_304_is_charged(forge: Forge, server: GitHubServer) -> None:
    forge.create_repository("octo/hello")
    url = f"{server.api_url}/repos/octo/hello"
    first = httpx.get(url, timeout=5)

    second = httpx.get(url, headers={"If-None-Match": first.headers["ETag"]}, timeout=5)

    assert second.status_code == 304 and second.content == b""
    assert second.headers["X-RateLimit-Remaining"] == "58"
    assert second.headers["X-RateLimit-Limit"] == "60"
    assert server.units_spent(None) == 2 and [r.token for r in server.requests] == [None, None]


def test_private_repository_is_404_without_access_and_bad_token_is_401(forge: Forge,
                                                                      server: GitHubServer) -> None:
    forge.create_repository("octo/secret", private=True)
    forge.create_repository("octo/other", private=True)
    forge.grant(TOKEN, "octo/other")

    for token in (None, TOKEN):
        with pytest.raises(GithubException) as caught:
            client(server, token).get_repo("octo/secret")
        assert caught.value.status == 404 and caught.value.data["message"] == "Not Found"
    with pytest.raises(BadCredentialsException) as bad:
        client(server, "wrong").get_repo("octo/other")
    assert bad.value.data["message"] == "Bad credentials"
    assert client(server).get_repo("octo/other").private is True


def test_empty_repository_missing_commit_and_missing_branch(forge: Forge, server: GitHubServer) -> None:
    forge.create_repository("octo/empty", empty=True)
    forge.create_repository("octo/hello")
    api = server.api_url

    empty = httpx.get(f"{api}/repos/octo/empty/commits", params={"per_page": 1}, timeout=5)
    no_sha = httpx.get(f"{api}/repos/octo/hello/commits/nope", timeout=5)
    no_branch = httpx.get(f"{api}/repos/octo/hello/branches/nope", timeout=5)

    assert (empty.status_code, empty.json()["message"]) == (409, "Git Repository is empty.")
    assert (no_sha.status_code, no_sha.json()["message"]) == (422, "No commit found for SHA: nope")
    assert (no_branch.status_code, no_branch.json()["message"]) == (404, "Branch not found")


def test_budget_decrements_and_exhaustion_answers_like_github(forge: Forge) -> None:
    forge.create_repository("octo/hello")
    forge.grant(TOKEN)
    with GitHubServer(forge, limit=3) as server:
        remote = client(server).get_repo("octo/hello")
        remote.get_commits(sha="main").get_page(0)
        assert client(server).get_rate_limit().resources.core.remaining == 1

        remote.get_commits(sha="main").get_page(0)
        with pytest.raises(RateLimitExceededException) as caught:
            remote.get_commits(sha="main").get_page(0)

    assert caught.value.status == 403
    headers = caught.value.headers or {}
    assert headers["x-ratelimit-remaining"] == "0"
    assert "API rate limit exceeded" in caught.value.data["message"]
    assert int(headers["x-ratelimit-reset"]) > time.time() + 3000
    assert [r.units for r in server.requests] == [1, 1, 0, 1, 0]  # rate_limit is free, refusals too


def test_faults_429_secondary_5xx_then_normal(forge: Forge, server: GitHubServer) -> None:
    forge.create_repository("octo/hello")
    url = f"{server.api_url}/repos/octo/hello"
    server.fault(403, secondary=True, retry_after=30, path_contains="/commits")
    server.fault(429, retry_after=7)
    server.fault(502, count=2, path_contains="/repos/")

    commits = httpx.get(url + "/commits", timeout=5)
    answers = [httpx.get(url, timeout=5) for _ in range(4)]

    assert (commits.status_code, commits.json()["message"]) == (403, SECONDARY_MESSAGE)
    assert commits.headers["Retry-After"] == "30"
    assert [a.status_code for a in answers] == [429, 502, 502, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert server.units_spent() == 1


def test_the_daemons_provider_reads_heads_through_the_standin(forge: Forge, server: GitHubServer) -> None:
    repo = forge.create_repository("octo/hello")
    provider = github_provider.Provider(GitSource("github", server.api_url, "octo/hello"), None, timeout=5)
    server.fault(503)

    assert_provider_recovers_after_faults(provider, repo)
    with pytest.raises(NotFound):
        provider.head("nope")


def test_a_delayed_answer_times_out_the_client_and_the_next_is_served(forge: Forge,
                                                                     server: GitHubServer) -> None:
    forge.create_repository("octo/hello")
    server.fault(200, delay=5)
    url = f"{server.api_url}/repos/octo/hello"

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, timeout=0.3)

    assert time.monotonic() - started < 3
    assert httpx.get(url, timeout=5).status_code == 200


def test_secondary_limit_per_minute(forge: Forge) -> None:
    forge.create_repository("octo/hello")
    forge.grant(TOKEN)
    with (GitHubServer(forge, per_minute=3) as server,
          httpx.Client(headers={"Authorization": f"token {TOKEN}"}, timeout=5) as http):
        answers = [http.get(f"{server.api_url}/repos/octo/hello") for _ in range(4)]

    assert [a.status_code for a in answers] == [200, 200, 200, 403]
    assert answers[3].json()["message"] == SECONDARY_MESSAGE
    assert 0 < int(answers[3].headers["Retry-After"]) <= 60
    assert answers[3].headers["X-RateLimit-Remaining"] == "4997"


def test_graphql_batch_answers_heads_missing_repository_and_missing_branch(forge: Forge,
                                                                          server: GitHubServer) -> None:
    hello = forge.create_repository("octo/hello")
    feature = hello.commit("feature", branch="feature/x")
    secret = forge.create_repository("octo/secret", private=True, default_branch="trunk")
    forge.grant(TOKEN)
    variables = {"o0": "octo", "n0": "hello", "q0": "refs/heads/feature/x", "o1": "octo", "n1": "secret",
                 "o2": "octo", "n2": "hello", "q2": "refs/heads/gone"}

    answer = httpx.post(server.graphql_url, json={"query": QUERY, "variables": variables},
                        headers={"Authorization": f"bearer {TOKEN}"}, timeout=5)
    missing = httpx.post(server.graphql_url, json={"query": QUERY, "variables": {**variables, "n1": "nope"}},
                         headers={"Authorization": f"bearer {TOKEN}"}, timeout=5)

    data = answer.json()["data"]
    assert answer.status_code == 200 and "errors" not in answer.json()
    assert data["r0"] == {"ref": {"target": {"oid": feature}}}
    assert data["r1"] == {"defaultBranchRef": {"name": "trunk", "target": {"oid": secret.head()}}}
    assert data["r2"] == {"ref": None}
    assert data["rateLimit"]["limit"] == 5000 and data["rateLimit"]["cost"] == 1
    assert data["rateLimit"]["remaining"] == 4999
    assert answer.headers["X-RateLimit-Resource"] == "graphql"
    assert missing.json()["data"]["r1"] is None
    assert missing.json()["errors"] == [{
        "type": "NOT_FOUND", "path": ["r1"], "locations": [],
        "message": "Could not resolve to a Repository with the name 'octo/nope'."}]
    assert missing.headers["X-RateLimit-Remaining"] == "4998"
    assert server.units_spent(TOKEN) == 2


def test_graphql_hides_private_repositories_from_tokens_without_access(forge: Forge,
                                                                       server: GitHubServer) -> None:
    forge.create_repository("octo/secret", private=True)
    forge.grant(TOKEN, "octo/other")
    query = ('{ r0: repository(owner: "octo", name: "secret") '
             '{ defaultBranchRef { target { ... on Commit { oid } } } } }')

    answer = httpx.post(server.graphql_url, json={"query": query}, headers={"Authorization": f"token {TOKEN}"},
                        timeout=5).json()

    assert answer["data"] == {"r0": None} and answer["errors"][0]["type"] == "NOT_FOUND"


@pytest.mark.parametrize("query, variables, message", [
    ("{ repository(owner: \"o\", name: \"r\") { nope } }", {}, "Field 'nope' doesn't exist on type 'Repository'"),
    ("query($o: String!) { repository(owner: $o, name: \"r\") { name } }", {}, "Variable $o of type String!"),
    ("{ repository(owner: $o, name: \"r\") { name } }", {}, "Variable $o is used"),
    ("{ repository(owner: \"o\") { name } }", {}, "missing required arguments: name"),
    ("{ repository(owner: \"o\", name: \"r\") }", {}, "Field must have selections"),
    ("{ repository(owner: \"o\", name: \"r\") { name ", {}, "Parse error"),
    ("mutation { x }", {}, "queries only"),
])
def test_graphql_refuses_what_it_does_not_understand_without_charging(
        forge: Forge, server: GitHubServer, query: str, variables: dict[str, Any], message: str) -> None:
    forge.grant(TOKEN)

    answer = httpx.post(server.graphql_url, json={"query": query, "variables": variables},
                        headers={"Authorization": f"token {TOKEN}"}, timeout=5)

    assert answer.status_code == 200 and "data" not in answer.json()
    assert message in answer.json()["errors"][0]["message"]
    assert server.units_spent(TOKEN) == 0


def test_graphql_needs_a_token_and_json(forge: Forge, server: GitHubServer) -> None:
    forge.grant(TOKEN)

    anonymous = httpx.post(server.graphql_url, json={"query": "{ rateLimit { cost } }"}, timeout=5)
    not_json = httpx.post(server.graphql_url, content=b"{", headers={"Authorization": f"token {TOKEN}"},
                          timeout=5)

    assert anonymous.status_code == 401 and not_json.status_code == 400


def test_graphql_budget_exhaustion_is_200_with_rate_limited(forge: Forge) -> None:
    forge.grant(TOKEN)
    with GitHubServer(forge, graphql_limit=1) as server:
        answers = [httpx.post(server.graphql_url, json={"query": "{ rateLimit { remaining } }"},
                              headers={"Authorization": f"token {TOKEN}"}, timeout=5) for _ in range(2)]

    assert answers[0].json() == {"data": {"rateLimit": {"remaining": 0}}}
    assert answers[1].status_code == 200 and answers[1].json()["errors"][0]["type"] == "RATE_LIMITED"
    assert answers[1].headers["X-RateLimit-Remaining"] == "0"


def test_git_ls_remote_of_public_and_private_repositories(forge: Forge, server: GitHubServer,
                                                          tmp_path: Path) -> None:
    assert_git_lists_public_and_private_refs(forge, server, tmp_path, public="octo/hello", private="octo/secret",
                                             user="x-access-token", token=TOKEN)

    wrong = ls_remote(server.url.replace("http://", "http://x:wrong@") + "/octo/secret.git", tmp_path)

    assert wrong.returncode != 0
    assert server.units_spent() == 0


# --- comparisons


def test_compare_lists_commits_and_files_from_the_merge_base_with_the_budget(forge: Forge,
                                                                           server: GitHubServer) -> None:
    repo = forge.create_repository("octo/mono", private=True)
    forge.grant(TOKEN, "octo/mono")
    base = repo.head()
    side = repo.commit("side", {"side.txt": "3\n"}, branch="side")
    code = repo.commit("code", {"a/x.py": "1\n"})
    docs = repo.commit("docs", {"README.md": "2\n"})
    http = httpx.Client(base_url=f"{server.api_url}/repos/octo/mono", headers={"Authorization": f"token {TOKEN}"},
                        timeout=5)

    ahead = http.get(f"/compare/{base}...main")
    behind, diverged, identical = (http.get(f"/compare/{refs}").json()
                                   for refs in (f"main...{base}", "side...main", "main...main"))

    document = ahead.json()
    assert ahead.status_code == 200 and ahead.headers["X-RateLimit-Remaining"] == "4999"
    assert (document["status"], document["ahead_by"], document["behind_by"], document["total_commits"]) == (
        "ahead", 2, 0, 2)
    assert document["merge_base_commit"]["sha"] == document["base_commit"]["sha"] == base
    assert [c["sha"] for c in document["commits"]] == [code, docs]
    assert [(f["filename"], f["status"]) for f in document["files"]] == [("README.md", "modified"),
                                                                         ("a/x.py", "added")]
    assert (behind["status"], behind["ahead_by"], behind["behind_by"], behind["files"]) == ("behind", 0, 2, [])
    assert (diverged["status"], diverged["ahead_by"], diverged["behind_by"]) == ("diverged", 2, 1)
    assert diverged["merge_base_commit"]["sha"] == base and diverged["base_commit"]["sha"] == side
    assert [f["filename"] for f in diverged["files"]] == ["README.md", "a/x.py"]
    assert (identical["status"], identical["commits"], identical["files"]) == ("identical", [], [])
    assert server.units_spent(TOKEN) == 4


def test_compare_pages_the_commits_and_lists_the_files_on_the_first_page(forge: Forge,
                                                                        server: GitHubServer) -> None:
    repo = forge.create_repository("octo/mono")
    base = repo.head()
    shas = [repo.commit(f"c{index}", {f"f{index}.txt": "x"}) for index in range(3)]
    url = f"{server.api_url}/repos/octo/mono/compare/{base}...main"

    first, second = (httpx.get(url, params={"per_page": 2, "page": page}, timeout=5).json() for page in (1, 2))
    server.max_compare_files = 2
    capped = httpx.get(url, timeout=5).json()

    assert [c["sha"] for c in first["commits"]] == shas[:2] and len(first["files"]) == 3
    assert [c["sha"] for c in second["commits"]] == shas[2:] and second["files"] == []
    assert [f["filename"] for f in capped["files"]] == ["f0.txt", "f1.txt"] and len(capped["commits"]) == 3


def test_compare_of_an_unknown_commit_or_repository_is_github_s_404(forge: Forge, server: GitHubServer) -> None:
    forge.create_repository("octo/mono")
    forge.create_repository("octo/secret", private=True)

    unknown = httpx.get(f"{server.api_url}/repos/octo/mono/compare/{'0' * 40}...main", timeout=5)
    hidden = httpx.get(f"{server.api_url}/repos/octo/secret/compare/main...main", timeout=5)
    refused = httpx.get(f"{server.api_url}/repos/octo/mono/compare/main...main", timeout=5,
                        headers={"Authorization": "token wrong"})

    assert unknown.status_code == 404 and unknown.json()["message"] == "Not Found"
    assert unknown.json()["documentation_url"].endswith("#compare-two-commits")
    assert unknown.headers["X-RateLimit-Limit"] == "60"
    assert hidden.status_code == 404
    assert refused.status_code == 401 and refused.json()["message"] == "Bad credentials"


def test_the_daemons_provider_compares_commits_through_the_standin(forge: Forge, server: GitHubServer) -> None:
    repo = forge.create_repository("octo/mono", private=True)
    forge.grant(TOKEN, "octo/mono")
    provider = github_provider.Provider(GitSource("github", server.api_url, "octo/mono"), TOKEN, timeout=5)

    assert_provider_compares_commits(provider, repo)
    assert all(r.query == {"per_page": "1"} for r in server.requests if "/compare/" in r.path)
    refused = github_provider.Provider(GitSource("github", server.api_url, "octo/mono"), "wrong", timeout=5)
    with pytest.raises(Unauthorized):
        refused.changed_files("0" * 40, "0" * 40)


def test_the_provider_finds_300_files_may_be_a_cut_list(forge: Forge, server: GitHubServer) -> None:
    repo = forge.create_repository("octo/mono")
    base = repo.head()
    head = repo.commit("many", {f"d/{index}.txt": f"{index}" for index in range(301)})
    provider = github_provider.Provider(GitSource("github", server.api_url, "octo/mono"), TOKEN, timeout=5)
    forge.grant(TOKEN)

    changed = provider.changed_files(base or "", head)

    assert len(changed.files) == 300 and changed.uncertain == "the server listed only the first 300 changed files"


def test_a_rename_is_listed_with_its_previous_filename_and_read_as_both_paths(forge: Forge,
                                                                            server: GitHubServer) -> None:
    repo = forge.create_repository("octo/mono")
    base = repo.commit("old", {"old.txt": "a file long enough to be seen as renamed\n"})
    head = renaming(repo, "old.txt", "new.txt")
    forge.grant(TOKEN)
    provider = github_provider.Provider(GitSource("github", server.api_url, "octo/mono"), TOKEN, timeout=5)

    [listed] = httpx.get(f"{server.api_url}/repos/octo/mono/compare/{base}...{head}", timeout=5).json()["files"]

    assert (listed["filename"], listed["previous_filename"], listed["status"]) == ("new.txt", "old.txt", "renamed")
    assert provider.changed_files(base, head).files == ("old.txt", "new.txt")

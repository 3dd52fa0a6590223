from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from email.message import Message

import httpx
import pytest

from revision_controller.testing.forge import Budget, Fault, Forge, ForgeServer, Reply, Request, conditional
from tests.testing.conftest import renaming

TOKEN = "forge-token"


class EchoServer(ForgeServer):
    """The smallest API: answers every request with what it received, one unit each."""

    def token_of(self, request: Request) -> str | None:
        return request.header("X-Token") or None

    def answer(self, request: Request, token: str | None) -> Reply:
        return Reply.json(200, {"path": request.path, "query": request.query,
                                "body": request.body.decode()}).costing(1)

    def fault_reply(self, fault: Fault, request: Request, token: str | None) -> Reply:
        return Reply.json(fault.status, {"fault": fault.status})


@pytest.fixture
def server(forge: Forge) -> Iterator[EchoServer]:
    with EchoServer(forge) as srv:
        yield srv


def request_with(headers: dict[str, str]) -> Request:
    message = Message()
    for name, value in headers.items():
        message[name] = value
    return Request("GET", "/x", "", message, b"", "127.0.0.1")


def test_repositories_are_real_git_repositories_with_ids_and_history(forge: Forge) -> None:
    first = forge.create_repository("octo/hello")
    nested = forge.create_repository("group/sub/project", private=True, default_branch="trunk")
    initial = first.head()
    second = first.commit("second", {"a.txt": "a"})

    assert (first.owner, first.name, nested.owner, nested.name) == ("octo", "hello", "group/sub", "project")
    assert nested.id == first.id + 1 and forge.repository_by_id(nested.id) is nested
    assert forge.repository("OCTO/Hello") is first
    assert (first.path / "HEAD").is_file() and nested.default_branch == "trunk"
    assert [info.sha for info in first.history(second, 10)] == [second, initial]
    assert [info.sha for info in first.history(second, 1)] == [second]
    info = first.info(second)
    assert (info.message, info.parents, info.author.name) == ("second", (initial,), "Revision Controller Demo")
    assert first.resolve("main") == first.resolve(second[:7]) == first.resolve("refs/heads/main") == second
    assert first.resolve("nope") is None


def test_changes_ancestry_and_force_pushes_come_from_the_git_objects(forge: Forge) -> None:
    repository = forge.create_repository("octo/mono")
    base = repository.head() or ""
    code = repository.commit("code", {"a/x.py": "1\n", "old.txt": "a file long enough to be seen as renamed\n"})
    head = renaming(repository, "old.txt", "new.txt")

    assert [(c.status, c.path, c.old_path) for c in repository.changes(base, head)] == [
        ("added", "a/x.py", "a/x.py"), ("added", "new.txt", "new.txt")]
    [renamed] = repository.changes(code, head)
    assert (renamed.status, renamed.path, renamed.old_path, renamed.new_mode) == (
        "renamed", "new.txt", "old.txt", 0o100644)
    assert [c.status for c in repository.changes(head, base)] == ["removed", "removed"]
    assert [c.sha for c in repository.commits_between(base, head)] == [code, head]
    assert repository.merge_base(base, head) == base

    repository.move_branch(base)  # a force push
    rewritten = repository.commit("rewritten", {"b.txt": "b\n"})

    assert repository.head() == rewritten and repository.merge_base(head, rewritten) == base
    assert [c.sha for c in repository.commits_between(head, rewritten)] == [rewritten]


@pytest.mark.parametrize("name", ["hello", "octo/", "/hello", "octo/../x", "octo/hello.git", "octo/he llo"])
def test_bad_names_are_refused(forge: Forge, name: str) -> None:
    with pytest.raises(ValueError):
        forge.create_repository(name)


def test_empty_repository_has_no_head(forge: Forge) -> None:
    empty = forge.create_repository("octo/empty", empty=True)

    assert empty.is_empty() and empty.head() is None
    empty.commit("first")
    assert not empty.is_empty()


def test_grants_decide_who_reads_private_repositories(forge: Forge) -> None:
    public = forge.create_repository("octo/public")
    secret = forge.create_repository("octo/secret", private=True)
    other = forge.create_repository("octo/other", private=True)
    forge.grant("one", "octo/secret")
    forge.grant("all")

    assert forge.can_read(None, public) and not forge.can_read(None, secret)
    assert forge.can_read("one", secret) and not forge.can_read("one", other)
    assert forge.can_read("all", other) and not forge.can_read("unknown", secret)
    forge.revoke("all")
    assert not forge.knows("all") and not forge.can_read("all", other)


def test_budget_spends_refuses_gives_back_and_refills() -> None:
    budget = Budget(2, window_seconds=0.2)

    assert budget.take("a") is not None
    taken = budget.take("a")
    assert taken is not None and (taken.remaining, taken.used) == (0, 2)
    assert budget.take("a") is None and budget.peek("b").remaining == 2
    assert budget.give_back("a").remaining == 1
    deadline = time.monotonic() + 5
    while budget.peek("a").remaining != 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert budget.peek("a").remaining == 2


@pytest.mark.parametrize("weak", [False, True])
def test_etag_comes_from_the_body_and_matches_weakly(weak: bool) -> None:
    reply = Reply.json(200, {"a": 1})

    first = conditional(request_with({}), reply, weak=weak)
    etag = dict(first.headers)["ETag"]
    opaque = etag.removeprefix("W/")

    assert etag.startswith("W/") is weak and opaque.startswith('"')
    for held in (etag, opaque, f'"other", {etag}', "*"):
        assert conditional(request_with({"If-None-Match": held}), reply, weak=weak).status == 304
    assert conditional(request_with({"If-None-Match": '"other"'}), reply, weak=weak).status == 200
    assert dict(conditional(request_with({}), Reply.json(200, {"a": 2}), weak=weak).headers)["ETag"] != etag
    assert conditional(request_with({"If-None-Match": "*"}), Reply.json(404, {}), weak=weak).status == 404


def test_requests_are_logged_with_status_units_and_hidden_token(server: EchoServer) -> None:
    httpx.get(f"{server.url}/api/x", params={"a": "1", "access_token": TOKEN},
              headers={"X-Token": TOKEN}, timeout=5)
    server.fault(503)
    httpx.get(f"{server.url}/api/y", timeout=5)

    first, second = server.requests
    assert (first.method, first.path, first.query, first.status, first.units) == ("GET", "/api/x", {"a": "1"},
                                                                                   200, 1)
    assert first.token == TOKEN and TOKEN not in repr(first)
    assert (second.status, second.units, second.token) == (503, 0, None)
    assert server.units_spent(TOKEN) == 1 and server.units_spent() == 1


def test_faults_match_paths_count_down_and_delay(server: EchoServer) -> None:
    server.fault(500, count=2, path_contains="sha=main")
    server.fault(200, delay=0.3, path_contains="slow")

    statuses = [httpx.get(f"{server.url}/api/c", params={"sha": "main"}, timeout=5).status_code
                for _ in range(3)]
    started = time.monotonic()
    slow = httpx.get(f"{server.url}/api/slow", timeout=5)

    assert statuses == [500, 500, 200]
    assert slow.status_code == 200 and time.monotonic() - started >= 0.3


def test_chunked_bodies_are_read_and_connections_are_kept_alive(server: EchoServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for _ in range(2):
            connection.request("POST", "/api/p", body=iter([b"hel", b"lo"]),
                               headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
            answer = connection.getresponse()
            assert answer.status == 200 and b'"body":"hello"' in answer.read()
    finally:
        connection.close()


def test_stop_cuts_kept_alive_connections(forge: Forge) -> None:
    server = EchoServer(forge)
    server.start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/api/a")
    connection.getresponse().read()

    server.stop()

    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        connection.request("GET", "/api/b")
        connection.getresponse()
    connection.close()


def test_git_paths_refuse_pushes_and_unknown_repositories(forge: Forge, server: EchoServer) -> None:
    forge.create_repository("octo/hello")
    forge.grant(TOKEN)
    refs = "/info/refs?service=git-upload-pack"

    push = httpx.get(f"{server.url}/octo/hello.git/info/refs?service=git-receive-pack", timeout=5)
    anonymous = httpx.get(f"{server.url}/octo/none.git{refs}", timeout=5)
    known = httpx.get(f"{server.url}/octo/none.git{refs}", auth=("x", TOKEN), timeout=5)
    without_suffix = httpx.get(f"{server.url}/octo/hello{refs}", timeout=5)

    assert push.status_code == 403
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert known.status_code == 404
    assert without_suffix.status_code == 200 and b"refs/heads/main" in without_suffix.content


def test_temporary_root_is_removed_on_close() -> None:
    forge = Forge()
    forge.create_repository("octo/hello")

    forge.close()

    assert not forge.root.exists()

"""The smart HTTP client on its own: exact request bytes, answers read and refused, what it
remembers of each server. Servers are respx stand-ins here; test_git.py runs real ones."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate

import httpx
import pytest
import respx

from providers import smarthttp
from providers.base import GitSource, NotFound, ProviderError, Throttled, Unauthorized, Unavailable
from providers.failures import Subject
from revision_controller.testing.gitserver import ADVERTISEMENT, LS_REFS, GitServer
from tests.providers.conftest import TOKEN, assert_token_hidden, require_git

URL = "https://git.example.com/team/app.git"
ORIGIN = "https://git.example.com:443"
SHA = "a" * 40
OTHER_SHA = "b" * 40
SUBJECT = Subject(GitSource("git", "", URL, clone_url=URL), "main")
ADVERTISEMENT_TYPE = "application/x-git-upload-pack-advertisement"
RESULT_TYPE = "application/x-git-upload-pack-result"
V2_CAPABILITIES = ["version 2", "agent=git/2.45.0", "ls-refs=unborn", "fetch=shallow",
                   "object-format=sha1"]


def pkts(*lines: str | None) -> bytes:
    """pkt-lines of `lines`, None for a flush."""
    return b"".join(b"0000" if line is None else smarthttp.pkt_line(line) for line in lines)


def v2_capabilities(capabilities: list[str] = V2_CAPABILITIES) -> httpx.Response:
    return httpx.Response(200, content=pkts(*capabilities, None),
                          headers={"Content-Type": ADVERTISEMENT_TYPE})


def v0_advertisement(*refs: tuple[str, str], capabilities: str = "symref=HEAD:refs/heads/main") -> httpx.Response:
    first, *rest = [f"{sha} {name}" for sha, name in refs]
    lines = ["# service=git-upload-pack", None, f"{first}\0{capabilities}", *rest, None]
    return httpx.Response(200, content=pkts(*lines), headers={"Content-Type": ADVERTISEMENT_TYPE})


def ls_refs_answer(*lines: str) -> httpx.Response:
    return httpx.Response(200, content=pkts(*lines, None), headers={"Content-Type": RESULT_TYPE})


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def remote(url: str = URL, token: str | None = None, timeout: float = 5) -> smarthttp.Remote:
    return smarthttp.Remote(url, token, timeout)


def discovery(mock: respx.MockRouter) -> respx.Route:
    return mock.get(f"{URL}/info/refs", params={"service": "git-upload-pack"})


def upload_pack(mock: respx.MockRouter) -> respx.Route:
    return mock.post(f"{URL}/git-upload-pack")


def test_the_ls_refs_request_is_exactly_what_git_sends(mock: respx.MockRouter) -> None:
    discovery(mock).mock(return_value=v2_capabilities())
    posts = upload_pack(mock).mock(side_effect=[ls_refs_answer(f"{SHA} refs/heads/main"),
                                                ls_refs_answer(f"{SHA} HEAD symref-target:refs/heads/main")])

    remote().ref("refs/heads/main", SUBJECT)
    remote().ref("HEAD", SUBJECT, symrefs=True)

    branch, head = (call.request for call in posts.calls)
    assert branch.content == (b"0014command=ls-refs\n"
                              b"002bagent=openfunction-revision-controller\n"
                              b"0017object-format=sha1\n"
                              b"0001"
                              b"001fref-prefix refs/heads/main\n"
                              b"0000")
    assert head.content == (b"0014command=ls-refs\n"
                            b"002bagent=openfunction-revision-controller\n"
                            b"0017object-format=sha1\n"
                            b"0001"
                            b"000csymrefs\n"
                            b"0014ref-prefix HEAD\n"
                            b"0000")
    assert branch.headers["Content-Type"] == "application/x-git-upload-pack-request"
    assert branch.headers["Accept"] == RESULT_TYPE
    assert branch.headers["Git-Protocol"] == "version=2"
    assert branch.headers["User-Agent"].startswith("git/")


def test_capabilities_the_server_did_not_advertise_are_not_sent(mock: respx.MockRouter) -> None:
    discovery(mock).mock(return_value=v2_capabilities(["version 2", "ls-refs"]))
    post = upload_pack(mock).mock(return_value=ls_refs_answer(f"{SHA} refs/heads/main"))

    remote().ref("refs/heads/main", SUBJECT)

    assert post.calls.last.request.content == (b"0014command=ls-refs\n0001"
                                               b"001fref-prefix refs/heads/main\n0000")


def test_first_contact_asks_for_v2_and_later_polls_are_one_post_for_every_repository_there(
        mock: respx.MockRouter) -> None:
    get = discovery(mock).mock(return_value=v2_capabilities())
    upload_pack(mock).mock(return_value=ls_refs_answer(f"{SHA} refs/heads/main"))
    other = mock.post("https://git.example.com/team/other.git/git-upload-pack").mock(
        return_value=ls_refs_answer(f"{OTHER_SHA} refs/heads/main"))

    first = remote()
    assert first.ref("refs/heads/main", SUBJECT) == smarthttp.Ref("refs/heads/main", SHA)
    assert first.ref("refs/heads/main", SUBJECT) == smarthttp.Ref("refs/heads/main", SHA)
    ref = remote("https://git.example.com/team/other.git").ref("refs/heads/main", SUBJECT)

    assert ref == smarthttp.Ref("refs/heads/main", OTHER_SHA)
    assert get.call_count == 1 and other.call_count == 1
    assert get.calls.last.request.headers["Git-Protocol"] == "version=2"
    assert smarthttp.SERVERS.get(ORIGIN) == smarthttp.Protocol(
        2, {"agent": "git/2.45.0", "ls-refs": "unborn", "fetch": "shallow", "object-format": "sha1"})


def test_the_ref_name_must_match_exactly(mock: respx.MockRouter) -> None:
    discovery(mock).mock(return_value=v2_capabilities())
    upload_pack(mock).mock(return_value=ls_refs_answer(f"{OTHER_SHA} refs/heads/main2"))

    assert remote().ref("refs/heads/main", SUBJECT) is None


def test_a_v0_server_answers_from_its_advertisement_and_is_remembered(mock: respx.MockRouter) -> None:
    get = discovery(mock).mock(return_value=v0_advertisement(
        (SHA, "HEAD"), (OTHER_SHA, "refs/heads/main2"), (SHA, "refs/heads/main"),
        (OTHER_SHA, "refs/tags/v1"), (SHA, "refs/tags/v1^{}")))
    post = upload_pack(mock)
    client = remote()

    assert client.ref("refs/heads/main", SUBJECT) == smarthttp.Ref("refs/heads/main", SHA)
    assert client.ref("HEAD", SUBJECT, symrefs=True) == smarthttp.Ref("HEAD", SHA, "refs/heads/main")
    assert client.ref("refs/tags/v1", SUBJECT) == smarthttp.Ref("refs/tags/v1", OTHER_SHA)

    assert smarthttp.SERVERS.get(ORIGIN) == smarthttp.Protocol(0)
    assert get.call_count == 3 and post.call_count == 0


@pytest.mark.parametrize("refusal", [
    httpx.Response(415, text="unsupported media type"),
    httpx.Response(400, text="bad request"),
    httpx.Response(403, html="<p>forbidden</p>"),
    httpx.Response(200, text="not git", headers={"Content-Type": "text/plain"}),
    httpx.Response(200, content=pkts("NAK"), headers={"Content-Type": RESULT_TYPE}),
], ids=["415", "400", "403-html", "not-a-result", "v0-shaped"])
def test_a_server_that_no_longer_understands_v2_is_asked_again_within_the_poll(
        mock: respx.MockRouter, refusal: httpx.Response) -> None:
    smarthttp.SERVERS.remember(ORIGIN, smarthttp.Protocol(2, {"ls-refs": ""}))
    post = upload_pack(mock).mock(return_value=refusal)
    get = discovery(mock).mock(return_value=v0_advertisement((SHA, "refs/heads/main")))

    assert remote().ref("refs/heads/main", SUBJECT) == smarthttp.Ref("refs/heads/main", SHA)

    assert (post.call_count, get.call_count) == (1, 1)
    assert smarthttp.SERVERS.get(ORIGIN) == smarthttp.Protocol(0)


def test_a_v2_server_that_refuses_ls_refs_twice_is_an_error_not_a_loop(mock: respx.MockRouter) -> None:
    smarthttp.SERVERS.remember(ORIGIN, smarthttp.Protocol(2, {"ls-refs": ""}))
    post = upload_pack(mock).mock(return_value=httpx.Response(400, text="bad request"))
    get = discovery(mock).mock(return_value=v2_capabilities())

    with pytest.raises(ProviderError, match="HTTP 400"):
        remote().ref("refs/heads/main", SUBJECT)
    assert (post.call_count, get.call_count) == (2, 1)


def test_a_dumb_http_server_or_a_web_page_is_not_a_git_server(mock: respx.MockRouter) -> None:
    discovery(mock).mock(return_value=httpx.Response(200, text=f"{SHA}\trefs/heads/main\n"))

    with pytest.raises(ProviderError, match="does not speak git's smart HTTP protocol"):
        remote().ref("refs/heads/main", SUBJECT)
    assert smarthttp.SERVERS.get(ORIGIN) is None


@pytest.mark.parametrize("body", [
    b"ffff" + b"x" * 65531,            # a pkt-line longer than git allows
    b"0032" + b"x" * 10,               # truncated
    b"zzzz",                           # not a length
    pkts("version 2", "agent=x", None),  # v2 without ls-refs
    pkts("# service=git-upload-pack", None, f"{SHA[:39]} refs/heads/main", None),  # bad oid
    pkts("# service=git-upload-pack", None, f"{SHA} refs/heads/main"),  # no flush
], ids=["too-long", "truncated", "not-hex", "no-ls-refs", "bad-oid", "no-flush"])
def test_malformed_advertisements_are_bad_answers(mock: respx.MockRouter, body: bytes) -> None:
    discovery(mock).mock(return_value=httpx.Response(
        200, content=body, headers={"Content-Type": ADVERTISEMENT_TYPE}))

    with pytest.raises(Unavailable, match="could not be read"):
        remote().ref("refs/heads/main", SUBJECT)


def test_an_answer_over_the_size_limit_is_refused_without_reading_it_all(mock: respx.MockRouter) -> None:
    chunk = pkts(f"{SHA} refs/heads/{'x' * 200}")
    chunks_sent: list[int] = []

    def stream() -> Iterator[bytes]:
        for index in range(smarthttp.MAX_ANSWER_BYTES // len(chunk) * 2):
            chunks_sent.append(index)
            yield chunk

    discovery(mock).mock(return_value=httpx.Response(
        200, content=stream(), headers={"Content-Type": ADVERTISEMENT_TYPE}))

    with pytest.raises(Unavailable, match="could not be read"):
        remote().ref("refs/heads/main", SUBJECT)
    assert len(chunks_sent) * len(chunk) <= smarthttp.MAX_ANSWER_BYTES + len(chunk)


@pytest.mark.parametrize("status, error, text", [
    (401, Unauthorized, "HTTP 401"), (404, NotFound, "HTTP 404"), (500, Unavailable, "HTTP 500"),
])
def test_statuses(mock: respx.MockRouter, status: int, error: type[Exception], text: str) -> None:
    discovery(mock).mock(return_value=httpx.Response(status, text=f"echo {TOKEN}"))

    with pytest.raises(error, match=text) as caught:
        remote(token=TOKEN).ref("refs/heads/main", SUBJECT)
    assert_token_hidden(caught.value)


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("retry_after, seconds", [("7", 7.0), ("date", 120.0)])
def test_retry_after_is_throttled(mock: respx.MockRouter, status: int, retry_after: str,
                                  seconds: float) -> None:
    value = formatdate(time.time() + 120, usegmt=True) if retry_after == "date" else retry_after
    discovery(mock).mock(return_value=httpx.Response(status, headers={"Retry-After": value}))

    with pytest.raises(Throttled, match=f"HTTP {status}") as caught:
        remote().ref("refs/heads/main", SUBJECT)
    assert caught.value.retry_after == pytest.approx(seconds, abs=2)


def test_throttled_ls_refs_is_throttled_not_rediscovered(mock: respx.MockRouter) -> None:
    smarthttp.SERVERS.remember(ORIGIN, smarthttp.Protocol(2, {"ls-refs": ""}))
    upload_pack(mock).mock(return_value=httpx.Response(429, headers={"Retry-After": "5"}))
    get = discovery(mock)

    with pytest.raises(Throttled) as caught:
        remote().ref("refs/heads/main", SUBJECT)
    assert caught.value.retry_after == 5 and get.call_count == 0


def test_timeouts_and_connection_errors(mock: respx.MockRouter) -> None:
    discovery(mock).mock(side_effect=[httpx.ReadTimeout("slow"), httpx.ConnectError("refused")])

    with pytest.raises(Unavailable, match="no answer within 5s"):
        remote().ref("refs/heads/main", SUBJECT)
    with pytest.raises(Unavailable, match="cannot reach the server"):
        remote().ref("refs/heads/main", SUBJECT)


def test_credentials_in_the_url_go_in_the_header_never_in_the_url(mock: respx.MockRouter) -> None:
    get = discovery(mock).mock(return_value=httpx.Response(401))

    with pytest.raises(Unauthorized) as caught:
        remote(URL.replace("https://", f"https://me:{TOKEN}@")).ref("refs/heads/main", SUBJECT)

    request = get.calls.last.request
    assert request.url.userinfo == b""
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"me:{TOKEN}".encode()).decode()
    assert_token_hidden(caught.value)


def test_a_token_wins_over_url_credentials_and_goes_as_the_git_user(mock: respx.MockRouter) -> None:
    get = discovery(mock).mock(return_value=v0_advertisement((SHA, "refs/heads/main")))

    remote(URL.replace("https://", "https://me:old@"), token=TOKEN).ref("refs/heads/main", SUBJECT)

    expected = "Basic " + base64.b64encode(f"git:{TOKEN}".encode()).decode()
    assert get.calls.last.request.headers["Authorization"] == expected


def test_redirects_are_followed_and_credentials_stay_with_their_host(mock: respx.MockRouter) -> None:
    moved = "https://mirror.example.net/team/app.git"
    discovery(mock).mock(return_value=httpx.Response(
        301, headers={"Location": f"{moved}/info/refs?service=git-upload-pack"}))
    elsewhere = mock.get(f"{moved}/info/refs").mock(return_value=v2_capabilities())
    post = mock.post(f"{moved}/git-upload-pack").mock(return_value=ls_refs_answer(f"{SHA} refs/heads/main"))

    client = remote(token=TOKEN)
    assert client.ref("refs/heads/main", SUBJECT) == smarthttp.Ref("refs/heads/main", SHA)
    assert client.ref("refs/heads/main", SUBJECT) == smarthttp.Ref("refs/heads/main", SHA)

    assert post.call_count == 2  # later polls go straight to where the repository moved
    assert "Authorization" not in elsewhere.calls.last.request.headers
    assert "Authorization" not in post.calls.last.request.headers


def test_too_many_redirects(mock: respx.MockRouter) -> None:
    discovery(mock).mock(return_value=httpx.Response(
        302, headers={"Location": f"{URL}/info/refs?service=git-upload-pack"}))

    with pytest.raises(ProviderError, match="more than 5 redirects"):
        remote().ref("refs/heads/main", SUBJECT)


class TestAgainstRealServers:
    def test_a_remembered_v2_server_replaced_by_a_v0_one_is_read_again(self) -> None:
        """A port reused by another server, or a host downgraded: the poll still answers."""
        with GitServer() as server:
            repo = server.create_repository("demo")
            origin = f"http://127.0.0.1:{server.port}"
            smarthttp.SERVERS.remember(origin, smarthttp.Protocol(2, {"ls-refs": "", "agent": ""}))

            ref = remote(repo.url).ref("refs/heads/main", SUBJECT)

            assert ref is not None and ref.oid == repo.head()
            assert smarthttp.SERVERS.get(origin) == smarthttp.Protocol(0)

    def test_many_threads_share_what_is_known_of_a_server(self) -> None:
        require_git()
        with GitServer(backend="http-backend") as server:
            repos = [server.create_repository(f"repo{index}") for index in range(4)]
            results: dict[str, str] = {}

            def poll(repo_url: str) -> None:
                ref = remote(repo_url).ref("refs/heads/main", SUBJECT)
                results[repo_url] = ref.oid if ref else ""

            threads = [threading.Thread(target=poll, args=(repo.url,)) for repo in repos * 2]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=20)

            assert results == {repo.url: repo.head() for repo in repos}
            for repo in repos:
                assert remote(repo.url).ref("refs/heads/main", SUBJECT) is not None
            kinds = [request.kind for request in server.requests]
            assert kinds.count(LS_REFS) == len(threads) + len(repos)
            assert ADVERTISEMENT not in kinds

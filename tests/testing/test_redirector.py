"""The redirect stand-ins: every request recorded with its headers, redirected or challenged."""

from __future__ import annotations

import httpx
import pytest

from revision_controller.testing.redirector import REDIRECTS, TOKEN_PATH, Challenger, Redirector


@pytest.mark.parametrize("status", REDIRECTS)
def test_every_request_is_redirected_to_the_same_path_on_the_target_and_recorded(status: int) -> None:
    with Redirector("http://example.invalid:8080/", status) as redirector:
        answer = httpx.post(f"{redirector.url}/a/b?c=d", content=b"body", headers={"X-Secret": "s"})
        (arrival,) = redirector.requests
    assert answer.status_code == status
    assert answer.headers["Location"] == "http://example.invalid:8080/a/b?c=d"
    assert (arrival.method, arrival.target, arrival.body) == ("POST", "/a/b?c=d", b"body")
    assert arrival.header("x-secret") == "s" and "X-Secret: s" in arrival.text()


def test_a_client_following_the_redirect_arrives_at_the_other_host() -> None:
    with Challenger(host="127.0.0.2") as elsewhere, Redirector(elsewhere.url, 307) as redirector:
        answer = httpx.get(f"{redirector.url}/x", follow_redirects=True)
        assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == 'Basic realm="challenger"'
        assert [a.target for a in redirector.requests] == [a.target for a in elsewhere.requests] == ["/x"]
        assert elsewhere.url.startswith("http://127.0.0.2:")


def test_the_challenger_hands_out_a_token_at_its_token_path() -> None:
    with Challenger(challenge='Bearer realm="r"') as challenger:
        token = httpx.get(f"{challenger.url}{TOKEN_PATH}?scope=x").json()["token"]
        refused = httpx.get(f"{challenger.url}/v2/")
    assert token and refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Bearer realm="r"'


def test_with_a_challenge_only_requests_with_credentials_are_redirected() -> None:
    with Redirector("http://example.invalid", 307, challenge='Basic realm="r"') as redirector:
        asked = httpx.get(f"{redirector.url}/x")
        moved = httpx.get(f"{redirector.url}/x", auth=("u", "p"))
    assert asked.status_code == 401 and asked.headers["WWW-Authenticate"] == 'Basic realm="r"'
    assert moved.status_code == 307 and moved.headers["Location"] == "http://example.invalid/x"


def test_only_redirect_statuses_are_accepted() -> None:
    with pytest.raises(ValueError, match="303"):
        Redirector("http://x", 303)

"""The canary every test token carries is spotted however it is written out."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from tests.canary import CANARY, leaking_lines, leaks, secret, secret_carries_canary

TOKEN = secret("token")


@pytest.mark.parametrize("prefix", ["", "g", "gi", "git:", "user:"])
def test_the_canary_is_spotted_in_base64_at_any_offset_in_either_alphabet(prefix: str) -> None:
    plain = (prefix + TOKEN + ":?>~").encode()
    assert leaks("Authorization: Basic " + base64.b64encode(plain).decode())
    assert leaks(base64.urlsafe_b64encode(plain).decode())


def test_the_canary_is_spotted_as_is_and_percent_encoded() -> None:
    assert leaks(f"https://git:{TOKEN}@example.com") and leaks(quote(f"?access_token={TOKEN}"))
    assert leaking_lines(f"one\ntwo {TOKEN}\nthree") == [f"two {TOKEN}"]


def test_text_without_the_canary_is_clean() -> None:
    assert not leaks("rcCanary" + base64.b64encode(b"token").decode() + CANARY[:-1])


def test_a_secret_carries_it_in_string_data_data_or_a_docker_configs_auth() -> None:
    auth = base64.b64encode(f"puller:{TOKEN}".encode()).decode()
    config = base64.b64encode(json.dumps({"auths": {"r": {"auth": auth}}}).encode()).decode()
    assert secret_carries_canary({".dockerconfigjson": config})
    assert secret_carries_canary({"password": base64.b64encode(TOKEN.encode()).decode()})
    assert secret_carries_canary(None, {"password": TOKEN})
    assert not secret_carries_canary({"password": base64.b64encode(b"plain").decode()}, {"user": "x"})

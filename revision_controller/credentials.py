"""Credentials from the Secrets Functions name: git tokens and registry auths.

Secrets are read at poll time (so a rotated Secret is picked up) and cached
for a short while (so a busy cluster does not read each Secret at every
poll); a refused credential is read afresh at the next poll.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from providers import ProviderError, RegistryAuth, Unavailable, auth_for
from revision_controller.kube import REQUEST_TIMEOUT_SECONDS, api_error_summary
from revision_controller.targets import SecretRef

TOKEN_KEY = "password"
CACHE_SECONDS = 30.0
# The API server refuses Secrets over 1 MiB; base64 makes that 4/3 as many characters.
MAX_SECRET_CHARACTERS = 4 * 1024 * 1024 // 3 + 4
# Git hosts' tokens are tens of characters; a JWT a few thousand.
MAX_TOKEN_CHARACTERS = 16 * 1024


_GIT_SECRET = f"with the git token under key '{TOKEN_KEY}', as srcRepo.credentials expects"
_REGISTRY_SECRET = "of type kubernetes.io/dockerconfigjson, as spec.imageCredentials expects"


class CredentialsError(Exception):
    """The Secret cannot give a credential. The message says which Secret and what to do."""


@dataclass(frozen=True)
class _Secret:
    type: str
    data: dict[str, str] = field(repr=False)


class CredentialStore:
    def __init__(self, api: client.ApiClient, cache_seconds: float = CACHE_SECONDS) -> None:
        self._core = client.CoreV1Api(api)
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        # A Secret that cannot give a credential is remembered too, so that what a failed poll saw
        # is what its refusal is compared with (refusals.py).
        self._cache: dict[SecretRef, tuple[float, _Secret | CredentialsError]] = {}

    def token(self, ref: SecretRef | None) -> str | None:
        """The git token under key `password`; None for a public repository."""
        if ref is None:
            return None
        return git_token(ref, self._secret(ref, _GIT_SECRET).data)

    def registry_auth(self, ref: SecretRef | None, registry: str) -> RegistryAuth | None:
        """The auth a dockerconfigjson Secret holds for `registry`; None for anonymous pulls."""
        if ref is None:
            return None
        secret = self._secret(ref, _REGISTRY_SECRET)
        return registry_auth_in(ref, secret.type, secret.data, registry)

    def forget(self, ref: SecretRef | None) -> None:
        """Read the Secret afresh next time: its credential was just refused, and may have been fixed."""
        if ref is not None:
            with self._lock:
                self._cache.pop(ref, None)

    def _secret(self, ref: SecretRef, kind: str) -> _Secret:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(ref)
        if cached and now - cached[0] < self._cache_seconds:
            secret: _Secret | CredentialsError = cached[1]
        else:
            try:
                secret = self._read(ref, kind)
            except CredentialsError as error:
                secret = error
            with self._lock:
                self._cache[ref] = (now, secret)
        if isinstance(secret, CredentialsError):
            raise CredentialsError(str(secret))
        return secret

    def _read(self, ref: SecretRef, kind: str) -> _Secret:
        try:
            secret = self._core.read_namespaced_secret(ref.name, ref.namespace,
                                                       _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except ApiException as error:
            if error.status == 429 or (error.status or 0) >= 500:  # the API server's trouble, not the Secret's
                raise Unavailable(f"could not read Secret {ref}: the API server answered HTTP {error.status}; "
                                  "trying again") from None
            raise CredentialsError(_api_problem(ref, kind, error.status)) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise Unavailable(f"could not read Secret {ref}: {api_error_summary(error)}; trying again") from None
        return _Secret(secret.type if isinstance(secret.type, str) and secret.type else "Opaque",
                       secret_data(ref, secret.data))


def secret_data(ref: SecretRef, data: object) -> dict[str, str]:
    """A Secret's `.data` as the API gives it (base64 text by key), within a Secret's size."""
    if not isinstance(data, Mapping):
        return {}
    values = {key: value for key, value in data.items() if isinstance(key, str) and isinstance(value, str)}
    size = sum(len(key) + len(value) for key, value in values.items())
    if size > MAX_SECRET_CHARACTERS:
        raise CredentialsError(f"Secret {ref} holds {size} characters of data, more than a Kubernetes "
                               f"Secret may (1 MiB): keep only the credential in it")
    return values


def git_token(ref: SecretRef, data: Mapping[str, str]) -> str:
    """The token under key `password`: base64 of one line of printable ASCII. Pure.

    The message names the Secret and what to put there, never the token."""
    encoded = data.get(TOKEN_KEY)
    if not encoded:
        raise CredentialsError(f"Secret {ref} has no key '{TOKEN_KEY}': put the git token under "
                               f"that key, or remove srcRepo.credentials for a public repository")
    try:
        token = base64.b64decode(encoded, validate=True).decode().strip()
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 once decoded
        raise CredentialsError(f"Secret {ref} key '{TOKEN_KEY}' is not base64-encoded text") from None
    if not token:
        raise CredentialsError(f"Secret {ref} key '{TOKEN_KEY}' is empty: put the git token there")
    if len(token) > MAX_TOKEN_CHARACTERS:
        raise CredentialsError(f"Secret {ref} key '{TOKEN_KEY}' holds {len(token)} characters, more than "
                               f"a git token has ({MAX_TOKEN_CHARACTERS}): put only the token there")
    if not all("!" <= character <= "~" for character in token):
        raise CredentialsError(f"Secret {ref} key '{TOKEN_KEY}' holds spaces, line breaks or characters "
                               f"other than printable ASCII inside the token: put only the token there")
    return token


def registry_auth_in(ref: SecretRef, secret_type: str, data: Mapping[str, str],
                     registry: str) -> RegistryAuth | None:
    """The auth a docker config Secret's `.data` holds for `registry`; None for none. Pure."""
    try:
        return auth_for(secret_type, data, registry)
    except ProviderError as error:
        raise CredentialsError(f"Secret {ref} named in spec.imageCredentials: {error}") from None


def _api_problem(ref: SecretRef, kind: str, status: int | None) -> str:
    if status == 404:
        return f"Secret {ref} does not exist: create it {kind}"
    if status == 403:
        return (f"the revision controller may not read Secret {ref}: grant its ServiceAccount 'get' "
                f"on secrets")
    return f"could not read Secret {ref}: the API server answered HTTP {status}"

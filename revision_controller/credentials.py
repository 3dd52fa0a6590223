"""Credentials from the Secrets Functions name: git tokens and registry auths.

Secrets are read at poll time (so a rotated Secret is picked up) and cached
for a short while (so a busy cluster does not read each Secret at every
poll); a refused credential is read afresh at the next poll.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from dataclasses import dataclass, field

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from providers import ProviderError, RegistryAuth, auth_for
from revision_controller.kube import REQUEST_TIMEOUT_SECONDS
from revision_controller.targets import SecretRef

TOKEN_KEY = "password"
CACHE_SECONDS = 30.0


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
        self._cache: dict[SecretRef, tuple[float, _Secret]] = {}

    def token(self, ref: SecretRef | None) -> str | None:
        """The git token under key `password`; None for a public repository."""
        if ref is None:
            return None
        encoded = self._secret(ref, _GIT_SECRET).data.get(TOKEN_KEY)
        if not encoded:
            raise CredentialsError(f"Secret {ref} has no key '{TOKEN_KEY}': put the git token under "
                                   f"that key, or remove srcRepo.credentials for a public repository")
        try:
            return base64.b64decode(encoded, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"Secret {ref} key '{TOKEN_KEY}' is not base64-encoded text") from None

    def registry_auth(self, ref: SecretRef | None, registry: str) -> RegistryAuth | None:
        """The auth a dockerconfigjson Secret holds for `registry`; None for anonymous pulls."""
        if ref is None:
            return None
        secret = self._secret(ref, _REGISTRY_SECRET)
        try:
            return auth_for(secret.type, secret.data, registry)
        except ProviderError as error:
            raise CredentialsError(f"Secret {ref} named in spec.imageCredentials: {error}") from None

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
            return cached[1]
        secret = self._read(ref, kind)
        with self._lock:
            self._cache[ref] = (now, secret)
        return secret

    def _read(self, ref: SecretRef, kind: str) -> _Secret:
        try:
            secret = self._core.read_namespaced_secret(ref.name, ref.namespace,
                                                       _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except ApiException as error:
            raise CredentialsError(_api_problem(ref, kind, error.status)) from None
        return _Secret(secret.type or "Opaque", dict(secret.data or {}))


def _api_problem(ref: SecretRef, kind: str, status: int | None) -> str:
    if status == 404:
        return f"Secret {ref} does not exist: create it {kind}"
    if status == 403:
        return (f"the revision controller may not read Secret {ref}: grant its ServiceAccount 'get' "
                f"on secrets")
    return f"could not read Secret {ref}: the API server answered HTTP {status}"

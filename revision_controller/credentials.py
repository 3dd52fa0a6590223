"""Git tokens from the Secrets that Functions name in `srcRepo.credentials`.

Tokens are read at poll time (so a rotated Secret is picked up) and cached for
a short while (so a busy cluster does not read each Secret at every poll).
"""

from __future__ import annotations

import base64
import binascii
import threading
import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from revision_controller.kube import REQUEST_TIMEOUT_SECONDS
from revision_controller.targets import SecretRef

TOKEN_KEY = "password"
CACHE_SECONDS = 30.0


class CredentialsError(Exception):
    """The Secret cannot give a token. The message says which Secret and what to do."""

    reason = "CredentialsError"


class CredentialStore:
    def __init__(self, api: client.ApiClient, cache_seconds: float = CACHE_SECONDS) -> None:
        self._core = client.CoreV1Api(api)
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cache: dict[SecretRef, tuple[float, str]] = {}

    def token(self, ref: SecretRef | None) -> str | None:
        if ref is None:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(ref)
        if cached and now - cached[0] < self._cache_seconds:
            return cached[1]
        token = self._read(ref)
        with self._lock:
            self._cache[ref] = (now, token)
        return token

    def forget(self, ref: SecretRef | None) -> None:
        """Read the Secret afresh next time: its token was just refused, and may have been fixed."""
        with self._lock:
            self._cache.pop(ref, None)

    def _read(self, ref: SecretRef) -> str:
        try:
            secret = self._core.read_namespaced_secret(ref.name, ref.namespace,
                                                       _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except ApiException as error:
            raise CredentialsError(_api_problem(ref, error.status)) from None
        encoded = (secret.data or {}).get(TOKEN_KEY)
        if not encoded:
            raise CredentialsError(f"Secret {ref} has no key '{TOKEN_KEY}': put the git token under "
                                   f"that key, or remove srcRepo.credentials for a public repository")
        try:
            return base64.b64decode(encoded, validate=True).decode().strip()
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(f"Secret {ref} key '{TOKEN_KEY}' is not base64-encoded text") from None


def _api_problem(ref: SecretRef, status: int | None) -> str:
    if status == 404:
        return (f"Secret {ref} named in srcRepo.credentials does not exist: create it with the git "
                f"token under key '{TOKEN_KEY}'")
    if status == 403:
        return (f"the revision controller may not read Secret {ref}: grant its ServiceAccount 'get' "
                f"on secrets")
    return f"could not read Secret {ref}: the API server answered HTTP {status}"

"""Image registries that speak the OCI distribution API: Docker Hub, GHCR, Harbor, distribution.

References and registry credentials are read the way Docker reads them, with the
`docker` package's helpers. The digest is the one the registry reports for a tag:
`HEAD /v2/<name>/manifests/<tag>` asking for index types first, so a multi-arch
image yields the digest of its index.

Credentials go only to the registry's own origin and to the token realm it names:
redirects are followed here, not by httpx, and the Authorization header is dropped
as soon as a request leaves the origin it was meant for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import httpx
from docker.auth import INDEX_NAME, resolve_index_name, resolve_repository_name
from docker.errors import InvalidRepository
from docker.utils import parse_repository_tag

from providers.base import (
    DEFAULT_TIMEOUT_SECONDS,
    ImageProvider,
    ImageReference,
    InvalidSource,
    NotFound,
    ProviderError,
    RegistryAuth,
    Unauthorized,
    Unavailable,
    redact,
    verifying_tls,
)
from providers.failures import causes, proxy_problem, proxy_refused
from providers.sessions import SharedClients, cookieless

DOCKER_HUB = "registry-1.docker.io"
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
DOCKERCFG = "kubernetes.io/dockercfg"

_SECRET_KEYS = {DOCKERCONFIGJSON: ".dockerconfigjson", DOCKERCFG: ".dockercfg"}
_DOCKER_HUB_HOSTS = (INDEX_NAME, f"index.{INDEX_NAME}", DOCKER_HUB)
_REFERENCE_EXAMPLE = "ghcr.io/OWNER/APP:TAG, localhost:5000/app:v1 or nginx:1.27"
_MAX_NAME_LENGTH = 255
# A reference is quoted in messages up to this length, so that the advice after it is seen.
_SHOWN_CHARACTERS = 300
_MAX_REDIRECTS = 5
# The distribution spec caps manifests at 4 MiB; a token answer is far smaller.
_MAX_BODY_BYTES = 4 * 1024 * 1024
_DEFAULT_TOKEN_SECONDS = 60
_TOKEN_EARLY_SECONDS = 10

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"\w[\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128}")
_CHALLENGE_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def parse_reference(text: str) -> ImageReference:
    """The registry, repository, tag and digest an image reference names, as Docker reads it.

    Pure: no I/O. Raises InvalidSource naming the value and an example."""
    value = text.strip()
    if not value or any(character.isspace() for character in value):
        raise _invalid_reference(text, "it is empty or contains spaces")
    named, _, digest = value.rpartition("@") if "@" in value else (value, "", "")
    if digest and not _DIGEST.fullmatch(digest):
        raise _invalid_reference(text, "the digest after '@' must be sha256: and 64 lowercase hex digits")
    name, tag = parse_repository_tag(named)
    host, repository = _host_and_repository(text, name)
    if tag is not None and not _TAG.fullmatch(tag):
        raise _invalid_reference(text, "the tag may hold only letters, digits, '_', '.' and '-', "
                                       "at most 128 of them")
    if host == INDEX_NAME:
        host = DOCKER_HUB
        repository = repository if "/" in repository else f"library/{repository}"
    return ImageReference(host, repository, tag or "latest", digest)


def _host_and_repository(text: str, name: str) -> tuple[str, str]:
    if "://" in name:
        raise _invalid_reference(text, "an image reference has no scheme such as https://")
    try:
        host, repository = resolve_repository_name(name)
    except InvalidRepository:
        raise _invalid_reference(text, "the registry host is not valid") from None
    if not _HOST.fullmatch(host):
        raise _invalid_reference(text, f"{host!r} is not a registry host")
    if repository != repository.lower():
        raise _invalid_reference(text, "the repository name must be lowercase")
    if not _REPOSITORY.fullmatch(repository):
        raise _invalid_reference(text, "the repository name must be lowercase letters and digits "
                                       "separated by '/', '.', '_' or '-'")
    if len(name) > _MAX_NAME_LENGTH:
        raise _invalid_reference(text, f"the name is longer than {_MAX_NAME_LENGTH} characters")
    return host, repository


def _invalid_reference(text: str, why: str) -> InvalidSource:
    shown = repr(text) if len(text) <= _SHOWN_CHARACTERS else f"{text[:_SHOWN_CHARACTERS]!r}..."
    return InvalidSource(f"image reference {shown} is not valid: {why}; write it as Docker does, "
                         f"e.g. {_REFERENCE_EXAMPLE}")


def auth_for(secret_type: str, data: Mapping[str, str], registry: str) -> RegistryAuth | None:
    """The credentials a docker config Secret holds for `registry`; None to pull anonymously.

    `data` is the Secret's `.data`, base64 values as the API server returns them.
    Pure: no I/O. Raises InvalidSource naming the key and what is wrong, never its content."""
    key = _SECRET_KEYS.get(secret_type)
    if key is None:
        raise InvalidSource(f"the Secret is of type {secret_type!r}: registry credentials need type "
                            f"{DOCKERCONFIGJSON} (or the older {DOCKERCFG}), as "
                            f"`kubectl create secret docker-registry` makes")
    entries = _auth_entries(key, data)
    server = _matching_server(entries, registry)
    return None if server is None else _credentials(key, server, entries[server])


def _auth_entries(key: str, data: Mapping[str, str]) -> dict[str, object]:
    encoded = data.get(key)
    if not encoded:
        raise InvalidSource(f"the Secret has no key {key!r}: recreate it with "
                            f"`kubectl create secret docker-registry`")
    try:
        config = json.loads(base64.b64decode(encoded, validate=True))
    except ValueError:  # not base64 (binascii.Error), not ASCII, not JSON
        raise InvalidSource(f"the Secret's key {key!r} is not base64-encoded JSON") from None
    except RecursionError:  # json's own bound on nesting, about 1,000 levels
        raise InvalidSource(f"the Secret's key {key!r} is JSON nested far deeper than a docker config "
                            f"is: recreate it with `kubectl create secret docker-registry`") from None
    entries = config.get("auths") if key == ".dockerconfigjson" and isinstance(config, dict) else config
    if not isinstance(entries, dict):
        shape = "an 'auths' mapping" if key == ".dockerconfigjson" else "a mapping of registries"
        raise InvalidSource(f"the Secret's key {key!r} does not hold {shape}")
    return entries


def _matching_server(entries: Mapping[str, object], registry: str) -> str | None:
    """The entry Docker would use: the registry's own name, else the first whose host matches."""
    if registry in entries:
        return registry
    wanted = _canonical_host(registry)
    return next((server for server in entries if _canonical_host(server) == wanted), None)


def _canonical_host(server: str) -> str:
    """`https://index.docker.io/v1/` and `http://host:5000/v2/` as `docker.io` and `host:5000`."""
    host: str = resolve_index_name(server.strip()).lower()
    return INDEX_NAME if host in _DOCKER_HUB_HOSTS else host


def _credentials(key: str, server: str, entry: object) -> RegistryAuth:
    where = f"the Secret's key {key!r}, entry {server!r}"
    if not isinstance(entry, dict):
        raise InvalidSource(f"{where} is not a mapping with 'auth' or 'username' and 'password'")
    auth = entry.get("auth")
    if auth:
        return _decoded_auth(where, auth)
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and isinstance(password, str) and username:
        return RegistryAuth(username, password)
    raise InvalidSource(f"{where} has neither 'auth' nor 'username' and 'password': "
                        f"write the registry user and password there")


def _decoded_auth(where: str, auth: object) -> RegistryAuth:
    text = auth if isinstance(auth, str) else ""  # a number or a list is no base64 either
    try:
        username, colon, password = base64.b64decode(text, validate=True).decode().partition(":")
    except ValueError:  # not base64 (binascii.Error), not ASCII, not UTF-8 once decoded
        username, colon, password = "", "", ""
    if not colon or not username:
        raise InvalidSource(f"{where}: 'auth' is not base64 of 'username:password'")
    return RegistryAuth(username, password)


@dataclass(frozen=True)
class Challenge:
    """How a registry asked to be authenticated: `basic`, or `bearer` with a token realm."""

    scheme: str
    realm: str = ""
    service: str = ""


def parse_challenge(headers: httpx.Headers) -> Challenge | None:
    """The first Basic or Bearer challenge among the WWW-Authenticate headers."""
    for header in headers.get_list("www-authenticate"):
        scheme, _, rest = header.strip().partition(" ")
        if scheme.lower() in ("basic", "bearer"):
            params = {name.lower(): quoted or bare for name, quoted, bare in _CHALLENGE_PARAM.findall(rest)}
            return Challenge(scheme.lower(), params.get("realm", ""), params.get("service", ""))
    return None


@dataclass(frozen=True)
class _Answer:
    """A registry's answer, read in full (up to the size limit) and closed."""

    status: int
    headers: httpx.Headers
    body: bytes
    elsewhere: bool = False  # answered by another origin, which a redirect led to


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    refresh_at: float


# Registries that do not answer HEAD say so with these; only then is the manifest fetched.
_HEAD_NOT_ANSWERED = (405, 501)


def _open_client(key: tuple[bool, float]) -> httpx.Client:
    insecure, timeout = key
    # Redirects are followed by _send, which decides where credentials may go.
    return httpx.Client(timeout=timeout, verify=False if insecure else verifying_tls(),
                        follow_redirects=False, cookies=cookieless(),
                        headers={"User-Agent": "openfunction-revision-controller"})


# One httpx client (and connection pool) per TLS setting: credentials go in each request.
_CLIENTS: SharedClients[tuple[bool, float], httpx.Client] = SharedClients(_open_client, httpx.Client.close)


class Provider(ImageProvider):
    """The shared httpx client, with the challenge and pull tokens kept across polls."""

    def __init__(self, registry: str, auth: RegistryAuth | None, insecure: bool,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(registry, auth, insecure, timeout)
        self._auth = auth
        self._clock = clock
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._lease = _CLIENTS.lease((insecure, timeout))
        self._client = self._lease.client

    def digest(self, reference: ImageReference) -> str:
        if reference.digest:
            return reference.digest
        path = f"/v2/{reference.repository}/manifests/{reference.tag}"
        with self._answering(reference):
            head = self._authorised("HEAD", path, reference)
            if head.status not in _HEAD_NOT_ANSWERED:
                if head.status != 200:
                    raise self._refusal(head, reference)
                reported: str = head.headers.get("docker-content-digest", "")
                if _DIGEST.fullmatch(reported):
                    return reported
            body = self._manifest("GET", path, reference).body
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def close(self) -> None:
        self._lease.end()

    def _manifest(self, method: str, path: str, reference: ImageReference) -> _Answer:
        answer = self._authorised(method, path, reference)
        if answer.status != 200:
            raise self._refusal(answer, reference)
        return answer

    def _authorised(self, method: str, path: str, reference: ImageReference) -> _Answer:
        """The answer, after one more try when a 401 named a way to authenticate we did not use."""
        scope = f"repository:{reference.repository}:pull"
        sent = self._authorization(scope, reference)
        answer = self._to_registry(method, path, sent)
        # Only the registry itself may name a realm to send the credentials to.
        challenge = parse_challenge(answer.headers) if answer.status == 401 and not answer.elsewhere else None
        if challenge is None:
            return answer
        self._challenge = challenge
        self._tokens.pop((challenge.realm, challenge.service, scope), None)
        fresh = self._authorization(scope, reference)
        return answer if fresh is None or fresh == sent else self._to_registry(method, path, fresh)

    def _authorization(self, scope: str, reference: ImageReference) -> str | None:
        """The Authorization header the registry's last challenge asks for; None for none."""
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "bearer":
            return "Bearer " + self._token(challenge, scope, reference)
        return _basic(self._auth) if self._auth else None

    def _to_registry(self, method: str, path: str, authorization: str | None) -> _Answer:
        """Over https; with insecure, over unverified https and then plain http, as Docker
        treats insecure registries."""
        try:
            return self._send(method, f"https://{self.registry}{path}", authorization)
        except httpx.ConnectError:
            if not self.insecure:
                raise
        return self._send(method, f"http://{self.registry}{path}", authorization)

    def _token(self, challenge: Challenge, scope: str, reference: ImageReference) -> str:
        key = (challenge.realm, challenge.service, scope)
        cached = self._tokens.get(key)
        if cached and self._clock() < cached.refresh_at:
            return cached.value
        answer = self._send("GET", self._realm_url(challenge, scope, reference),
                            _basic(self._auth) if self._auth else None)
        if answer.status != 200:
            raise self._refusal(answer, reference, at_realm=True)
        token = _read_token(answer, self._clock(), reference)
        self._tokens[key] = token
        return token.value

    def _realm_url(self, challenge: Challenge, scope: str, reference: ImageReference) -> httpx.URL:
        try:
            realm = httpx.URL(challenge.realm)
        except httpx.InvalidURL:
            realm = httpx.URL()
        if realm.scheme not in ("http", "https") or not realm.host:
            raise Unavailable(f"image {reference.describe()}: the registry named no usable token realm "
                              f"in its Bearer challenge")
        if realm.scheme == "http" and self._auth and not self.insecure:
            raise ProviderError(f"image {reference.describe()}: the registry's token realm "
                                f"{redact(str(realm))} is plain http, and credentials are sent only over "
                                f"https: serve the realm over https, or set insecure-registry: true if "
                                f"this is intended")
        params = {"scope": scope, **({"service": challenge.service} if challenge.service else {})}
        return realm.copy_merge_params(params)

    def _send(self, method: str, url: str | httpx.URL, authorization: str | None) -> _Answer:
        """Follows redirects; Authorization goes only to the origin of the first URL."""
        target = httpx.URL(url)
        origin = _origin(target)
        for _ in range(_MAX_REDIRECTS + 1):
            headers = {"Accept": ", ".join(MANIFEST_TYPES)}
            if authorization and _origin(target) == origin:
                headers["Authorization"] = authorization
            answer, location = self._exchange(self._client.build_request(method, target, headers=headers))
            if location is None:
                return replace(answer, elsewhere=_origin(target) != origin)
            target = location
        raise httpx.TooManyRedirects("too many redirects", request=None)

    def _exchange(self, request: httpx.Request) -> tuple[_Answer, httpx.URL | None]:
        response = self._client.send(request, stream=True)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > _MAX_BODY_BYTES:
                    raise httpx.DecodingError("the answer is larger than a manifest may be",
                                              request=request)
        finally:
            response.close()
        location = response.next_request.url if response.next_request else None
        return _Answer(response.status_code, response.headers, bytes(body)), location

    def _refusal(self, answer: _Answer, reference: ImageReference, *,
                 at_realm: bool = False) -> ProviderError:
        subject = f"image {reference.describe()}"
        status = answer.status
        where = "the registry's token server" if at_realm else "the registry"
        if status in (401, 403):
            return Unauthorized(f"{subject}: {where} {self._refused(status, reference)}")
        if status == 404 and not at_realm:
            return NotFound(f"{subject}: no such image or tag (HTTP 404): check the repository "
                            f"and the tag, and that the image was pushed")
        if status == 429:
            hint = "" if self._auth else ": anonymous pulls get a low limit: set spec.imageCredentials"
            return Unavailable(f"{subject}: rate limited by {where} (HTTP 429){hint}")
        if status >= 500:
            return Unavailable(f"{subject}: {where} failed (HTTP {status})")
        if status == 407:
            return proxy_refused(subject)
        return ProviderError(f"{subject}: unexpected answer from {where} (HTTP {status})")

    def _refused(self, status: int, reference: ImageReference) -> str:
        what = "refused the credentials in imageCredentials" if status == 401 else "denied access"
        if self._auth:
            return (f"{what} (HTTP {status}): check the user and password in the Secret's entry "
                    f"for {self.registry}, and that they may pull {reference.repository}")
        return (f"needs credentials (HTTP {status}): set spec.imageCredentials to a "
                f"{DOCKERCONFIGJSON} Secret with an entry for {self.registry}, or check that "
                f"the image exists")

    @contextmanager
    def _answering(self, reference: ImageReference) -> Iterator[None]:
        subject = f"image {reference.describe()}"
        try:
            yield
        except httpx.TimeoutException:
            raise Unavailable(f"{subject}: no answer from the registry within {self.timeout:g}s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise Unavailable(f"{subject}: {_unreachable(error, f'https://{self.registry}')}") from None


def _unreachable(error: Exception, url: str) -> str:
    chain = list(causes(error))
    through_proxy = proxy_problem(error, url)
    if through_proxy:
        return through_proxy
    if any(isinstance(cause, ssl.SSLCertVerificationError) for cause in chain):
        return ("the registry's TLS certificate could not be verified: if the registry uses a "
                "self-signed certificate, set insecure-registry: true")
    if any(isinstance(cause, ssl.SSLError) for cause in chain):
        return ("the TLS handshake with the registry failed: if the registry serves plain HTTP, "
                "set insecure-registry: true")
    if isinstance(error, httpx.TooManyRedirects):
        return "the registry redirected too many times"
    if isinstance(error, httpx.DecodingError):
        return "the registry's answer could not be read"
    return f"cannot reach the registry ({type(chain[-1]).__name__})"


def _read_token(answer: _Answer, now: float, reference: ImageReference) -> _Token:
    try:
        document = json.loads(answer.body)
        value = document.get("token") or document.get("access_token")
        lifetime = int(document.get("expires_in") or _DEFAULT_TOKEN_SECONDS)
    except (ValueError, TypeError, AttributeError):
        value, lifetime = None, 0
    if not isinstance(value, str) or not value:
        raise Unavailable(f"image {reference.describe()}: the registry's token server answered "
                          f"without a token")
    early = min(_TOKEN_EARLY_SECONDS, lifetime / 2)
    return _Token(value, now + lifetime - early)


def _basic(auth: RegistryAuth) -> str:
    return "Basic " + base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode("ascii")


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default_port = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default_port

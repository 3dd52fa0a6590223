"""A repository's refs over git's smart HTTP protocol, read the way `git ls-remote` reads them.

The first contact with a server is `GET info/refs` with `Git-Protocol: version=2`.
A protocol v2 server answers with its capabilities, which are remembered for the
server (scheme, host and port), so that from then on every question about any
repository there is ONE `POST git-upload-pack` carrying an `ls-refs` command that
names the one ref wanted. A server that speaks only v0 answers with its whole ref
advertisement, which is read instead, on every poll.
"""

from __future__ import annotations

import email.utils
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import httpx

from providers.base import ProviderError, verifying_tls
from providers.failures import Subject, bad_answer, for_status, throttled, timed_out, unreachable
from providers.sessions import SharedClients, cookieless

# Hosts ignore the user name when the password is a token; some want one anyway.
USERNAME = "git"
# Hosts answer smart HTTP only to user agents starting with "git/"; libgit2 does the same.
USER_AGENT = "git/2.0 (openfunction-revision-controller)"
AGENT = "openfunction-revision-controller"
MAX_REDIRECTS = 5
MAX_PKT_LINE = 65520
MAX_ANSWER_BYTES = 4 * 1024 * 1024

_ADVERTISEMENT = "application/x-git-upload-pack-advertisement"
_REQUEST = "application/x-git-upload-pack-request"
_RESULT = "application/x-git-upload-pack-result"
_V2 = "version=2"
_FLUSH = b"0000"
_DELIM = b"0001"
_SYMREF_TARGET = "symref-target:"
_OID = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")  # sha1, sha256
_PKT_LENGTH = re.compile(rb"[0-9a-fA-F]{4}")


@dataclass(frozen=True)
class Ref:
    """One ref the server listed; `symref_target` is set when it is a symbolic ref (HEAD)."""

    name: str
    oid: str
    symref_target: str = ""


@dataclass(frozen=True)
class Protocol:
    """What a server said it speaks: version 0, or version 2 and its capabilities."""

    version: int
    capabilities: dict[str, str] = field(default_factory=dict)

    def request_lines(self) -> list[str]:
        """The capability lines an ls-refs request sends: only what the server advertised."""
        lines = ["command=ls-refs"]
        if "agent" in self.capabilities:
            lines.append(f"agent={AGENT}")
        if self.capabilities.get("object-format"):
            lines.append(f"object-format={self.capabilities['object-format']}")
        return lines


class KnownServers:
    """The protocol each server (scheme://host:port) speaks, shared by every repository on it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._protocols: dict[str, Protocol] = {}

    def get(self, origin: str) -> Protocol | None:
        with self._lock:
            return self._protocols.get(origin)

    def remember(self, origin: str, protocol: Protocol) -> None:
        with self._lock:
            self._protocols[origin] = protocol

    def forget(self, origin: str | None = None) -> None:
        """Forget one server, or every server."""
        with self._lock:
            if origin is None:
                self._protocols.clear()
            else:
                self._protocols.pop(origin, None)


SERVERS = KnownServers()


def ls_refs_request(protocol: Protocol, prefix: str, *, symrefs: bool) -> bytes:
    """The body of a protocol v2 `ls-refs` request for the refs starting with `prefix`."""
    arguments = (["symrefs"] if symrefs else []) + [f"ref-prefix {prefix}"]
    return (b"".join(pkt_line(line) for line in protocol.request_lines()) + _DELIM
            + b"".join(pkt_line(line) for line in arguments) + _FLUSH)


def pkt_line(text: str) -> bytes:
    data = text.encode() + b"\n"
    return f"{len(data) + 4:04x}".encode() + data


class Malformed(Exception):
    """The answer is not what the protocol says it should be."""


def pkt_lines(data: bytes) -> list[bytes | None]:
    """The packets in `data`, each without its trailing newline; None for a flush (or a
    delimiter or response end, which these answers do not use)."""
    packets: list[bytes | None] = []
    position = 0
    while position < len(data):
        length = _pkt_length(data[position:position + 4])
        if length < 4:
            packets.append(None)
            position += 4
            continue
        if position + length > len(data):
            raise Malformed("truncated pkt-line")
        packets.append(data[position + 4:position + length].removesuffix(b"\n"))
        position += length
    return packets


def _pkt_length(header: bytes) -> int:
    if not _PKT_LENGTH.fullmatch(header):
        raise Malformed(f"bad pkt-line length {header!r}")
    length = int(header, 16)
    if length in (0, 1, 2):
        return 0
    if length < 4 or length > MAX_PKT_LINE:
        raise Malformed(f"bad pkt-line length {header!r}")
    return length


class _NotUnderstood(Exception):
    """A POST that a server remembered as v2 did not get a v2 answer."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _open_client(timeout: float) -> httpx.Client:
    return httpx.Client(timeout=timeout, verify=verifying_tls(), follow_redirects=True,
                        max_redirects=MAX_REDIRECTS, headers={"User-Agent": USER_AGENT},
                        cookies=cookieless())


# One httpx client (and connection pool) for every repository: credentials go in each request.
_CLIENTS: SharedClients[float, httpx.Client] = SharedClients(_open_client, httpx.Client.close)


class Remote:
    """One repository's refs, over the shared connection pool.

    A user and password written into the URL are moved into the Authorization
    header (a `token`, when given, wins); they go only to the URL's own host."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self._url, self._auth = _without_credentials(url.strip().rstrip("/"), token)
        self._credentials_origin = _origin(self._url)
        self._has_token = bool(token)
        self.timeout = timeout
        self._lease = _CLIENTS.lease(timeout)
        self._client = self._lease.client

    def ref(self, name: str, subject: Subject, *, symrefs: bool = False) -> Ref | None:
        """The ref named exactly `name` (`refs/heads/main`, `HEAD`), None if there is none.

        With `symrefs`, a symbolic ref carries its target."""
        try:
            return _named(self._refs(name, symrefs, subject), name)
        except httpx.TimeoutException:
            raise timed_out(subject, self.timeout) from None
        except httpx.TooManyRedirects:
            raise ProviderError(f"{subject}: more than {MAX_REDIRECTS} redirects") from None
        except httpx.HTTPError as error:
            raise unreachable(subject, error) from None
        except Malformed:
            raise bad_answer(subject) from None

    def close(self) -> None:
        self._lease.end()

    def _refs(self, prefix: str, symrefs: bool, subject: Subject) -> list[Ref]:
        known = SERVERS.get(_origin(self._url))
        if known is not None and known.version == 2:
            try:
                return self._ls_refs(known, prefix, symrefs, subject)
            except (_NotUnderstood, Malformed):
                SERVERS.forget(_origin(self._url))
        protocol, advertised = self._discover(subject)
        if protocol.version != 2:
            return advertised
        try:
            return self._ls_refs(protocol, prefix, symrefs, subject)
        except _NotUnderstood as refused:
            if refused.status == 200:
                raise bad_answer(subject) from None
            raise for_status(refused.status, subject, has_token=self._has_token) from None

    def _discover(self, subject: Subject) -> tuple[Protocol, list[Ref]]:
        """Ask the server what it speaks; a v0 server answers with every ref it has."""
        url = f"{self._url}/info/refs?service=git-upload-pack"
        with self._request("GET", url, {"Git-Protocol": _V2}) as response:
            self._check_status(response, subject)
            if _content_type(response) != _ADVERTISEMENT:
                raise ProviderError(f"{subject}: the server does not speak git's smart HTTP "
                                    "protocol: is the URL the repository's clone URL?")
            answer = _read(response)
            self._follow(response.url)
        protocol, refs = read_advertisement(pkt_lines(answer))
        SERVERS.remember(_origin(self._url), protocol)
        return protocol, refs

    def _ls_refs(self, protocol: Protocol, prefix: str, symrefs: bool,
                 subject: Subject) -> list[Ref]:
        headers = {"Git-Protocol": _V2, "Content-Type": _REQUEST, "Accept": _RESULT}
        body = ls_refs_request(protocol, prefix, symrefs=symrefs)
        with self._request("POST", f"{self._url}/git-upload-pack", headers, body) as response:
            if response.status_code in (401, 404, 429) or _retry_after(response) is not None:
                self._check_status(response, subject)
            if response.status_code != 200 or _content_type(response) != _RESULT:
                raise _NotUnderstood(response.status_code)
            answer = _read(response)
        try:
            return read_ls_refs(pkt_lines(answer))
        except Malformed:
            raise _NotUnderstood(200) from None

    @contextmanager
    def _request(self, method: str, url: str, headers: dict[str, str],
                 body: bytes | None = None) -> Iterator[httpx.Response]:
        auth = self._auth if _may_carry_credentials(url, self._credentials_origin) else None
        with self._client.stream(method, url, headers=headers, content=body,
                                 auth=auth) as response:
            yield response

    def _check_status(self, response: httpx.Response, subject: Subject) -> None:
        status = response.status_code
        if status == 200:
            return
        retry_after = _retry_after(response)
        if status in (429, 503) and retry_after is not None:
            raise throttled(subject, status, retry_after, has_token=self._has_token)
        raise for_status(status, subject, has_token=self._has_token)

    def _follow(self, final: httpx.URL) -> None:
        """Later requests go where the advertisement was redirected to, as git's do."""
        base = str(final.copy_with(query=None, fragment=None))
        if base.endswith("/info/refs"):
            self._url = base.removesuffix("/info/refs")


def read_advertisement(packets: list[bytes | None]) -> tuple[Protocol, list[Ref]]:
    """The answer to `GET info/refs`: v2 capabilities, or a v0 ref advertisement."""
    if packets and packets[0] is not None and packets[0].startswith(b"# service="):
        packets = packets[2:] if len(packets) > 1 and packets[1] is None else packets[1:]
    if packets and packets[0] == b"version 2":
        return Protocol(2, _capabilities(packets[1:])), []
    if packets and packets[0] == b"version 1":
        packets = packets[1:]
    return Protocol(0), _v0_refs(packets)


def _capabilities(packets: list[bytes | None]) -> dict[str, str]:
    capabilities: dict[str, str] = {}
    for packet in _until_flush(packets):
        name, _, value = _text(packet).partition("=")
        capabilities[name] = value
    if "ls-refs" not in capabilities:
        raise Malformed("a v2 server without ls-refs")
    return capabilities


def _v0_refs(packets: list[bytes | None]) -> list[Ref]:
    refs: list[Ref] = []
    symrefs: dict[str, str] = {}
    for index, packet in enumerate(_until_flush(packets)):
        line, _, capabilities = packet.partition(b"\0")
        if index == 0:
            symrefs = _symrefs(_text(capabilities))
        oid, name = _oid_and_name(_text(line).split(" "))
        if not name.endswith("^{}"):
            refs.append(Ref(name, oid, symrefs.get(name, "")))
    return refs


def _symrefs(capabilities: str) -> dict[str, str]:
    pairs = (word.removeprefix("symref=").partition(":") for word in capabilities.split()
             if word.startswith("symref="))
    return {name: target for name, _, target in pairs}


def read_ls_refs(packets: list[bytes | None]) -> list[Ref]:
    """The answer to a v2 `ls-refs`: `<oid> <name>[ symref-target:<t>][ peeled:<oid>]`."""
    refs: list[Ref] = []
    for packet in _until_flush(packets):
        words = _text(packet).split(" ")
        oid, name = _oid_and_name(words[:2])
        targets = [w.removeprefix(_SYMREF_TARGET) for w in words[2:] if w.startswith(_SYMREF_TARGET)]
        refs.append(Ref(name, oid, targets[0] if targets else ""))
    return refs


def _until_flush(packets: list[bytes | None]) -> Iterator[bytes]:
    for packet in packets:
        if packet is None:
            return
        yield packet
    raise Malformed("no flush at the end")


def _oid_and_name(words: list[str]) -> tuple[str, str]:
    if len(words) != 2 or not _OID.fullmatch(words[0]) or not words[1]:
        raise Malformed("not a ref line")
    return words[0].lower(), words[1]


def _text(packet: bytes) -> str:
    try:
        return packet.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None


def _named(refs: list[Ref], name: str) -> Ref | None:
    """The ref with exactly this name: the prefix refs/heads/main also matches main2."""
    return next((ref for ref in refs if ref.name == name), None)


def _read(response: httpx.Response) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise Malformed("answer too large")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise Malformed("answer too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _content_type(response: httpx.Response) -> str:
    value: str = response.headers.get("Content-Type", "")
    return value.partition(";")[0].strip().lower()


def _retry_after(response: httpx.Response) -> float | None:
    return seconds_to_wait(response.headers.get("Retry-After", ""))


def seconds_to_wait(retry_after: str) -> float | None:
    """Seconds a server asks to wait, from a Retry-After header (seconds or an HTTP date)."""
    value = retry_after.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def split_credentials(url: str, token: str | None) -> tuple[str, tuple[str, str] | None]:
    """The URL without the user and password written into it, and the (user, password) to send
    its host: the token as the password when there is one, else what the URL carried."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    bare = parts._replace(netloc=host).geturl() if at else url
    if token:
        return bare, (USERNAME, token)
    user, _, password = userinfo.partition(":")
    return bare, (unquote(user), unquote(password)) if user or password else None


def _without_credentials(url: str, token: str | None) -> tuple[str, httpx.BasicAuth | None]:
    bare, credentials = split_credentials(url, token)
    return bare, httpx.BasicAuth(*credentials) if credentials else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _may_carry_credentials(url: str, credentials_origin: str) -> bool:
    """Only to the server they were given for, also once it moved from http to https."""
    origin = _origin(url)
    host = credentials_origin.removeprefix("http://").removesuffix(":80")
    return origin in (credentials_origin, f"https://{host}:443")

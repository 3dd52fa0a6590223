"""Which files changed between two commits, read from a branch's recent history over git's smart
HTTP protocol, as `git fetch --depth=100 --filter=blob:none` would read it, without a working tree.

One fetch asks for the head commit and the `HISTORY_DEPTH` commits before it, with their trees
and, where the server serves partial clones (GitHub, GitLab, git with `uploadpack.allowFilter`),
no file contents; a server that serves no filter sends the contents too. The answer is kept in
memory, at most `MAX_PACK_BYTES`, never on disk, and read lazily: of the trees, only those that
differ between the two commits are unpacked. The recorded commit (the base) found among the
head's ancestors, the two commits' trees are compared; not found, the answer is uncertain.

Credentials go only to the repository's own origin (scheme, host and port): dulwich's client
leaves them out of any request elsewhere, and urllib3 drops them from a redirect elsewhere.
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import urllib3
from dulwich.client import Urllib3HttpGitClient
from dulwich.diff_tree import tree_changes
from dulwich.errors import ApplyDeltaError, ChecksumMismatch, GitProtocolError, ObjectFormatException
from dulwich.object_format import get_object_format
from dulwich.object_store import MemoryObjectStore, ObjectStoreGraphWalker
from dulwich.objects import Commit, ObjectID, RawObjectID, ShaFile
from dulwich.pack import MemoryPackIndex, Pack, PackData, PackIndexEntry

from providers import smarthttp
from providers.base import ChangedFiles, ProviderError, Unavailable, verifying_tls
from providers.changes import MAX_FILES, short
from providers.failures import Subject, bad_answer, causes, for_status, throttled, timed_out, unreachable
from providers.proxies import proxy_for
from providers.sessions import SharedClients

if TYPE_CHECKING:
    from dulwich.client import HTTPResponse

# How far back from the head the recorded commit is looked for. Each poll that moved the
# head compares; a hundred commits between two polls is a busy monorepo's day.
HISTORY_DEPTH = 100
# The answer is held in memory (the daemon's pod has 256 MiB, and /tmp 16 MiB). Trees alone, a
# repository of a hundred thousand files sends a few MiB; with the contents (a server without
# filters), the whole checkout must fit.
MAX_PACK_BYTES = 32 * 1024 * 1024
# The whole fetch, however steadily the server answers, takes at most this many timeouts.
DEADLINE_IN_TIMEOUTS = 6
_FILTER = b"blob:none"
_ADVERTISEMENT = "application/x-git-upload-pack-advertisement"
# What dulwich and urllib3 raise when an answer cannot be read, the pack's included.
_UNREADABLE = (GitProtocolError, urllib3.exceptions.HTTPError, OSError, ValueError, LookupError,
               AssertionError, zlib.error, ApplyDeltaError, ChecksumMismatch, ObjectFormatException)


class _Refused(Exception):
    """The server answered with another status than 200."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


class _NotSmart(Exception):
    """The server answered `info/refs` with something other than a smart HTTP advertisement."""


class _TooLarge(Exception):
    """The answers of one fetch went past its budget of bytes."""


class _TooSlow(Exception):
    """The answers of one fetch were still coming at its deadline."""


@dataclass
class _Budget:
    """What one fetch may still read, and until when."""

    bytes_left: int
    deadline: float

    def bounded(self, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        def read_within_budget(size: int) -> bytes:
            if time.monotonic() > self.deadline:
                raise _TooSlow
            data = read(size)
            self.bytes_left -= len(data)
            if self.bytes_left < 0:
                raise _TooLarge
            return data
        return read_within_budget


@dataclass(frozen=True)
class _PoolKey:
    timeout: float
    proxy: str | None = field(default=None, repr=False)  # its URL may carry a password


def _open_pool(key: _PoolKey) -> urllib3.PoolManager:
    retries = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0,
                            redirect=smarthttp.MAX_REDIRECTS)
    headers = {"User-Agent": smarthttp.USER_AGENT}
    per_pool: dict[str, Any] = {"maxsize": 4, "ssl_context": verifying_tls(), "retries": retries,
                                "timeout": urllib3.Timeout(connect=key.timeout, read=key.timeout)}
    if key.proxy is None:
        return urllib3.PoolManager(num_pools=32, headers=headers, **per_pool)
    auth = urllib3.util.parse_url(key.proxy).auth
    proxy_headers = urllib3.make_headers(proxy_basic_auth=unquote(auth)) if auth else None
    return urllib3.ProxyManager(key.proxy, num_pools=32, headers=headers, proxy_headers=proxy_headers, **per_pool)


# One connection pool for every repository (per proxy): dulwich adds the credentials to each request.
_POOLS: SharedClients[_PoolKey, urllib3.PoolManager] = SharedClients(_open_pool, urllib3.PoolManager.clear)


class _Client(Urllib3HttpGitClient):
    """dulwich's client, each answer checked before dulwich reads it, and read within a budget."""

    def __init__(self, url: str, credentials: tuple[str, str] | None, pool: urllib3.PoolManager,
                 budget: _Budget) -> None:
        user, password = credentials or (None, None)
        # Thin packs (dulwich's server requires them) delta against what the client has: nothing.
        super().__init__(url, pool_manager=pool, username=user, password=password, quiet=True)
        self._budget = budget

    def _http_request(self, url: str, headers: dict[str, str] | None = None,
                      data: bytes | Iterator[bytes] | None = None,
                      raise_for_status: bool = True) -> tuple[HTTPResponse, Callable[[int], bytes]]:
        response, read = super()._http_request(url, headers, data, raise_for_status=False)
        status, content_type = response.status, response.headers.get("Content-Type", "")
        retry_after = smarthttp.seconds_to_wait(response.headers.get("Retry-After", ""))
        if status != 200:
            response.close()
            raise _Refused(status, retry_after)
        if "/info/refs" in url and content_type.partition(";")[0].strip().lower() != _ADVERTISEMENT:
            response.close()
            raise _NotSmart
        return response, self._budget.bounded(read)

    @staticmethod
    def _warn_filter_objects() -> None:
        """dulwich warns in the log whenever a server serves no filter: here that is expected."""


class Remote:
    """One repository's history, over the shared connection pool.

    A user and password written into the URL are sent as Basic credentials (a `token`, when
    given, wins, as the password); only to the URL's own origin."""

    def __init__(self, url: str, token: str | None, timeout: float, *,
                 max_pack_bytes: int = MAX_PACK_BYTES) -> None:
        self._url, self._credentials = smarthttp.split_credentials(url.strip().rstrip("/"), token)
        self._has_token = bool(token)
        self.timeout = timeout
        self.max_pack_bytes = max_pack_bytes
        self._lease = _POOLS.lease(_PoolKey(timeout, proxy_for(self._url)))

    def changed_files(self, base: str, head: str, subject: Subject) -> ChangedFiles:
        """As `GitProvider.changed_files`; `subject` names the repository in errors."""
        if base.lower() == head.lower():
            return ChangedFiles()
        received, object_format = self._fetch(head.lower(), subject)
        try:
            return compare(_PackStore(_pack(received, object_format)), base.lower(), head.lower())
        except _UNREADABLE:
            raise bad_answer(subject) from None

    def close(self) -> None:
        self._lease.end()

    def _fetch(self, head: str, subject: Subject) -> tuple[io.BytesIO, str | None]:
        """The pack the server sent for `head` and its history, and the object format it uses."""
        budget = _Budget(self.max_pack_bytes, time.monotonic() + DEADLINE_IN_TIMEOUTS * self.timeout)
        client = _Client(self._url, self._credentials, self._lease.client, budget)
        received = io.BytesIO()
        try:
            result = client.fetch_pack(
                "", lambda refs, depth=None: [ObjectID(head.encode("ascii"))],
                ObjectStoreGraphWalker([], lambda sha: []), received.write,
                depth=HISTORY_DEPTH, ref_prefix=[b"HEAD"], filter_spec=_FILTER)
            return received, result.object_format
        except _Refused as refused:
            raise self._refused(refused, subject) from None
        except _NotSmart:
            raise ProviderError(f"{subject}: the server does not speak git's smart HTTP protocol: is "
                                "the URL the repository's clone URL?") from None
        except _TooLarge:
            raise ProviderError(f"{subject}: the history of the newest {HISTORY_DEPTH} commits is larger "
                                f"than {self.max_pack_bytes / 2**20:g} MiB (a server that serves no "
                                "partial clone filter sends the files' contents too)") from None
        except _TooSlow:
            raise Unavailable(f"{subject}: the history of the newest {HISTORY_DEPTH} commits did not "
                              f"arrive within {DEADLINE_IN_TIMEOUTS * self.timeout:g}s") from None
        except _UNREADABLE as error:
            raise _failure(error, subject, self.timeout, head) from None

    def _refused(self, refused: _Refused, subject: Subject) -> ProviderError:
        if refused.status in (429, 503) and refused.retry_after is not None:
            return throttled(subject, refused.status, refused.retry_after, has_token=self._has_token)
        return for_status(refused.status, subject, has_token=self._has_token)


def _failure(error: BaseException, subject: Subject, timeout: float, head: str) -> ProviderError:
    """What a failed fetch means: the network failed, or the server would not send the head (its
    `ERR` answer, or a hang-up): it no longer has that commit at a branch tip, or it cannot send a
    shallow history."""
    chain = list(causes(error))
    if any(isinstance(cause, urllib3.exceptions.ResponseError) for cause in chain):
        return ProviderError(f"{subject}: more than {smarthttp.MAX_REDIRECTS} redirects")
    timeouts = TimeoutError | urllib3.exceptions.TimeoutError
    # urllib3's NewConnectionError (refused, no route) is a timeout error, for compatibility.
    if any(isinstance(cause, timeouts) and not isinstance(cause, urllib3.exceptions.NewConnectionError)
           for cause in chain):
        return timed_out(subject, timeout)
    if any(isinstance(cause, urllib3.exceptions.HTTPError | OSError) for cause in chain):
        return unreachable(subject, error)
    return Unavailable(f"{subject}: the server did not send the head commit {short(head)} and its "
                       "history; if the branch moved meanwhile, the next poll asks again")


def _pack(received: io.BytesIO, object_format: str | None) -> Pack:
    """The fetched pack, indexed in memory; its objects are unpacked when asked for."""
    pack = received.getvalue()
    received.close()  # the pack is kept once, not twice
    data = PackData.from_file(io.BytesIO(pack), get_object_format(object_format), len(pack))
    data.check()
    entries: list[PackIndexEntry] = list(data.sorted_entries())
    index = MemoryPackIndex(entries, data.object_format, data.get_stored_checksum())
    return Pack.from_objects(data, index)


class _PackStore(MemoryObjectStore):
    """An object store that reads its objects from one pack."""

    def __init__(self, pack: Pack) -> None:
        super().__init__(object_format=pack.object_format)
        self._pack = pack

    def __getitem__(self, name: ObjectID | RawObjectID) -> ShaFile:
        return self._pack[name]

    def __contains__(self, name: ObjectID) -> bool:
        return name in self._pack


def compare(store: MemoryObjectStore, base: str, head: str) -> ChangedFiles:
    """The paths that differ between the trees of `base` and `head`, if `base` is among the
    ancestors of `head` that `store` holds (the newest `HISTORY_DEPTH` when fetched)."""
    head_commit = _commit(store, ObjectID(head.encode("ascii")))
    if head_commit is None:
        raise LookupError(head)
    base_sha = ObjectID(base.encode("ascii"))
    base_commit = _commit(store, base_sha) if base_sha in _ancestors(store, head_commit.id) else None
    if base_commit is None:
        return ChangedFiles(uncertain=f"the recorded commit {short(base)} is not among the {HISTORY_DEPTH} "
                                      f"newest commits before the head {short(head)}: the history was "
                                      "rewritten (a force push), or the commit is older")
    paths: set[str] = set()
    for change in tree_changes(store, base_commit.tree, head_commit.tree):
        paths.update(entry.path.decode("utf-8", "replace")
                     for entry in (change.old, change.new) if entry is not None and entry.path is not None)
        if len(paths) > MAX_FILES:
            return ChangedFiles(files=tuple(sorted(paths)),
                                uncertain=f"more than {MAX_FILES} files changed from {short(base)} to {short(head)}")
    return ChangedFiles(files=tuple(sorted(paths)))


def _ancestors(store: MemoryObjectStore, head: ObjectID) -> set[ObjectID]:
    """The commits `store` holds that `head` descends from, and the head."""
    seen: set[ObjectID] = set()
    waiting = [head]
    while waiting:
        sha = waiting.pop()
        commit = None if sha in seen else _commit(store, sha)
        if commit is not None:
            seen.add(sha)
            waiting.extend(commit.parents)
    return seen


def _commit(store: MemoryObjectStore, sha: ObjectID) -> Commit | None:
    """The commit `sha`; None when the store does not hold it (it is beyond the fetched depth)."""
    if sha not in store:
        return None
    commit = store[sha]
    return commit if isinstance(commit, Commit) else None

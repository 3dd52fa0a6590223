"""A GitHub Enterprise stand-in: the REST v3 and GraphQL answers the daemon relies on.

Serves a `Forge` with GitHub Enterprise Server's layout (REST under `/api/v3`,
GraphQL at `/api/graphql`), its auth, error bodies, ETags and 304s, its
primary rate limits (REST "core" and GraphQL budgets, per token or, for
anonymous requests, per client address) and an optional secondary limit:

    with Forge() as forge, GitHubServer(forge, per_minute=100) as github:
        forge.create_repository("octo/hello")
        Github(base_url=github.api_url, auth=Auth.Token("t"))   # after forge.grant("t")
        github.graphql_url                                       # for batched head queries
"""

from __future__ import annotations

import base64
import collections
import json
import math
import re
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from revision_controller.testing.forge import (
    Allowance,
    Budget,
    BudgetedForgeServer,
    CommitInfo,
    Fault,
    FileChange,
    Forge,
    ForgeRepository,
    Reply,
    Request,
    authorization_token,
    conditional,
    iso_time,
    pages,
    phrase,
    segments,
    x_ratelimit_headers,
)
from revision_controller.testing.gitserver import basic_password

API_PATH = "/api/v3"
GRAPHQL_PATH = "/api/graphql"
QUERY_COST = 1
DOCS = "https://docs.github.com/rest"
_DOCS_COMMITS = "https://docs.github.com/rest/commits/commits"
_DOCS_BRANCH = "https://docs.github.com/rest/branches/branches#get-a-branch"
_DOCS_COMPARE = "https://docs.github.com/rest/commits/commits#compare-two-commits"
_DOCS_RATE_LIMIT = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
_DOCS_SECONDARY = _DOCS_RATE_LIMIT + "#about-secondary-rate-limits"
_DOCS_GRAPHQL = "https://docs.github.com/graphql"
COMPARE_MAX_FILES = 300  # GitHub lists no more files in a comparison, and says nothing of it
COMPARE_MAX_COMMITS = 250  # the commits an unpaginated comparison lists
SECONDARY_MESSAGE = ("You have exceeded a secondary rate limit. Please wait a few minutes before you try "
                     "again. If you reach out to GitHub Support for help, please include the request ID "
                     "0000:0000:0000000:0000000:00000000.")
_SHA_MEDIA_TYPE = re.compile(r"application/vnd\.github(?:\.v3)?\.sha\b")


class GitHubServer(BudgetedForgeServer):
    """GitHub Enterprise's API for `forge`, and git smart HTTP for its repositories.

    `limit` and `anonymous_limit` are the REST budgets per token and per client
    address for each `window_seconds`; `graphql_limit` the GraphQL points per
    token; `per_minute`, when set, the requests per credential per minute over
    which the secondary limit answers 403 with Retry-After. `max_compare_files` is how many
    files a comparison lists at most."""

    api_path = API_PATH
    max_compare_files = COMPARE_MAX_FILES

    def __init__(self, forge: Forge, *, limit: int = 5000, anonymous_limit: int = 60,
                 graphql_limit: int = 5000, per_minute: int | None = None,
                 window_seconds: float = 3600.0, host: str = "127.0.0.1") -> None:
        super().__init__(forge, limit=limit, anonymous_limit=anonymous_limit, window_seconds=window_seconds,
                         host=host)
        self.graphql = Budget(graphql_limit, window_seconds)
        self._per_minute = _PerMinute(per_minute) if per_minute is not None else None

    @property
    def graphql_url(self) -> str:
        return self.url + GRAPHQL_PATH

    def token_of(self, request: Request) -> str | None:
        return (authorization_token(request, "token", "bearer")
                or basic_password(request.header("Authorization")) or None)

    def answer(self, request: Request, token: str | None) -> Reply:
        credential, budget = self.charged(request, token)
        if token is not None and not self.forge.knows(token):
            return _error(401, "Bad credentials").with_headers(
                *x_ratelimit_headers(self.anonymous.peek(request.client), "core"))
        if request.path != GRAPHQL_PATH and segments(request.path, API_PATH) is None:
            return _error(404, "Not Found")  # a web page, not the API: no budget involved
        if request.path.rstrip("/") == API_PATH + "/rate_limit":
            return self._rate_limit(credential, budget, token)
        wait = self._per_minute.admit(credential) if self._per_minute else None
        if wait is not None:
            return self._secondary(403, budget.peek(credential), math.ceil(wait))
        if request.path == GRAPHQL_PATH:
            return self._graphql(request, token)
        allowance = budget.take(credential)
        if allowance is None:
            return self._exhausted(request, token, budget.peek(credential))
        reply = conditional(request, self._rest(request, token), weak=False)
        units = 1
        if reply.status == 304 and token is not None:  # GitHub does not charge authorized 304s
            allowance, units = budget.give_back(credential), 0
        return reply.with_headers(*x_ratelimit_headers(allowance, "core")).costing(units)

    def fault_reply(self, fault: Fault, request: Request, token: str | None) -> Reply:
        if request.path == GRAPHQL_PATH and token is not None:
            allowance, resource = self.graphql.peek(token), "graphql"
        else:
            credential, budget = self.charged(request, token)
            allowance, resource = budget.peek(credential), "core"
        if fault.secondary or fault.status == 429:
            reply = Reply.json(fault.status, {"message": SECONDARY_MESSAGE, "documentation_url": _DOCS_SECONDARY})
        else:
            reply = _error(fault.status, phrase(fault.status))
        return reply.with_headers(*x_ratelimit_headers(allowance, resource))

    def _rate_limit(self, credential: str, budget: Budget, token: str | None) -> Reply:
        core = budget.peek(credential)
        graphql = self.graphql.peek(token) if token is not None else Allowance(0, 0, core.reset)
        resources = {"core": _rate(core, "core"), "graphql": _rate(graphql, "graphql")}
        return Reply.json(200, {"resources": resources, "rate": resources["core"]},
                          *x_ratelimit_headers(core, "core"))

    def _secondary(self, status: int, allowance: Allowance, retry_after: int) -> Reply:
        return Reply.json(status, {"message": SECONDARY_MESSAGE, "documentation_url": _DOCS_SECONDARY},
                          ("Retry-After", str(retry_after)), *x_ratelimit_headers(allowance, "core"))

    def _exhausted(self, request: Request, token: str | None, allowance: Allowance) -> Reply:
        if token is not None:
            message = f"API rate limit exceeded for user ID {_user_id(token)}."
        else:
            message = (f"API rate limit exceeded for {request.client}. (But here's the good news: "
                       "Authenticated requests get a higher rate limit. Check out the documentation "
                       "for more details.)")
        return Reply.json(403, {"message": message, "documentation_url": _DOCS_RATE_LIMIT},
                          *x_ratelimit_headers(allowance, "core"))

    def _rest(self, request: Request, token: str | None) -> Reply:
        parts = segments(request.path, API_PATH)
        if parts is None or request.method not in ("GET", "HEAD"):
            return _error(404, "Not Found")
        if not parts:
            return Reply.json(200, self._root())
        if parts[0] != "repos" or len(parts) < 3:
            return _error(404, "Not Found")
        repository = self._readable(f"{unquote(parts[1])}/{unquote(parts[2])}", token)
        if repository is None:
            return _error(404, "Not Found")
        rest = [unquote(part) for part in parts[3:]]
        if not rest:
            return Reply.json(200, self._repository_document(repository, token))
        if rest == ["commits"]:
            return self._commits(request, repository)
        if rest[0] == "commits":
            return self._commit(request, repository, "/".join(rest[1:]))
        if rest[0] == "branches" and len(rest) > 1:
            return self._branch(repository, "/".join(rest[1:]))
        if rest[0] == "compare" and len(rest) > 1:
            return self._compare(request, repository, "/".join(rest[1:]))
        return _error(404, "Not Found")

    def _compare(self, request: Request, repository: ForgeRepository, basehead: str) -> Reply:
        base_ref, _, head_ref = basehead.partition("...")
        base, head = repository.resolve(base_ref), repository.resolve(head_ref)
        if not (base_ref and head_ref and base and head):
            return _error(404, "Not Found", _DOCS_COMPARE)
        merge_base = repository.merge_base(base, head)
        if merge_base is None:
            return _error(404, f"No common ancestor between {base_ref} and {head_ref}.", _DOCS_COMPARE)
        document, _ = comparison_document(request, repository, base, head, merge_base, self._urls(repository),
                                          self.max_compare_files)
        return Reply.json(200, document)

    def _readable(self, full_name: str, token: str | None) -> ForgeRepository | None:
        repository = self.forge.repository(full_name)
        if repository is None or repository.full_name.count("/") != 1:
            return None
        return repository if self.forge.can_read(token, repository) else None

    def _commits(self, request: Request, repository: ForgeRepository) -> Reply:
        if repository.is_empty():
            return _error(409, "Git Repository is empty.", _DOCS_COMMITS)
        sha = repository.resolve(request.query.get("sha") or repository.default_branch)
        if sha is None:
            return _error(404, "Not Found", _DOCS_COMMITS)
        page, per_page = pages(request)
        history = repository.history(sha, page * per_page + 1)
        shown = history[(page - 1) * per_page:page * per_page]
        reply = Reply.json(200, [self._commit_document(repository, info) for info in shown])
        if len(history) > page * per_page:
            link = f'<{self.api_url}/repos/{repository.full_name}/commits?sha={sha}&per_page={per_page}' \
                   f'&page={page + 1}>; rel="next"'
            reply = reply.with_headers(("Link", link))
        return reply

    def _commit(self, request: Request, repository: ForgeRepository, ref: str) -> Reply:
        if repository.is_empty():
            return _error(409, "Git Repository is empty.", _DOCS_COMMITS)
        sha = repository.resolve(ref) if ref else None
        if sha is None:
            return _error(422, f"No commit found for SHA: {ref}", _DOCS_COMMITS)
        if _SHA_MEDIA_TYPE.search(request.header("Accept")):
            return Reply(200, sha.encode(), (("Content-Type", "application/vnd.github.sha; charset=utf-8"),))
        return Reply.json(200, self._commit_document(repository, repository.info(sha)))

    def _branch(self, repository: ForgeRepository, branch: str) -> Reply:
        sha = repository.head(branch)
        if sha is None:
            return _error(404, "Branch not found", _DOCS_BRANCH)
        api, html = self._urls(repository)
        return Reply.json(200, {"name": branch, "commit": self._commit_document(repository, repository.info(sha)),
                                "_links": {"self": f"{api}/branches/{branch}", "html": f"{html}/tree/{branch}"},
                                "protected": False,
                                "protection": {"enabled": False, "required_status_checks": {
                                    "enforcement_level": "off", "contexts": [], "checks": []}},
                                "protection_url": f"{api}/branches/{branch}/protection"})

    def _urls(self, repository: ForgeRepository) -> tuple[str, str]:
        return f"{self.api_url}/repos/{repository.full_name}", f"{self.url}/{repository.full_name}"

    def _commit_document(self, repository: ForgeRepository, info: CommitInfo) -> dict[str, Any]:
        return commit_document(info, *self._urls(repository))

    def _repository_document(self, repository: ForgeRepository, token: str | None) -> dict[str, Any]:
        api, html = self._urls(repository)
        host = self.url.split("://", 1)[1]
        created = iso_time(repository.created_at)
        document: dict[str, Any] = {
            "id": repository.id, "node_id": _node_id("010:Repository", repository.id),
            "name": repository.name, "full_name": repository.full_name, "private": repository.private,
            "owner": self._owner_document(repository.owner), "html_url": html, "description": None,
            "fork": False, "url": api, "branches_url": api + "/branches{/branch}",
            "commits_url": api + "/commits{/sha}", "git_url": f"git://{host}/{repository.full_name}.git",
            "ssh_url": f"git@{host.split(':')[0]}:{repository.full_name}.git", "clone_url": html + ".git",
            "svn_url": html, "homepage": None, "size": 0, "default_branch": repository.default_branch,
            "visibility": "private" if repository.private else "public", "archived": False,
            "disabled": False, "created_at": created, "updated_at": created, "pushed_at": created}
        if token is not None:
            document["permissions"] = {"admin": False, "maintain": False, "push": False, "triage": False,
                                       "pull": True}
        return document

    def _owner_document(self, login: str) -> dict[str, Any]:
        owner_id = zlib.crc32(login.lower().encode()) & 0x7FFFFFF
        return {"login": login, "id": owner_id, "node_id": _node_id("004:User", owner_id),
                "url": f"{self.api_url}/users/{login}", "html_url": f"{self.url}/{login}",
                "type": "User", "site_admin": False}

    def _root(self) -> dict[str, str]:
        api = self.api_url
        return {"current_user_url": f"{api}/user", "rate_limit_url": f"{api}/rate_limit",
                "repository_url": f"{api}/repos/{{owner}}/{{repo}}",
                "user_url": f"{api}/users/{{user}}"}

    def _graphql(self, request: Request, token: str | None) -> Reply:
        if request.method != "POST":
            return _error(404, "Not Found")
        if token is None:
            return Reply.json(401, {"message": "This endpoint requires you to be authenticated.",
                                    "documentation_url": _DOCS_GRAPHQL})
        try:
            payload = json.loads(request.body)
        except ValueError:
            return Reply.json(400, {"message": "Problems parsing JSON", "documentation_url": _DOCS_GRAPHQL})
        try:
            operation = _operation(payload)
        except GraphQLError as error:
            return Reply.json(200, {"errors": [error.document()]},
                              *x_ratelimit_headers(self.graphql.peek(token), "graphql"))
        allowance = self.graphql.take(token, QUERY_COST)
        if allowance is None:
            return Reply.json(200, {"errors": [{
                "type": "RATE_LIMITED", "code": "graphql_rate_limit",
                "message": f"API rate limit already exceeded for user ID {_user_id(token)}."}]},
                *x_ratelimit_headers(self.graphql.peek(token), "graphql"))
        context = _Context(self, token, allowance, operation.variables)
        document: dict[str, Any] = {"data": _execute("Query", None, operation.selections, context, [])}
        if context.errors:
            document["errors"] = context.errors
        return Reply.json(200, document, *x_ratelimit_headers(allowance, "graphql")).costing(QUERY_COST)


def commit_document(info: CommitInfo, api_repository_url: str, html_repository_url: str) -> dict[str, Any]:
    """A commit as GitHub's REST API (and Gitee's, which copies it) describes it."""
    api, html = api_repository_url, html_repository_url

    def person(signature: Any) -> dict[str, str]:
        return {"name": signature.name, "email": signature.email, "date": signature.iso()}

    return {"sha": info.sha, "node_id": _node_id("006:Commit", int(info.sha[:12], 16)),
            "commit": {"author": person(info.author), "committer": person(info.committer),
                       "message": info.message, "tree": {"sha": info.tree, "url": f"{api}/git/trees/{info.tree}"},
                       "url": f"{api}/git/commits/{info.sha}", "comment_count": 0,
                       "verification": {"verified": False, "reason": "unsigned", "signature": None,
                                        "payload": None}},
            "url": f"{api}/commits/{info.sha}", "html_url": f"{html}/commit/{info.sha}",
            "comments_url": f"{api}/commits/{info.sha}/comments", "author": None, "committer": None,
            "parents": [{"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                        for p in info.parents]}


def comparison_document(request: Request, repository: ForgeRepository, base: str, head: str, merge_base: str,
                        urls: tuple[str, str], max_files: int) -> tuple[dict[str, Any], bool]:
    """A comparison of `base...head` as GitHub's REST API (and Gitee's, which copies it) gives it,
    and whether its files were cut at `max_files`. `per_page` and `page` page the commits; the
    files come on the first page."""
    api, html = urls
    commits = repository.commits_between(merge_base, head)
    behind = len(repository.commits_between(merge_base, base))
    if "per_page" in request.query or "page" in request.query:
        page, per_page = pages(request)
    else:
        page, per_page = 1, COMPARE_MAX_COMMITS
    changes = repository.changes(merge_base, head) if page == 1 else []
    status = ("identical" if base == head else "ahead" if merge_base == base
              else "behind" if merge_base == head else "diverged")
    document = {
        "url": f"{api}/compare/{base}...{head}", "html_url": f"{html}/compare/{base}...{head}",
        "permalink_url": f"{html}/compare/{base[:7]}...{head[:7]}",
        "diff_url": f"{html}/compare/{base}...{head}.diff", "patch_url": f"{html}/compare/{base}...{head}.patch",
        "base_commit": commit_document(repository.info(base), api, html),
        "merge_base_commit": commit_document(repository.info(merge_base), api, html),
        "status": status, "ahead_by": len(commits), "behind_by": behind, "total_commits": len(commits),
        "commits": [commit_document(info, api, html) for info in commits[(page - 1) * per_page:page * per_page]],
        "files": [_file_document(change, head, api, html) for change in changes[:max_files]]}
    return document, len(changes) > max_files


def _file_document(change: FileChange, head: str, api: str, html: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "sha": change.sha, "filename": change.path, "status": change.status, "additions": 0, "deletions": 0,
        "changes": 0, "blob_url": f"{html}/blob/{head}/{change.path}", "raw_url": f"{html}/raw/{head}/{change.path}",
        "contents_url": f"{api}/contents/{change.path}?ref={head}"}
    if change.status in ("renamed", "copied"):
        document["previous_filename"] = change.old_path
    return document


def _error(status: int, message: str, documentation_url: str = DOCS) -> Reply:
    return Reply.json(status, {"message": message, "documentation_url": documentation_url,
                               "status": str(status)})


def _rate(allowance: Allowance, resource: str) -> dict[str, Any]:
    return {"limit": allowance.limit, "remaining": allowance.remaining, "reset": allowance.reset,
            "used": allowance.used, "resource": resource}


def _node_id(kind: str, number: int) -> str:
    return base64.b64encode(f"{kind}{number}".encode()).decode()


def _user_id(token: str) -> int:
    """A stable number standing for the token's owner, which reveals nothing of the token."""
    return zlib.crc32(token.encode()) % 10_000_000


class _PerMinute:
    """The secondary limit: at most `limit` requests per credential in any sliding minute."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._times: dict[str, collections.deque[float]] = {}

    def admit(self, credential: str) -> float | None:
        """None when the request may go ahead (and is counted), else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            times = self._times.setdefault(credential, collections.deque())
            while times and times[0] <= now - 60:
                times.popleft()
            if len(times) >= self.limit:
                return 60 - (now - times[0])
            times.append(now)
            return None


# GraphQL: a parser for queries (no fragments by name, no directives) and an executor over
# the few types the daemon reads. Validation happens before anything is charged or run.

class GraphQLError(Exception):
    """A query the stand-in refuses, answered as GitHub answers invalid queries: 200 with errors."""

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.extensions = extensions

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"message": str(self), "locations": []}
        if self.extensions:
            document["extensions"] = self.extensions
        return document


@dataclass(frozen=True)
class Variable:
    name: str


@dataclass(frozen=True)
class Selection:
    """A field (`alias: name(arguments) { selections }`), or an inline fragment when `on` is set."""

    alias: str
    name: str
    arguments: tuple[tuple[str, Any], ...]
    selections: tuple[Selection, ...]
    on: str | None = None


@dataclass(frozen=True)
class Operation:
    selections: tuple[Selection, ...]
    variables: dict[str, Any]


_TYPES: dict[str, dict[str, str]] = {
    "Query": {"rateLimit": "RateLimit", "repository": "Repository"},
    "RateLimit": {"limit": "Int", "remaining": "Int", "resetAt": "DateTime", "cost": "Int", "used": "Int",
                  "nodeCount": "Int"},
    "Repository": {"id": "ID", "databaseId": "Int", "name": "String", "nameWithOwner": "String",
                   "isPrivate": "Boolean", "isEmpty": "Boolean", "url": "URI", "ref": "Ref",
                   "defaultBranchRef": "Ref"},
    "Ref": {"name": "String", "prefix": "String", "target": "GitObject"},
    "GitObject": {"oid": "GitObjectID", "abbreviatedOid": "String"},
    "Commit": {"oid": "GitObjectID", "abbreviatedOid": "String", "committedDate": "DateTime",
               "message": "String"},
}
_ARGUMENTS: dict[tuple[str, str], dict[str, str]] = {
    ("Query", "repository"): {"owner": "String!", "name": "String!", "followRenames": "Boolean"},
    ("Query", "rateLimit"): {"dryRun": "Boolean"},
    ("Repository", "ref"): {"qualifiedName": "String!"},
}
_FRAGMENTS = {"GitObject": ("GitObject", "Commit"), "Commit": ("Commit", "GitObject")}
_TOKEN = re.compile(r'(?P<skip>[\s,]+|#[^\n]*)|(?P<punct>\.\.\.|[{}():!$=\[\]@])'
                    r'|(?P<name>[_A-Za-z][_0-9A-Za-z]*)|(?P<string>"(?:[^"\\\n]|\\.)*")'
                    r'|(?P<number>-?\d+(?:\.\d+)?)')


def _operation(payload: Any) -> Operation:
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        raise GraphQLError("A query attribute must be specified and must be a string.")
    declared, selections = _Parser(payload["query"]).document()
    _validate("Query", selections, declared)
    return Operation(selections, _coerce(declared, payload.get("variables")))


class _Parser:
    def __init__(self, source: str) -> None:
        self._tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(source):
            match = _TOKEN.match(source, position)
            if match is None:
                raise GraphQLError(f"Parse error on {source[position]!r} at offset {position}")
            position = match.end()
            if match.lastgroup != "skip":
                self._tokens.append((match.lastgroup or "", match.group()))
        self._at = 0

    def document(self) -> tuple[dict[str, str], tuple[Selection, ...]]:
        declared: dict[str, str] = {}
        if self._peek() in ("mutation", "subscription", "fragment"):
            raise GraphQLError(f"the stand-in serves queries only, not {self._peek()}")
        if self._peek() == "query":
            self._next()
            if self._at < len(self._tokens) and self._tokens[self._at][0] == "name":
                self._next()
            if self._peek() == "(":
                declared = self._variable_definitions()
        selections = self._selection_set()
        if self._at != len(self._tokens):
            raise GraphQLError(f"Parse error on {self._peek()!r}: one operation per document")
        return declared, selections

    def _peek(self) -> str:
        return self._tokens[self._at][1] if self._at < len(self._tokens) else ""

    def _next(self) -> tuple[str, str]:
        if self._at >= len(self._tokens):
            raise GraphQLError("Parse error: unexpected end of document")
        self._at += 1
        return self._tokens[self._at - 1]

    def _expect(self, text: str) -> None:
        _, value = self._next()
        if value != text:
            raise GraphQLError(f"Parse error on {value!r}: expected {text!r}")

    def _name(self) -> str:
        kind, value = self._next()
        if kind != "name":
            raise GraphQLError(f"Parse error on {value!r}: expected a name")
        return value

    def _variable_definitions(self) -> dict[str, str]:
        self._expect("(")
        declared: dict[str, str] = {}
        while self._peek() != ")":
            self._expect("$")
            name = self._name()
            self._expect(":")
            declared[name] = self._type()
            if self._peek() == "=":
                raise GraphQLError("default values of variables are not served by the stand-in")
        self._next()
        return declared

    def _type(self) -> str:
        if self._peek() == "[":
            self._next()
            text = f"[{self._type()}]"
            self._expect("]")
        else:
            text = self._name()
        if self._peek() == "!":
            self._next()
            text += "!"
        return text

    def _selection_set(self) -> tuple[Selection, ...]:
        self._expect("{")
        selections: list[Selection] = []
        while self._peek() != "}":
            selections.append(self._selection())
        self._next()
        if not selections:
            raise GraphQLError("Parse error on '}': a selection set selects something")
        return tuple(selections)

    def _selection(self) -> Selection:
        if self._peek() == "...":
            self._next()
            if self._peek() != "on":
                raise GraphQLError("named fragments are not served by the stand-in: inline them")
            self._next()
            on = self._name()
            return Selection("...", "...", (), self._selection_set(), on)
        alias = name = self._name()
        if self._peek() == ":":
            self._next()
            name = self._name()
        arguments = self._arguments() if self._peek() == "(" else ()
        if self._peek() == "@":
            raise GraphQLError("directives are not served by the stand-in")
        selections = self._selection_set() if self._peek() == "{" else ()
        return Selection(alias, name, arguments, selections)

    def _arguments(self) -> tuple[tuple[str, Any], ...]:
        self._expect("(")
        arguments: list[tuple[str, Any]] = []
        while self._peek() != ")":
            name = self._name()
            self._expect(":")
            arguments.append((name, self._value()))
        self._next()
        return tuple(arguments)

    def _value(self) -> Any:
        kind, text = self._next()
        if text == "$":
            return Variable(self._name())
        if kind == "string":
            return json.loads(text)  # GraphQL's string escapes are JSON's
        if kind == "number":
            return float(text) if "." in text else int(text)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(text, text)
        raise GraphQLError(f"Parse error on {text!r}: lists and objects are not served by the stand-in")


def _validate(type_name: str, selections: tuple[Selection, ...], declared: dict[str, str]) -> None:
    for selection in selections:
        if selection.on is not None:
            if selection.on not in _FRAGMENTS.get(type_name, (type_name,)):
                raise GraphQLError(f"Fragment on {selection.on} can't be spread inside {type_name}")
            _validate(selection.on, selection.selections, declared)
            continue
        if selection.name == "__typename":
            continue
        field_type = _TYPES[type_name].get(selection.name)
        if field_type is None:
            raise GraphQLError(f"Field '{selection.name}' doesn't exist on type '{type_name}'",
                               code="undefinedField", typeName=type_name, fieldName=selection.name)
        _validate_arguments(type_name, selection, declared)
        if field_type in _TYPES and not selection.selections:
            raise GraphQLError(f"Field must have selections (field '{selection.name}' returns "
                               f"{field_type} but has no selections)")
        if field_type not in _TYPES and selection.selections:
            raise GraphQLError(f"Selections can't be made on scalars (field '{selection.name}' "
                               f"returns {field_type})")
        if field_type in _TYPES:
            _validate(field_type, selection.selections, declared)


def _validate_arguments(type_name: str, selection: Selection, declared: dict[str, str]) -> None:
    allowed = _ARGUMENTS.get((type_name, selection.name), {})
    given = dict(selection.arguments)
    for name, value in selection.arguments:
        if name not in allowed:
            raise GraphQLError(f"Field '{selection.name}' doesn't accept argument '{name}'",
                               code="argumentNotAccepted", name=selection.name, argumentName=name)
        if isinstance(value, Variable) and value.name not in declared:
            raise GraphQLError(f"Variable ${value.name} is used by the query but not declared",
                               code="variableNotDefined", variableName=value.name)
    missing = [name for name, kind in allowed.items() if kind.endswith("!") and name not in given]
    if missing:
        raise GraphQLError(f"Field '{selection.name}' is missing required arguments: {', '.join(missing)}",
                           code="missingRequiredArguments", arguments=", ".join(missing))


def _coerce(declared: dict[str, str], given: Any) -> dict[str, Any]:
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise GraphQLError("Variables are invalid JSON.")
    values: dict[str, Any] = {}
    for name, kind in declared.items():
        value = given.get(name)
        wrong_type = value is not None and kind.rstrip("!") == "String" and not isinstance(value, str)
        if (value is None and kind.endswith("!")) or wrong_type:
            raise GraphQLError(f"Variable ${name} of type {kind} was provided invalid value",
                               value=value, problems=[{"path": [], "explanation": "Could not coerce value"}])
        values[name] = value
    return values


@dataclass
class _Context:
    server: GitHubServer
    token: str
    allowance: Allowance
    variables: dict[str, Any]
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class _Ref:
    repository: ForgeRepository
    name: str
    prefix: str
    sha: str


@dataclass(frozen=True)
class _Object:
    repository: ForgeRepository
    sha: str


def _execute(type_name: str, value: Any, selections: tuple[Selection, ...], context: _Context,
             path: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for selection in selections:
        if selection.on is not None:  # the only objects served are commits: every fragment applies
            result.update(_execute(selection.on, value, selection.selections, context, path))
        elif selection.name == "__typename":
            result[selection.alias] = "Commit" if type_name == "GitObject" else type_name
        else:
            result[selection.alias] = _field(type_name, value, selection, context, [*path, selection.alias])
    return result


def _field(type_name: str, value: Any, selection: Selection, context: _Context, path: list[str]) -> Any:
    arguments = {name: context.variables.get(v.name) if isinstance(v, Variable) else v
                 for name, v in selection.arguments}
    resolved = _RESOLVERS[type_name](value, selection.name, arguments, context, path)
    field_type = _TYPES[type_name][selection.name]
    if resolved is None or field_type not in _TYPES:
        return resolved
    return _execute(field_type, resolved, selection.selections, context, path)


def _query(_: None, name: str, arguments: dict[str, Any], context: _Context, path: list[str]) -> Any:
    if name == "rateLimit":
        return context.allowance
    full_name = f"{arguments['owner']}/{arguments['name']}"
    repository = context.server._readable(full_name, context.token)
    if repository is None:
        context.errors.append({"type": "NOT_FOUND", "path": path, "locations": [],
                               "message": f"Could not resolve to a Repository with the name '{full_name}'."})
    return repository


def _rate_limit(allowance: Allowance, name: str, arguments: dict[str, Any], context: _Context,
                path: list[str]) -> Any:
    return {"limit": allowance.limit, "remaining": allowance.remaining, "resetAt": iso_time(allowance.reset),
            "cost": QUERY_COST, "used": allowance.used, "nodeCount": 1}[name]


def _repository(repository: ForgeRepository, name: str, arguments: dict[str, Any], context: _Context,
                path: list[str]) -> Any:
    if name == "ref":
        return _ref(repository, arguments["qualifiedName"])
    if name == "defaultBranchRef":
        return _ref(repository, f"refs/heads/{repository.default_branch}")
    return {"id": _node_id("010:Repository", repository.id), "databaseId": repository.id,
            "name": repository.name, "nameWithOwner": repository.full_name, "isPrivate": repository.private,
            "isEmpty": repository.is_empty(), "url": f"{context.server.url}/{repository.full_name}"}[name]


def _ref(repository: ForgeRepository, qualified_name: str) -> _Ref | None:
    # GitHub tries the name as a full ref first, then as a branch or tag name.
    candidates = [qualified_name] if qualified_name.startswith("refs/") else []
    candidates += [f"refs/heads/{qualified_name}", f"refs/tags/{qualified_name}"]
    for candidate in candidates:
        sha = repository.resolve(candidate)
        if sha is not None:
            prefix = next((p for p in ("refs/heads/", "refs/tags/") if candidate.startswith(p)), "refs/")
            return _Ref(repository, candidate.removeprefix(prefix), prefix, sha)
    return None


def _ref_field(ref: _Ref, name: str, arguments: dict[str, Any], context: _Context, path: list[str]) -> Any:
    return {"name": ref.name, "prefix": ref.prefix, "target": _Object(ref.repository, ref.sha)}[name]


def _object(target: _Object, name: str, arguments: dict[str, Any], context: _Context, path: list[str]) -> Any:
    if name == "oid":
        return target.sha
    if name == "abbreviatedOid":
        return target.sha[:7]
    info = target.repository.info(target.sha)
    return info.committer.iso() if name == "committedDate" else info.message


_RESOLVERS: dict[str, Callable[[Any, str, dict[str, Any], _Context, list[str]], Any]] = {
    "Query": _query, "RateLimit": _rate_limit, "Repository": _repository, "Ref": _ref_field,
    "GitObject": _object, "Commit": _object}

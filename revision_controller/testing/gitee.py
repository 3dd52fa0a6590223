"""A Gitee stand-in: the v5 REST answers the daemon relies on.

Gitee's API copies GitHub's v3 shapes under `/api/v5`; tokens come as the
`access_token` query parameter or an `Authorization: token`/`Bearer` header;
answers carry `X-RateLimit-*` headers and weak ETags, and an exhausted budget
answers 403:

    with Forge() as forge, GiteeServer(forge) as gitee:
        forge.create_repository("owner/repo")
        httpx.get(f"{gitee.api_url}/repos/owner/repo/commits", params={"sha": "main", "per_page": 1})
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from revision_controller.testing.forge import (
    BudgetedForgeServer,
    CommitInfo,
    Fault,
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
from revision_controller.testing.github import COMPARE_MAX_FILES, commit_document, comparison_document

API_PATH = "/api/v5"


class GiteeServer(BudgetedForgeServer):
    """Gitee's v5 API for `forge`, and git smart HTTP for its repositories.

    `limit` and `anonymous_limit` are the requests per token and per client
    address for each `window_seconds`. `max_compare_files` is how many files a comparison
    lists at most, saying `truncated` when there were more (Gitee documents no limit: GitHub's)."""

    api_path = API_PATH
    max_compare_files = COMPARE_MAX_FILES

    def __init__(self, forge: Forge, *, limit: int = 5000, anonymous_limit: int = 60,
                 window_seconds: float = 3600.0, host: str = "127.0.0.1") -> None:
        super().__init__(forge, limit=limit, anonymous_limit=anonymous_limit, window_seconds=window_seconds,
                         host=host)

    def token_of(self, request: Request) -> str | None:
        return authorization_token(request, "token", "bearer") or request.query.get("access_token") or None

    def answer(self, request: Request, token: str | None) -> Reply:
        parts = segments(request.path, API_PATH)
        if parts is None:
            return _not_found()
        if token is not None and not self.forge.knows(token):
            return Reply.json(401, {"message": "401 Unauthorized: Access token does not exist"})
        credential, budget = self.charged(request, token)
        allowance = budget.take(credential)
        if allowance is None:
            return Reply.json(403, {"message": "Rate Limit Exceeded"},
                              *x_ratelimit_headers(budget.peek(credential)))
        reply = conditional(request, self._route(request, [unquote(p) for p in parts], token), weak=True)
        return reply.with_headers(*x_ratelimit_headers(allowance)).costing(1)

    def fault_reply(self, fault: Fault, request: Request, token: str | None) -> Reply:
        credential, budget = self.charged(request, token)
        return Reply.json(fault.status, {"message": phrase(fault.status)},
                          *x_ratelimit_headers(budget.peek(credential)))

    def _route(self, request: Request, parts: list[str], token: str | None) -> Reply:
        if request.method not in ("GET", "HEAD") or len(parts) < 3 or parts[0] != "repos":
            return _not_found()
        repository = self.forge.repository(f"{parts[1]}/{parts[2]}")
        if repository is None or not self.forge.can_read(token, repository):
            return _not_found()
        rest = parts[3:]
        if not rest:
            return Reply.json(200, self._repository_document(repository))
        if rest == ["commits"]:
            return self._commits(request, repository)
        if rest[0] == "commits" and len(rest) > 1:
            return self._commit(repository, "/".join(rest[1:]))
        if rest[0] == "branches" and len(rest) > 1:
            return self._branch(repository, "/".join(rest[1:]))
        if rest[0] == "compare" and len(rest) > 1:
            return self._compare(request, repository, "/".join(rest[1:]))
        return _not_found()

    def _compare(self, request: Request, repository: ForgeRepository, basehead: str) -> Reply:
        base_ref, _, head_ref = basehead.partition("...")
        base, head = repository.resolve(base_ref), repository.resolve(head_ref)
        merge_base = repository.merge_base(base, head) if base_ref and head_ref and base and head else None
        if base is None or head is None or merge_base is None:
            return _not_found()
        document, cut = comparison_document(request, repository, base, head, merge_base,
                                            self._urls(repository), self.max_compare_files)
        return Reply.json(200, {**document, "truncated": cut})

    def _commits(self, request: Request, repository: ForgeRepository) -> Reply:
        sha = repository.resolve(request.query.get("sha") or repository.default_branch)
        if sha is None:
            return Reply.json(200, []) if repository.is_empty() else _not_found()
        page, per_page = pages(request, default_per_page=20)
        history = repository.history(sha, page * per_page)
        shown = history[(page - 1) * per_page:page * per_page]
        return Reply.json(200, [self._commit_document(repository, info) for info in shown])

    def _commit(self, repository: ForgeRepository, ref: str) -> Reply:
        sha = repository.resolve(ref)
        if sha is None:
            return _not_found()
        return Reply.json(200, self._commit_document(repository, repository.info(sha)))

    def _branch(self, repository: ForgeRepository, branch: str) -> Reply:
        sha = repository.head(branch)
        if sha is None:
            return _not_found()
        api, html = self._urls(repository)
        return Reply.json(200, {"name": branch, "commit": self._commit_document(repository, repository.info(sha)),
                                "_links": {"self": f"{api}/branches/{branch}", "html": f"{html}/tree/{branch}"},
                                "protected": False, "protection_url": f"{api}/branches/{branch}/protection"})

    def _urls(self, repository: ForgeRepository) -> tuple[str, str]:
        return f"{self.api_url}/repos/{repository.full_name}", f"{self.url}/{repository.full_name}"

    def _commit_document(self, repository: ForgeRepository, info: CommitInfo) -> dict[str, Any]:
        return commit_document(info, *self._urls(repository))

    def _repository_document(self, repository: ForgeRepository) -> dict[str, Any]:
        api, html = self._urls(repository)
        created = iso_time(repository.created_at)
        owner = {"login": repository.owner, "name": repository.owner, "type": "User",
                 "url": f"{self.api_url}/users/{repository.owner}", "html_url": f"{self.url}/{repository.owner}"}
        return {"id": repository.id, "full_name": repository.full_name,
                "human_name": repository.full_name.replace("/", " / "), "url": api,
                "namespace": {"type": "personal", "name": repository.owner, "path": repository.owner,
                              "html_url": f"{self.url}/{repository.owner}"},
                "path": repository.name, "name": repository.name, "owner": owner, "description": "",
                "private": repository.private, "public": not repository.private, "internal": False,
                "fork": False, "html_url": html + ".git", "ssh_url": f"git@127.0.0.1:{repository.full_name}.git",
                "default_branch": repository.default_branch, "created_at": created, "updated_at": created,
                "pushed_at": created}


def _not_found() -> Reply:
    return Reply.json(404, {"message": "Not Found"})

"""A GitLab stand-in: the v4 REST answers the daemon relies on.

Projects are named by numeric id or url-encoded path (`group%2Fsub%2Fproject`);
tokens come as `PRIVATE-TOKEN`, `Authorization: Bearer` (OAuth) or `JOB-TOKEN`;
answers carry GitLab's `RateLimit-*` headers and weak ETags, and an exhausted
budget answers 429 with Retry-After:

    with Forge() as forge, GitLabServer(forge) as gitlab_server:
        project = forge.create_repository("group/sub/project")
        gitlab.Gitlab(gitlab_server.url, private_token="t").projects.get(project.id)
"""

from __future__ import annotations

import email.utils
import time
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from revision_controller.testing.forge import (
    Allowance,
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
)

API_PATH = "/api/v4"
COMPARE_MAX_FILES = 1000  # GitLab's default `diff_max_files`, over which compare_timeout is true


class GitLabServer(BudgetedForgeServer):
    """GitLab's v4 API for `forge`, and git smart HTTP for its repositories.

    `limit` and `anonymous_limit` are the requests per token and per client
    address for each `window_seconds` (GitLab.com's defaults: a minute). `max_compare_files`
    is how many files a comparison lists at most, saying `compare_timeout` when there were more."""

    api_path = API_PATH
    max_compare_files = COMPARE_MAX_FILES

    def __init__(self, forge: Forge, *, limit: int = 2000, anonymous_limit: int = 500,
                 window_seconds: float = 60.0, host: str = "127.0.0.1") -> None:
        super().__init__(forge, limit=limit, anonymous_limit=anonymous_limit, window_seconds=window_seconds,
                         host=host)

    def token_of(self, request: Request) -> str | None:
        token = (authorization_token(request, "bearer") or request.header("PRIVATE-TOKEN")
                 or request.header("JOB-TOKEN") or request.query.get("private_token")
                 or request.query.get("job_token"))
        return token or None

    def answer(self, request: Request, token: str | None) -> Reply:
        parts = segments(request.path, API_PATH)
        if parts is None:
            return Reply.json(404, {"error": "404 Not Found"})
        if token is not None and not self.forge.knows(token):
            return Reply.json(401, {"message": "401 Unauthorized"})
        credential, budget = self.charged(request, token)
        allowance = budget.take(credential)
        if allowance is None:
            allowance = budget.peek(credential)
            return Reply.text(429, "Retry later\n", ("Retry-After", str(_seconds_left(allowance))),
                              *_ratelimit_headers(allowance))
        reply = conditional(request, self._route(request, [unquote(p) for p in parts], token), weak=True)
        return reply.with_headers(*_ratelimit_headers(allowance)).costing(1)

    def fault_reply(self, fault: Fault, request: Request, token: str | None) -> Reply:
        credential, budget = self.charged(request, token)
        headers = _ratelimit_headers(budget.peek(credential))
        if fault.status == 429:
            return Reply.text(429, "Retry later\n", *headers)
        return Reply.json(fault.status, {"message": f"{fault.status} {phrase(fault.status)}"}, *headers)

    def _route(self, request: Request, parts: list[str], token: str | None) -> Reply:
        if request.method not in ("GET", "HEAD") or len(parts) < 2 or parts[0] != "projects":
            return Reply.json(404, {"error": "404 Not Found"})
        project = self._readable(parts[1], token)
        if project is None:
            return Reply.json(404, {"message": "404 Project Not Found"})
        rest = parts[2:]
        if not rest:
            return Reply.json(200, self._project_document(project))
        if rest[:2] == ["repository", "branches"] and len(rest) == 3:
            return self._branch(project, rest[2])
        if rest == ["repository", "commits"]:
            return self._commits(request, project)
        if rest[:2] == ["repository", "commits"] and len(rest) == 3:
            return self._commit(project, rest[2])
        if rest == ["repository", "merge_base"]:
            return self._merge_base(request, project)
        if rest == ["repository", "compare"]:
            return self._compare(request, project)
        return Reply.json(404, {"error": "404 Not Found"})

    def _merge_base(self, request: Request, project: ForgeRepository) -> Reply:
        refs = [value for name, value in parse_qsl(request.query_string) if name in ("refs[]", "refs")]
        if len(refs) < 2:
            return Reply.json(400, {"message": "400 Bad request - Provide at least 2 refs"})
        shas = [project.resolve(ref) for ref in refs]
        unknown = [ref for ref, sha in zip(refs, shas, strict=True) if sha is None]
        if unknown:
            noun = "ref" if len(unknown) == 1 else "refs"
            return Reply.json(404, {"message": f"404 Could not find {noun}: {', '.join(unknown)} Not Found"})
        merge_base: str | None = shas[0]
        for sha in shas[1:]:
            merge_base = project.merge_base(merge_base, sha) if merge_base and sha else None
        if merge_base is None:
            return Reply.json(404, {"message": "404 Merge Base Not Found"})
        return Reply.json(200, self._commit_document(project, project.info(merge_base)))

    def _compare(self, request: Request, project: ForgeRepository) -> Reply:
        """Diffs from the merge base (from no commit when the histories share none), or from
        `from` itself when `straight=true`."""
        for name in ("from", "to"):
            if not request.query.get(name):
                return Reply.json(400, {"error": f"{name} is missing"})
        start, end = project.resolve(request.query["from"]), project.resolve(request.query["to"])
        if start is None or end is None:
            return Reply.json(404, {"message": "404 Ref Not Found"})
        straight = request.query.get("straight", "").lower() in ("true", "1", "yes", "on", "t", "y")  # Grape's Boolean
        origin = start if straight else project.merge_base(start, end)
        commits = project.commits_between(start, end)
        changes = project.changes(origin, end)
        return Reply.json(200, {
            "commit": self._commit_document(project, commits[-1]) if commits else None,
            "commits": [self._commit_document(project, info) for info in commits],
            "diffs": [_diff_document(change) for change in changes[:self.max_compare_files]],
            "compare_timeout": len(changes) > self.max_compare_files, "compare_same_ref": start == end,
            "web_url": f"{self.url}/{project.full_name}/-/compare/{start}...{end}"})

    def _readable(self, project_id: str, token: str | None) -> ForgeRepository | None:
        project = (self.forge.repository_by_id(int(project_id)) if project_id.isdigit()
                   else self.forge.repository(project_id))
        return project if project is not None and self.forge.can_read(token, project) else None

    def _branch(self, project: ForgeRepository, branch: str) -> Reply:
        sha = project.head(branch)
        if sha is None:
            return Reply.json(404, {"message": "404 Branch Not Found"})
        web = f"{self.url}/{project.full_name}"
        return Reply.json(200, {"name": branch, "commit": self._commit_document(project, project.info(sha)),
                                "merged": False, "protected": branch == project.default_branch,
                                "developers_can_push": False, "developers_can_merge": False,
                                "can_push": False, "default": branch == project.default_branch,
                                "web_url": f"{web}/-/tree/{branch}"})

    def _commits(self, request: Request, project: ForgeRepository) -> Reply:
        page, per_page = pages(request, default_per_page=20)
        sha = project.resolve(request.query.get("ref_name") or project.default_branch)
        # GitLab lists nothing, rather than failing, for a ref it does not know.
        history = project.history(sha, page * per_page + 1) if sha else []
        shown = history[(page - 1) * per_page:page * per_page]
        more = len(history) > page * per_page
        return Reply.json(200, [self._commit_document(project, info) for info in shown],
                          ("X-Page", str(page)), ("X-Per-Page", str(per_page)),
                          ("X-Next-Page", str(page + 1) if more else ""),
                          ("X-Prev-Page", str(page - 1) if page > 1 else ""))

    def _commit(self, project: ForgeRepository, ref: str) -> Reply:
        sha = project.resolve(ref)
        if sha is None:
            return Reply.json(404, {"message": "404 Commit Not Found"})
        return Reply.json(200, self._commit_document(project, project.info(sha)))

    def _commit_document(self, project: ForgeRepository, info: CommitInfo) -> dict[str, Any]:
        return {"id": info.sha, "short_id": info.sha[:8], "created_at": info.committer.iso_local(),
                "parent_ids": list(info.parents), "title": info.title, "message": info.message + "\n",
                "author_name": info.author.name, "author_email": info.author.email,
                "authored_date": info.author.iso_local(), "committer_name": info.committer.name,
                "committer_email": info.committer.email, "committed_date": info.committer.iso_local(),
                "trailers": {}, "extended_trailers": {},
                "web_url": f"{self.url}/{project.full_name}/-/commit/{info.sha}"}

    def _project_document(self, project: ForgeRepository) -> dict[str, Any]:
        web = f"{self.url}/{project.full_name}"
        namespace = project.owner
        created = iso_time(project.created_at)
        return {"id": project.id, "description": None, "name": project.name,
                "name_with_namespace": " / ".join(project.full_name.split("/")), "path": project.name,
                "path_with_namespace": project.full_name, "created_at": created,
                "default_branch": None if project.is_empty() else project.default_branch,
                "tag_list": [], "topics": [], "ssh_url_to_repo": f"git@127.0.0.1:{project.full_name}.git",
                "http_url_to_repo": web + ".git", "web_url": web, "readme_url": None, "forks_count": 0,
                "star_count": 0, "last_activity_at": created, "empty_repo": project.is_empty(),
                "archived": False, "visibility": "private" if project.private else "public",
                "namespace": {"id": 0, "name": namespace.rsplit("/", 1)[-1],
                              "path": namespace.rsplit("/", 1)[-1], "kind": "group", "full_path": namespace,
                              "parent_id": None, "web_url": f"{self.url}/groups/{quote(namespace)}"}}


def _diff_document(change: FileChange) -> dict[str, Any]:
    return {"old_path": change.old_path, "new_path": change.path, "a_mode": f"{change.old_mode:o}",
            "b_mode": f"{change.new_mode:o}", "new_file": change.status == "added",
            "renamed_file": change.status == "renamed", "deleted_file": change.status == "removed",
            "generated_file": False, "diff": ""}


def _seconds_left(allowance: Allowance) -> int:
    return max(1, int(allowance.reset - time.time()))


def _ratelimit_headers(allowance: Allowance) -> tuple[tuple[str, str], ...]:
    return (("RateLimit-Limit", str(allowance.limit)), ("RateLimit-Observed", str(allowance.used)),
            ("RateLimit-Remaining", str(allowance.remaining)), ("RateLimit-Reset", str(allowance.reset)),
            ("RateLimit-ResetTime", email.utils.formatdate(allowance.reset, usegmt=True)))

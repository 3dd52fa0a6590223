"""Which forward proxy the environment names for a URL, read as httpx and requests read it:
`HTTPS_PROXY` or `HTTP_PROXY` by the URL's scheme, else `ALL_PROXY`, and none for a host that
`NO_PROXY` names (upper or lower case, as `urllib.request` reads them)."""

from __future__ import annotations

import urllib.request
from urllib.parse import urlsplit


def proxy_for(url: str) -> str | None:
    """The proxy URL (it may hold credentials: never show it), or None to connect directly."""
    proxies = urllib.request.getproxies_environment()
    parts = urlsplit(url)
    host = f"{parts.hostname or ''}:{parts.port}" if parts.port else parts.hostname or ""  # no user or password
    if urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]  # not in typeshed
        return None
    return proxies.get(parts.scheme) or proxies.get("all")

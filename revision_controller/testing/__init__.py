"""Test equipment for the revision controller: stand-ins for the services it talks to."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError", "ApiServer", "RequestRecord"]


def __getattr__(name: str) -> Any:
    # Imported lazily so `python -m revision_controller.testing.apiserver` does not
    # find its own module already imported by this package.
    if name == "ApiError":
        from revision_controller.testing.store import ApiError
        return ApiError
    if name in ("ApiServer", "RequestRecord"):
        from revision_controller.testing import apiserver
        return getattr(apiserver, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

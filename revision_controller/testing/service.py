"""What every piece of test equipment is: started, serving in the background, stopped."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class Service(abc.ABC):
    """A server on loopback; `with` starts it and stops it however the block ends."""

    @abc.abstractmethod
    def start(self) -> object:
        """Start serving in the background."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop serving and release everything; safe to call twice."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

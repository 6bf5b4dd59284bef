"""A blocking facade over ``AsyncCorralClient`` for scripts and notebooks.

The async client runs on a private event loop in a daemon thread, so this
works even where a loop is already running (Jupyter)::

    with CorralClient() as client:
        session = client.create_session(resources={"cpu": "1"})
        client.wait_for_status(session.id, {"RUNNING"}, timeout=120)
        print(client.execute_collect(session.id, "print(6 * 7)").stdout)
        client.destroy_session(session.id)
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from typing import Any, AsyncIterator, Awaitable, Iterable, Iterator, Mapping, Sequence, TypeVar

from .api import AsyncCorralClient, ExecutionResult
from .config import ClientConfig
from .models import Agent, Health, Image, Session, SessionPage, StatusChange, WhoAmI

T = TypeVar("T")


class CorralClient:
    """Same methods as ``AsyncCorralClient``, blocking; iterators become generators."""

    def __init__(self, config: ClientConfig | None = None, **client_options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="corral-client", daemon=True)
        self._thread.start()
        try:
            self._async = AsyncCorralClient(config, **client_options)
        except BaseException:
            self._stop_loop()
            raise
        self._closed = False

    @property
    def config(self) -> ClientConfig:
        return self._async.config

    def __enter__(self) -> "CorralClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._async.close())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro: Awaitable[T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            raise

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._call(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                self._call(aclose())

    # -- API, mirroring AsyncCorralClient ---------------------------------

    def health(self) -> Health:
        return self._call(self._async.health())

    def whoami(self) -> WhoAmI:
        return self._call(self._async.whoami())

    def create_session(
        self,
        *,
        image: str | None = None,
        type: str = "interactive",
        name: str | None = None,
        command: str | Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        resources: Mapping[str, str | int | float] | None = None,
        mounts: Sequence[str] | None = None,
    ) -> Session:
        return self._call(
            self._async.create_session(
                image=image, type=type, name=name, command=command, env=env, resources=resources, mounts=mounts
            )
        )

    def list_sessions(
        self,
        *,
        status: Iterable[str] | None = None,
        all: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> SessionPage:
        return self._call(self._async.list_sessions(status=status, all=all, limit=limit, cursor=cursor))

    def iter_sessions(
        self, *, status: Iterable[str] | None = None, all: bool = False, page_size: int = 100
    ) -> Iterator[Session]:
        return self._iterate(self._async.iter_sessions(status=status, all=all, page_size=page_size))

    def get_session(self, ref: str) -> Session:
        return self._call(self._async.get_session(ref))

    def destroy_session(self, ref: str) -> Session:
        return self._call(self._async.destroy_session(ref))

    def logs(self, ref: str) -> str:
        return self._call(self._async.logs(ref))

    def execute(self, ref: str, code: str) -> Iterator[dict[str, Any]]:
        return self._iterate(self._async.execute(ref, code))

    def execute_collect(self, ref: str, code: str) -> ExecutionResult:
        return self._call(self._async.execute_collect(ref, code))

    def watch_session(self, ref: str) -> Iterator[StatusChange]:
        return self._iterate(self._async.watch_session(ref))

    def wait_for_status(
        self, ref: str, statuses: Iterable[str], timeout: float | None = None, *, poll_interval: float = 0.5
    ) -> Session:
        return self._call(self._async.wait_for_status(ref, statuses, timeout, poll_interval=poll_interval))

    def list_agents(self) -> list[Agent]:
        return self._call(self._async.list_agents())

    def list_images(self) -> list[Image]:
        return self._call(self._async.list_images())

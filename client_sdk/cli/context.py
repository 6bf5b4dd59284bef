"""What every command shares: global options, the client, running coroutines."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, TypeVar

import click

from ..config import ClientConfig, load_client_config

if TYPE_CHECKING:
    from ..api import AsyncCorralClient

T = TypeVar("T")


@dataclass
class CliState:
    endpoint: str | None = None
    verbose: int = 0

    def client_config(self, require_credentials: bool = True) -> ClientConfig:
        return load_client_config(endpoint=self.endpoint, require_credentials=require_credentials)

    def client(self, require_credentials: bool = True) -> "AsyncCorralClient":
        from ..api import AsyncCorralClient

        return AsyncCorralClient(self.client_config(require_credentials))


def cli_state() -> CliState:
    ctx = click.get_current_context()
    state = ctx.find_object(CliState)
    if state is None:  # a subcommand invoked on its own (tests)
        state = ctx.ensure_object(CliState)
    return state


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine; Ctrl-C cancels it (so ``finally`` blocks run)."""
    return asyncio.run(coro)


def note(message: str, *, verbose_only: bool = False) -> None:
    """A status line for people, on stderr so stdout stays the command's output."""
    if verbose_only and not cli_state().verbose:
        return
    click.echo(message, err=True)


def call_api(operation: Callable[["AsyncCorralClient"], Awaitable[T]]) -> T:
    """Run one SDK call with a client made from the CLI's configuration."""

    async def run() -> T:
        async with cli_state().client() as client:
            return await operation(client)

    return run_async(run())

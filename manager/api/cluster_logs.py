"""A cluster session's output: every kernel's, each line labelled with the kernel's name (``[sub1] …``).

Without ``follow`` the kernels' logs come one after the other (main1 first); with ``follow`` their lines
are interleaved as they arrive, a line at a time, so two kernels never mix within a line.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

from corral.common.cluster import kernel_name

from corral.common.errors import CorralError

from ..db.models import Agent, Kernel, Session
from ..states import TERMINAL, SessionStatus

LIVE = (SessionStatus.RUNNING, SessionStatus.TERMINATING)
STORED_WAIT_S = 10.0


@dataclass(frozen=True)
class KernelSource:
    name: str
    kernel_id: str
    address: str  # "" when its output can only come from what was stored at its end
    stored: str


async def kernel_sources(db: Any, sess: Session) -> list[KernelSource]:
    sources = []
    for kernel in sorted(sess.kernels, key=lambda k: k.cluster_idx):
        agent = await db.get(Agent, kernel.agent_id) if kernel.agent_id else None
        live = sess.status in LIVE and kernel.status in LIVE and agent is not None
        sources.append(KernelSource(kernel_name(kernel.cluster_idx), kernel.id, agent.address if live else "",
                                    kernel.last_logs or ""))
    return sources


def label(name: str, text: str) -> str:
    """Every line of ``text`` prefixed with ``[name] `` (a last line without its newline gets one)."""
    if not text:
        return ""
    lines = text.splitlines(keepends=True)
    return "".join(f"[{name}] {line if line.endswith(chr(10)) else line + chr(10)}" for line in lines)


async def all_logs(agent_client: Any, sources: list[KernelSource]) -> str:
    async def one(source: KernelSource) -> str:
        text = source.stored
        if source.address:
            try:
                text = await agent_client.kernel_logs(source.address, source.kernel_id)
            except Exception:  # noqa: BLE001 - an agent gone since: what was stored is all there is
                text = source.stored
        return label(source.name, text)

    return "".join(await asyncio.gather(*(one(s) for s in sources)))


StoredLogs = Callable[[str], Awaitable[str]]  # kernel id -> its output as stored once it ended


def stored_after_end(sessionmaker: Any, wait_s: float = STORED_WAIT_S) -> StoredLogs:
    """What a kernel's end stored (``kernels.last_logs``), waiting up to ``wait_s`` for the end to be
    recorded: a kernel whose container just exited is gone from its agent before the manager hears of it."""
    async def read(kernel_id: str) -> str:
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            async with sessionmaker() as db:
                kernel = await db.get(Kernel, kernel_id)
            if kernel is None or kernel.status in TERMINAL or asyncio.get_running_loop().time() > deadline:
                return (kernel.last_logs or "") if kernel is not None else ""
            await asyncio.sleep(0.2)
    return read


async def follow_all(agent_client: Any, sources: list[KernelSource], stored: StoredLogs | None = None
                     ) -> AsyncIterator[str]:
    """Yields ``""`` first (like `AgentClient.follow_kernel_logs`), then labelled lines until every kernel's
    output has ended. A kernel whose agent no longer has it (it just ended) gives what its end stored."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def pump(source: KernelSource) -> None:
        pending = ""
        try:
            if source.address:
                try:
                    async for chunk in agent_client.follow_kernel_logs(source.address, source.kernel_id):
                        pending += chunk
                        whole, _, pending = pending.rpartition("\n")
                        if whole:
                            await queue.put(label(source.name, whole + "\n"))
                except CorralError:
                    if stored is not None and not pending:
                        pending = await stored(source.kernel_id)
            else:
                pending = source.stored
        except Exception:  # noqa: BLE001 - that kernel's agent went away: the others go on
            pass
        finally:
            if pending:
                await queue.put(label(source.name, pending))
            await queue.put(None)

    tasks = [asyncio.ensure_future(pump(s)) for s in sources]
    try:
        yield ""
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif item:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def is_cluster(sess: Session) -> bool:
    return (sess.cluster_size or 1) > 1


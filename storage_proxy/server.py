"""The storage proxy process: build the aiohttp app(s), serve, register in etcd."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from typing import AsyncIterator, Iterable, Literal

from aiohttp import web

from corral.common.partial_start import undo_failed_start
from corral.common.errors import CorralError
from corral.common.process import setup_logging

from .client_api import add_client_routes
from .config import ListenConfig, StorageProxyConfig, load_storage_config
from .context import CONTEXT_KEY, StorageContext, get_context
from .manager_api import add_manager_routes, manager_auth_middleware
from corral.common.http_problems import make_problem_middleware
from .registry import EtcdPresence

log = logging.getLogger(__name__)

ApiName = Literal["manager", "client"]
SHUTDOWN_GRACE_S = 10.0


async def health(request: web.Request) -> web.Response:
    ctx = get_context(request)
    return web.json_response({"status": "ok", "proxy_name": ctx.config.proxy_name, "volumes": sorted(ctx.volumes)})


async def _purge_loop(ctx: StorageContext) -> None:
    while True:
        await asyncio.sleep(ctx.config.upload.purge_interval_s)
        try:
            await ctx.uploads.purge_expired()
        except Exception:
            log.exception("purging expired uploads failed")


async def _quota_loop(ctx: StorageContext) -> None:
    interval = ctx.config.quota_check_interval_s
    while True:
        try:
            await ctx.quota.check_all()
        except Exception:
            log.exception("the periodic quota check failed")
        await asyncio.sleep(interval)


def create_app(
    config: StorageProxyConfig,
    *,
    context: StorageContext | None = None,
    apis: Iterable[ApiName] = ("manager", "client"),
) -> web.Application:
    """An app serving the chosen APIs; pass one ``context`` to several apps to share state."""
    ctx = context or StorageContext.from_config(config)
    apis = set(apis)
    app = web.Application(middlewares=[make_problem_middleware("storage proxy"), manager_auth_middleware])
    app[CONTEXT_KEY] = ctx
    app.router.add_get("/health", health)
    if "manager" in apis:
        add_manager_routes(app)
    if "client" in apis:
        add_client_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await ctx.start()
        purge = asyncio.ensure_future(_purge_loop(ctx)) if "client" in apis else None
        quota = asyncio.ensure_future(_quota_loop(ctx)) if "client" in apis and ctx.config.quota_check_interval_s else None
        yield
        for task in (purge, quota):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app.cleanup_ctx.append(lifecycle)
    return app


def _presence_value(config: StorageProxyConfig) -> dict[str, object]:
    return {
        "name": config.proxy_name,
        "manager_url": config.manager_api.advertised_url(),
        "client_url": config.client_api.advertised_url(),
        "volumes": [{"name": v.name, "backend": v.backend} for v in config.volumes],
    }


class StorageProxyServer:
    """A proxy serving in the current event loop: ``start()``, then ``stop()``.

    Ports may be 0 (tests, the embedded stack): ``manager_url`` and
    ``client_url`` give the bound addresses once started.
    """

    def __init__(self, config: StorageProxyConfig) -> None:
        self.config = config
        self.context = StorageContext.from_config(config)
        self._serving = False
        self._bound: dict[str, int] = {}
        # What start() got running, undone in reverse by stop().
        self._started = contextlib.AsyncExitStack()

    def _url(self, listen: ListenConfig, api: str) -> str:
        return listen.model_copy(update={"port": self._bound.get(api, listen.port)}).advertised_url()

    @property
    def manager_url(self) -> str:
        return self._url(self.config.manager_api, "manager")

    @property
    def client_url(self) -> str:
        return self._url(self.config.client_api, "client")

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException as exc:
            await undo_failed_start(self._started, exc)
            raise
        self._serving = True

    async def _start(self) -> None:
        config, ctx, started = self.config, self.context, self._started
        if config.shares_one_listener():
            plan = [(("manager", "client"), create_app(config, context=ctx), config.manager_api)]
        else:
            plan = [
                (("manager",), create_app(config, context=ctx, apis=("manager",)), config.manager_api),
                (("client",), create_app(config, context=ctx, apis=("client",)), config.client_api),
            ]
        for apis, app, listen in plan:
            runner = web.AppRunner(
                app, shutdown_timeout=SHUTDOWN_GRACE_S, access_log=logging.getLogger("corral.storage_proxy.access")
            )
            await runner.setup()
            started.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, listen.host, listen.port)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            for api in apis:
                self._bound[api] = port
            log.info("serving the %s API on http://%s:%d", "+".join(apis), listen.host, port)
        if config.etcd is not None:
            value = dict(_presence_value(config), manager_url=self.manager_url, client_url=self.client_url)
            presence = EtcdPresence(config.etcd, config.proxy_name, value)
            started.push_async_callback(presence.stop)
            presence.start()

    async def stop(self) -> None:
        """Undo what start() got running; safe after a failed start, and a second call does nothing."""
        was_serving, self._serving = self._serving, False
        await self._started.aclose()
        if was_serving:
            log.info("storage proxy stopped")



async def run(config: StorageProxyConfig, *, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set (or the task is cancelled)."""
    server = StorageProxyServer(config)
    try:
        await server.start()
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await server.stop()


def run_from_config_file(config_path: str | os.PathLike[str]) -> None:
    """`corral storage start --config F`: serve in the foreground until Ctrl-C or SIGTERM."""
    config = load_storage_config(config_path)
    setup_logging(config.log_level)
    asyncio.run(_serve_until_signalled(config))


async def _serve_until_signalled(config: StorageProxyConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run(config, stop=stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m corral.storage_proxy", description="Corral storage proxy")
    parser.add_argument("--config", "-c", required=True, help="TOML config file")
    args = parser.parse_args(argv)
    try:
        config = load_storage_config(args.config)
    except CorralError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    asyncio.run(_serve_until_signalled(config))
    return 0

"""Why a server did not start, as one readable line.

A failed start reaches the CLI as whatever the failing layer raised: an
``OSError`` from the database driver, SQLAlchemy's wrapper of a PostgreSQL
refusal, asyncio's bind error. ``run_with_readable_errors`` turns those into
`CorralError`s that say what could not be reached or used (the original stays
chained, for ``-v``).
"""
from __future__ import annotations

import os
import re
import socket
from types import TracebackType
from typing import Callable, Iterator
from urllib.parse import unquote, urlsplit

from corral.common.errors import ConfigError, CorralError, ServiceUnavailable

DB_DRIVER_MODULES = ("asyncpg", "aiosqlite", "sqlite3", "sqlalchemy")
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")
_BIND_ADDRESS = re.compile(r"bind on address \('([^']*)', (\d+)")


def run_with_readable_errors(body: Callable[[], None], db_url: Callable[[], str | None] | None = None) -> None:
    """Run ``body``; re-raise what it raises as a readable error. ``db_url`` names the database it uses."""
    try:
        body()
    except Exception as error:
        readable = explain(error, db_url)
        if readable is error:
            raise
        raise readable from error


def explain(error: Exception, db_url: Callable[[], str | None] | None = None) -> Exception:
    """A readable `CorralError` for ``error`` when there is more to say, else ``error`` itself."""
    if isinstance(error, CorralError):
        return error
    if _is_db_error(error):
        return _db_error(error, db_url() if db_url is not None else None)
    if isinstance(error, OSError) and "attempting to bind on address" in str(error):
        match = _BIND_ADDRESS.search(str(error))
        where = f" on {match.group(1)}:{match.group(2)}" if match else ""
        running = _corral_answers(match.group(1), int(match.group(2))) if match else None
        if running is not None:
            return ConfigError(
                f"cannot listen{where}: a Corral manager ({running}) already runs there — use it "
                "(`corral health`), stop it (after `make demo`: `kill $(cat .corral/up.pid)`), or pick another port"
            )
        return ConfigError(f"cannot listen{where}: {_reason(error)}")
    return error


def _corral_answers(host: str, port: int) -> str | None:
    """'version X' when a Corral manager answers its health check at host:port, else None."""
    import json
    import urllib.request

    target = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
    try:
        with urllib.request.urlopen(f"http://{target}:{port}/api/v1/health", timeout=1.0) as answer:  # noqa: S310
            doc = json.loads(answer.read())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("status") != "ok":
        return None
    return f"version {doc.get('version', '?')}"


def _db_error(error: Exception, url: str | None) -> CorralError:
    what = _database(url)
    if isinstance(error, OSError):
        if what.startswith("PostgreSQL"):
            return ServiceUnavailable(f"cannot reach {what}: {_reason(error)}")
        return ConfigError(f"cannot open {what}: {_reason(error)}")
    # SQLAlchemy's DBAPIError wraps the driver's own error, which has the message.
    detail = str(getattr(error, "orig", None) or error).strip()
    return ConfigError(f"{what}: {detail}")


def _database(url: str | None) -> str:
    if not url:
        return "the database"
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme.startswith("postgres"):
        host = parts.hostname or "localhost"
        return f"PostgreSQL at {host}:{parts.port or 5432}"
    if scheme == "sqlite":
        path = unquote(url.split(":///", 1)[1]) if ":///" in url else ""
        return f"SQLite database {path}" if path else "the SQLite database"
    return "the database"


def _reason(error: OSError) -> str:
    if isinstance(error, socket.gaierror):
        return f"unknown host ({(error.strerror or str(error)).lower()})"
    code = error.errno
    if code is None:  # asyncio's "Multiple exceptions: [Errno 111] …" (one per address tried)
        found = _ERRNO_IN_TEXT.search(str(error))
        code = int(found.group(1)) if found else None
    if code:
        return os.strerror(code).lower()
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


def _is_db_error(error: BaseException) -> bool:
    modules = [type(error).__module__] + [module for module, _ in _frames(error)]
    return any(module.split(".")[0] in DB_DRIVER_MODULES for module in modules)


def _frames(error: BaseException) -> Iterator[tuple[str, str]]:
    """(module, function) of each frame ``error`` propagated through."""
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        yield str(tb.tb_frame.f_globals.get("__name__", "")), tb.tb_frame.f_code.co_name
        tb = tb.tb_next

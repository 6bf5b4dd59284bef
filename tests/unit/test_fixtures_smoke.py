"""Proves the test infrastructure works: PostgreSQL, etcd and Docker fixtures."""
from __future__ import annotations

import subprocess
import uuid

import pytest


@pytest.mark.postgres
async def test_postgres_select_1(postgres_dsn: str) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == "corral_test"
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_fresh_postgres_db_is_empty_and_private(fresh_postgres_db: str, postgres_dsn: str) -> None:
    asyncpg = pytest.importorskip("asyncpg")
    assert fresh_postgres_db != postgres_dsn
    conn = await asyncpg.connect(fresh_postgres_db)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables == 0
        await conn.execute("CREATE TABLE t (x int)")
    finally:
        await conn.close()


@pytest.mark.etcd
async def test_etcd_put_get(etcd_endpoint: str, etcd_endpoints: list[str]) -> None:
    aetcd = pytest.importorskip("aetcd")
    assert etcd_endpoints == [etcd_endpoint]
    host, port = etcd_endpoint.rsplit(":", 1)
    key = f"/corral-smoke/{uuid.uuid4().hex}".encode()
    async with aetcd.Client(host=host, port=int(port)) as client:
        await client.put(key, b"hello")
        got = await client.get(key)
        assert got is not None and got.value == b"hello"
        await client.delete(key)


@pytest.mark.docker
def test_docker_version(docker_engine: str) -> None:
    proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    assert docker_engine

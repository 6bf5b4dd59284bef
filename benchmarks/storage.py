"""Storage proxy benchmark; every figure is measured against a baseline in the same run.

1. Transfers: upload and download of one big file (default 1 GiB) through a
   storage proxy process on loopback vs ``cp`` of the same file on the same disk.
2. Resume: an upload interrupted halfway, then run again; how many bytes were
   sent twice (target: at most one chunk).
3. Metadata: usage and full recursive listing of a tree of many small files
   (default 200,000) through the proxy's parallel walk vs ``du -s`` and
   ``find | wc -l`` — on the local disk and on an sshfs mount over loopback
   (``-o cache=no``), where every stat is a network round trip as on a NAS.

Needs root for the sshfs part (it installs ``sshfs``/``openssh-server`` from
the Debian repositories if they are missing, runs a throwaway sshd on a
loopback port and unmounts at the end); ``--no-sshfs`` skips it.

    python benchmarks/storage.py [--files 200000] [--size 1GiB] [--workdir DIR]

The last line of output is one JSON object with all figures.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp

from corral.client.storage import StorageClient
from corral.client.upload_state import UploadStateStore
from corral.common.slots import parse_size
from corral.common.vfolder_token import issue_vfolder_token

MANAGER_SECRET = "bench-manager-secret-0123456789"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef"
MB = 1_000_000


def log(message: str) -> None:
    print(f"[storage-bench] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(cmd, shell=True, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - started, out


def best_of(runs: int, cmd: str) -> tuple[float, str]:
    results = [timed(cmd) for _ in range(runs)]
    return min(r[0] for r in results), results[-1][1]


# -- proxy process -----------------------------------------------------------------------


class ProxyProcess:
    def __init__(self, workdir: Path, volumes: dict[str, Path], workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "storage.toml"
        body = [
            f'manager_secret = "{MANAGER_SECRET}"',
            f'jwt_secret = "{JWT_SECRET}"',
            'proxy_name = "bench"',
            f"walk_workers = {workers}",
            f"owner_uid = {os.getuid()}",
            f"owner_gid = {os.getgid()}",
            'log_level = "WARNING"',
            f'[manager_api]\nhost = "127.0.0.1"\nport = {self.port}',
            f'[client_api]\nhost = "127.0.0.1"\nport = {self.port}',
        ]
        for name, path in volumes.items():
            body.append(f'[[volumes]]\nname = "{name}"\npath = "{path}"')
        self.config.write_text("\n".join(body) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    async def __aenter__(self) -> "ProxyProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "corral.storage_proxy", "--config", str(self.config)])
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/health") as resp:
                        if resp.status == 200:
                            return self
                await asyncio.sleep(0.1)
        raise RuntimeError("storage proxy did not start")

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    async def create_vfolder(self, session: aiohttp.ClientSession, volume: str, vfid: str) -> None:
        async with session.post(
            f"{self.url}/manager/v1/vfolders", json={"volume": volume, "vfid": vfid},
            headers={"Authorization": f"Bearer {MANAGER_SECRET}"},
        ) as resp:
            if resp.status not in (201, 409):
                raise RuntimeError(await resp.text())

    def client(self, session: aiohttp.ClientSession, volume: str, vfid: str, state: Path, **kw: Any) -> StorageClient:
        token = issue_vfolder_token(JWT_SECRET, vfolder_id=vfid, volume=volume, user="bench", permission="rw", ttl_s=3600)
        return StorageClient(self.url, token, session=session, state_store=UploadStateStore(state), **kw)


# -- transfers ------------------------------------------------------------------------------


def make_big_file(path: Path, size: int) -> None:
    block = os.urandom(8 << 20)
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


async def bench_transfers(proxy: ProxyProcess, workdir: Path, size: int, chunk: int, runs: int) -> dict[str, Any]:
    """cp, upload and download interleaved per run, so machine noise hits all three alike."""
    src = workdir / "big.bin"
    log(f"writing a {size / MB:.0f} MB test file")
    make_big_file(src, size)
    vfid = "bench-transfer"
    state = workdir / "upload-state"
    cp_dst = workdir / "big.cp"
    back = workdir / "big.back"
    remote = proxy_volume_path(workdir) / vfid / "big.bin"
    cp_times: list[float] = []
    up_times: list[float] = []
    down_times: list[float] = []
    async with aiohttp.ClientSession() as session:
        await proxy.create_vfolder(session, "local", vfid)
        client = proxy.client(session, "local", vfid, state, chunk_size=chunk)
        for i in range(runs):
            cp_dst.unlink(missing_ok=True)
            cp_times.append(timed(f"cp {src} {cp_dst}")[0])
            cp_dst.unlink(missing_ok=True)
            remote.unlink(missing_ok=True)  # like cp: never write over a cached old copy
            started = time.perf_counter()
            await client.upload_file(src, "big.bin", resume=False)
            up_times.append(time.perf_counter() - started)
            back.unlink(missing_ok=True)
            started = time.perf_counter()
            await client.download_file("big.bin", back)
            down_times.append(time.perf_counter() - started)
            log(f"run {i + 1}: cp {size / MB / cp_times[-1]:.0f} MB/s, upload {size / MB / up_times[-1]:.0f} MB/s, "
                f"download {size / MB / down_times[-1]:.0f} MB/s")
        same = subprocess.run(["cmp", "-s", str(src), str(back)]).returncode == 0
        back.unlink(missing_ok=True)
        remote.unlink(missing_ok=True)
        plain = proxy.client(session, "local", vfid, state, chunk_size=chunk, checksum=None)
        started = time.perf_counter()
        await plain.upload_file(src, "big.bin", resume=False)
        nochecksum_s = time.perf_counter() - started
        remote.unlink(missing_ok=True)

        # Interrupted upload, resumed.
        streamed = [0]
        resume_client = proxy.client(session, "local", vfid, state, chunk_size=chunk)

        class Interrupt(Exception):
            pass

        def interrupt_halfway(done: int, total: int) -> None:
            streamed[0] = done
            if done >= total // 2 + chunk // 3:
                raise Interrupt()

        with contextlib.suppress(Interrupt):
            await resume_client.upload_file(src, "resumed.bin", progress=interrupt_halfway)
        first_run_sent = streamed[0]
        result = await resume_client.upload_file(src, "resumed.bin")
        resent = first_run_sent + result.bytes_sent - size
        resumed_same = subprocess.run(["cmp", "-s", str(src), str(proxy_volume_path(workdir) / vfid / "resumed.bin")]).returncode == 0
    src.unlink()
    cp_s, up_s, down_s = (statistics.median(t) for t in (cp_times, up_times, down_times))
    return {
        "transfer": {
            "size_bytes": size,
            "chunk_bytes": chunk,
            "checksum": "sha1",
            "runs": runs,
            "cp_mb_s": round(size / MB / cp_s, 1),
            "upload_mb_s": round(size / MB / up_s, 1),
            "download_mb_s": round(size / MB / down_s, 1),
            "upload_vs_cp": round(cp_s / up_s, 3),
            "download_vs_cp": round(cp_s / down_s, 3),
            "best_cp_mb_s": round(size / MB / min(cp_times), 1),
            "best_upload_mb_s": round(size / MB / min(up_times), 1),
            "best_download_mb_s": round(size / MB / min(down_times), 1),
            "upload_no_checksum_mb_s": round(size / MB / nochecksum_s, 1),
            "roundtrip_identical": same,
        },
        "resume": {
            "interrupted_at_bytes": first_run_sent,
            "resumed_from_bytes": result.resumed_from,
            "resent_bytes": resent,
            "resent_chunks": round(resent / chunk, 3),
            "identical": resumed_same,
        },
    }


def proxy_volume_path(workdir: Path) -> Path:
    return workdir / "volume"


# -- metadata walks ----------------------------------------------------------------------------


def make_tree(root: Path, files: int, per_dir: int = 500) -> None:
    """``files`` small files in folders of ``per_dir`` under a two-level hierarchy."""
    dirs = max(1, files // per_dir)
    fanout = max(1, int(dirs ** 0.5))
    payload = os.urandom(4096)
    made = 0
    for d in range(dirs):
        folder = root / f"group{d // fanout:03d}" / f"dir{d:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        count = per_dir if d < dirs - 1 else files - made
        for f in range(count):
            fd = os.open(folder / f"f{f:05d}.dat", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, payload[: (f * 37) % 3000])
            os.close(fd)
        made += count


async def bench_walk(proxy: ProxyProcess, volume: str, vfid: str, tree: Path, runs: int) -> dict[str, Any]:
    du_s, du_out = best_of(runs, f"du -s -B1 {tree}")
    find_s, find_out = best_of(runs, f"find {tree} | wc -l")
    du_bytes = int(du_out.split()[0])
    find_count = int(find_out.strip())
    usage_times, listing_times = [], []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        client = proxy.client(session, volume, vfid, Path(tempfile.gettempdir()))
        usage: dict[str, Any] = {}
        listed = 0
        for _ in range(runs):
            started = time.perf_counter()
            usage = await client.usage("")
            usage_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            totals: dict[str, Any] = {}
            listed = 0
            async for _entry in client.walk("", totals=totals.update, stat=False):
                listed += 1
            listing_times.append(time.perf_counter() - started)
    usage_s, listing_s = min(usage_times), min(listing_times)
    return {
        "du_s": round(du_s, 3),
        "find_s": round(find_s, 3),
        "usage_s": round(usage_s, 3),
        "listing_s": round(listing_s, 3),
        "usage_speedup_vs_du": round(du_s / usage_s, 2),
        "listing_speedup_vs_find": round(find_s / listing_s, 2),
        "du_bytes": du_bytes,
        "usage_disk_bytes": usage["disk_bytes"],
        "find_entries": find_count,
        "listing_entries": listed + 1,
        "usage_entries": usage["entries"] + 1,
        "totals_identical": du_bytes == usage["disk_bytes"] and find_count == listed + 1 == usage["entries"] + 1,
    }


# -- sshfs over loopback --------------------------------------------------------------------------


def ensure_packages() -> None:
    missing = [pkg for pkg, exe in (("sshfs", "sshfs"), ("openssh-server", "/usr/sbin/sshd"), ("openssh-client", "ssh-keygen"))
               if not (shutil.which(exe) or os.path.exists(exe))]
    if not missing:
        return
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


@contextlib.contextmanager
def sshfs_mount(export: Path, mountpoint: Path, workdir: Path) -> Iterator[None]:
    ensure_packages()
    keydir = workdir / "ssh"
    keydir.mkdir(mode=0o700, exist_ok=True)
    for name in ("host_key", "client_key"):
        if not (keydir / name).exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keydir / name)], check=True)
    (keydir / "authorized_keys").write_text((keydir / "client_key.pub").read_text())
    os.chmod(keydir / "authorized_keys", 0o600)
    port = free_port()
    sshd_config = keydir / "sshd_config"
    sshd_config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keydir / 'host_key'}\n"
        f"AuthorizedKeysFile {keydir / 'authorized_keys'}\nPidFile {keydir / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation dir sshd insists on
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_config)], stderr=subprocess.DEVNULL)
    mountpoint.mkdir(exist_ok=True)
    try:
        for _ in range(50):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            time.sleep(0.1)
        user = os.environ.get("USER") or "root"
        subprocess.run(
            ["sshfs", f"{user}@127.0.0.1:{export}", str(mountpoint),
             "-o", f"port={port},IdentityFile={keydir / 'client_key'},StrictHostKeyChecking=no,"
                   "UserKnownHostsFile=/dev/null,cache=no,LogLevel=ERROR"],
            check=True,
        )
        log(f"sshfs: {export} mounted at {mountpoint} (cache=no) via sshd on 127.0.0.1:{port}")
        yield
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], stderr=subprocess.DEVNULL) if shutil.which("fusermount3") \
            else subprocess.run(["fusermount", "-u", str(mountpoint)], stderr=subprocess.DEVNULL)
        subprocess.run(["umount", "-l", str(mountpoint)], stderr=subprocess.DEVNULL)
        sshd.terminate()
        sshd.wait(10)


# -- main -----------------------------------------------------------------------------------------


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="corral-storage-bench-", dir="/var/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"benchmark": "storage", "workers": args.workers, "tree_files": args.files}
    size, chunk = parse_size(args.size), parse_size(args.chunk)
    local_volume = proxy_volume_path(workdir)
    export = workdir / "export"
    mountpoint = workdir / "mnt"
    tree_vfid = "bench-tree"
    try:
        local_volume.mkdir(exist_ok=True)
        if args.files:
            log(f"creating {args.files} small files for the local tree")
            started = time.perf_counter()
            make_tree(local_volume / tree_vfid, args.files)
            log(f"created in {time.perf_counter() - started:.1f}s")
        volumes = {"local": local_volume}
        use_sshfs = bool(args.files) and not args.no_sshfs
        with contextlib.ExitStack() as stack:
            if use_sshfs:
                export.mkdir(exist_ok=True)
                log("creating the same tree for the sshfs export")
                shutil.copytree(local_volume / tree_vfid, export / tree_vfid, symlinks=True, dirs_exist_ok=True)
                stack.enter_context(sshfs_mount(export, mountpoint, workdir))
                volumes["sshfs"] = mountpoint
            async with ProxyProcess(workdir, volumes, args.workers) as proxy:
                if size:
                    results.update(await bench_transfers(proxy, workdir, size, chunk, args.runs))
                if args.files:
                    log("walking the local tree")
                    results["tree_local"] = await bench_walk(proxy, "local", tree_vfid, local_volume / tree_vfid, args.runs)
                    log(json.dumps(results["tree_local"]))
                if use_sshfs:
                    log("walking the tree over sshfs (this is the slow part)")
                    results["tree_sshfs"] = await bench_walk(proxy, "sshfs", tree_vfid, mountpoint / tree_vfid, 1)
                    log(json.dumps(results["tree_sshfs"]))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    targets: dict[str, bool] = {}
    if "transfer" in results:
        t = results["transfer"]
        targets["upload_ge_70pct_cp"] = t["upload_vs_cp"] >= 0.7
        targets["download_ge_70pct_cp"] = t["download_vs_cp"] >= 0.7
        targets["resume_resends_le_1_chunk"] = results["resume"]["resent_chunks"] <= 1.0 and results["resume"]["identical"]
    if "tree_local" in results:
        t = results["tree_local"]
        targets["local_usage_within_2x_du"] = t["usage_speedup_vs_du"] >= 0.5
        targets["local_listing_within_2x_find"] = t["listing_speedup_vs_find"] >= 0.5
        targets["local_totals_identical"] = t["totals_identical"]
    if "tree_sshfs" in results:
        t = results["tree_sshfs"]
        targets["sshfs_usage_ge_3x_du"] = t["usage_speedup_vs_du"] >= 3
        targets["sshfs_listing_ge_3x_find"] = t["listing_speedup_vs_find"] >= 3
        targets["sshfs_totals_identical"] = t["totals_identical"]
    results["targets"] = targets
    results["all_targets_met"] = all(targets.values())
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200_000, help="small files in the metadata tree (0 skips)")
    parser.add_argument("--size", default="1GiB", help="size of the transfer file (0 skips)")
    parser.add_argument("--chunk", default="32MiB", help="tus chunk size")
    parser.add_argument("--workers", type=int, default=16, help="walker threads in the proxy")
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each local measurement (best/median kept)")
    parser.add_argument("--no-sshfs", action="store_true", help="skip the network-filesystem part")
    parser.add_argument("--workdir", help="scratch directory (default: a new one under /var/tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""Parallel versus distributed DDP training on CIFAR-10 through Corral, against the same runs without it.

The seed paper's experiment: a CNN on CIFAR-10, global batch 1200, 1-4 workers, 50 epochs,
averaged over 10 runs; *parallel* training (one server, several workers) was faster at 1-2
workers, *distributed* training (workers on several nodes) from 3 up. Here, for each N in
``--workers`` (default 1,2,4):

- parallel: one batch session, one kernel on one node with N x ``--cpus-per-worker`` CPUs, running
  ``ddp_cifar_train.py --nproc N`` (N local DDP workers, gloo over loopback);
- distributed: one batch cluster session of N kernels (``cluster_size=N``,
  ``cluster_mode="multi-node"``), one worker each with ``--cpus-per-worker`` CPUs, each running
  ``ddp_cifar_train.py`` with the WORLD_SIZE/RANK/MASTER_ADDR/... the platform sets. A point that
  needs more alive nodes than the resource group has is skipped (and recorded as skipped).

The baseline without Corral runs the same image with the same CPU and memory limits straight on
Docker: parallel = one ``docker run --rm``; distributed = N containers, on the rig's hosts with
``--network host`` when ``--rig-state-dir`` names a multi-host rig (configs/bootstrap/multihost.sh),
else on one bridge network of the local daemon. Corral's overhead per epoch is
corral_time_per_epoch / direct_time_per_epoch - 1; the target is <= 5 %.

The training script reaches the containers inside the command itself (``python -c`` with a small
bootstrap that unpacks it into a temp dir and execs it, so torch.multiprocessing can spawn): no
vfolder, no bind mount, the same bytes on both paths. Real CIFAR-10 is used when ``--data DIR``
holds its python pickles (bind-mounted for the direct runs; uploaded to a vfolder, or
``--data-vfolder NAME``, for Corral); otherwise the script's generated CIFAR-shaped set.

Reported per mode, N and path (corral, direct): time per epoch, mean +- stdev over the runs of each
run's mean over its epochs (epoch 1, the warm-up, left out when there are 2 or more), images/s,
scaling efficiency E(N) = T(1) / (N * T(N)) (fixed global batch and data: 1.0 is perfect linear
scaling, same mode and path), final test accuracy, and Corral's overhead. A PNG in the style of the
paper's figure goes to ``--plot`` (matplotlib when it imports, else benchmarks/png_plot.py). Progress
goes to stderr; the last line on stdout is one JSON object with every figure.

    .venv/bin/python benchmarks/ddp_cifar.py                          # embedded stack, this machine
    .venv/bin/python benchmarks/ddp_cifar.py --workers 1,2 --runs 2 --epochs 2 --train-size 6000
    .venv/bin/python benchmarks/ddp_cifar.py --endpoint http://10.231.0.11:8090 \\
        --rig-state-dir /run/corral-multihost                         # a running Corral on the rig
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import inspect
import json
import math
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Sequence

HERE = Path(__file__).resolve().parent
TRAIN_SCRIPT = HERE / "ddp_cifar_train.py"
RESULT_PREFIX = "DDP_RESULT "
DEFAULT_IMAGE = "corral/pytorch:2.13"
IMAGE_RECIPE = "pytorch-2.13"
DEFAULT_PLOT = HERE / "results" / "ddp_cifar.png"
MODES = ("parallel", "distributed")
PATHS = ("corral", "direct")
OVERHEAD_TARGET = 0.05
PAPER = {"dataset": "CIFAR-10", "model": "CNN", "batch_size": 1200, "epochs": 50, "runs": 10, "workers": [1, 2, 3, 4],
         "finding": "parallel faster at 1-2 workers, distributed faster from 3 up"}
DATA_MOUNT = "/home/work/cifar"  # where real CIFAR-10 is mounted in both paths' containers
DATA_VFOLDER = "ddp-cifar-data"
MASTER_PORT = 29500
RUN_LABEL = "ai.corral.benchmark-run"
RIG_SCRIPT = HERE.parent / "configs" / "bootstrap" / "multihost.sh"
# What the agent gives a kernel's container besides CPU/memory (agent/backend/container_config.py).
DOCKER_LIMITS = ["--user", "1000:1000", "--security-opt", "no-new-privileges", "--cap-drop", "ALL",
                 "--pids-limit", "4096"]

# Run as `python -c BOOTSTRAP ARGS...`: unpack the training script and exec it as a file, so that
# torch.multiprocessing's spawn can re-import it in the workers.
BOOTSTRAP = (
    "import base64,os,sys,tempfile,zlib\n"
    "d=tempfile.mkdtemp(prefix='ddp-cifar-')\n"
    "p=os.path.join(d,'ddp_cifar_train.py')\n"
    "open(p,'wb').write(zlib.decompress(base64.b64decode('{payload}')))\n"
    "os.execv(sys.executable,[sys.executable,p]+sys.argv[1:])\n"
)


def log(message: str) -> None:
    print(f"[ddp_cifar] {message}", file=sys.stderr, flush=True)


# -- arguments ------------------------------------------------------------------------------------


def parse_workers(text: str) -> list[int]:
    """``"1,2,4"`` -> [1, 2, 4] (sorted, without repeats); argparse.ArgumentTypeError otherwise."""
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise argparse.ArgumentTypeError(f"worker counts are whole numbers >= 1, comma-separated: {text!r}")
        values.add(int(part))
    if not values:
        raise argparse.ArgumentTypeError("no worker counts given")
    return sorted(values)


def parse_modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)} (comma-separated), not {text!r}")
    return [m for m in MODES if m in modes]


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1: {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([kmgt]?)i?b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``"2g"`` -> bytes; at least 64 MiB."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a size like 512m or 2g: {text!r}")
    value = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])
    if value < 64 << 20:
        raise argparse.ArgumentTypeError(f"at least 64m per worker: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ddp_cifar.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=parse_workers, default=[1, 2, 4], help="worker counts N (default 1,2,4)")
    p.add_argument("--modes", type=parse_modes, default=list(MODES), help="parallel,distributed (default both)")
    p.add_argument("--runs", type=_positive_int, default=3, help="runs per point (default 3; the paper: 10)")
    p.add_argument("--epochs", type=_positive_int, default=3, help="epochs per run (default 3; the paper: 50)")
    p.add_argument("--batch-size", type=_positive_int, default=1200, help="global batch (default 1200, as the paper)")
    p.add_argument("--train-size", type=_positive_int, help="training images (default: the training script's)")
    p.add_argument("--test-size", type=_positive_int, help="test images (default: the training script's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpus-per-worker", type=_positive_float, default=1.0,
                   help="CPUs per worker: parallel kernels get N times this, each distributed kernel this (default 1)")
    p.add_argument("--mem-per-worker", type=parse_size, default=parse_size("2g"),
                   help="memory per worker, as for CPUs (default 2g)")
    p.add_argument("--image", default=DEFAULT_IMAGE, help=f"the PyTorch image (default {DEFAULT_IMAGE})")
    p.add_argument("--data", metavar="DIR", help="real CIFAR-10 (its python pickles) on this machine")
    p.add_argument("--data-vfolder", metavar="NAME",
                   help=f"a vfolder holding it for the Corral runs (default: --data uploaded to {DATA_VFOLDER})")
    p.add_argument("--stack", choices=("auto", "embedded", "endpoint"), default="auto",
                   help="embedded: bring up manager + one agent here; endpoint: a running Corral (--endpoint, "
                        "--config or the SDK's config/env); auto (default): endpoint when --endpoint, --config, "
                        "CORRAL_CONFIG or CORRAL_ENDPOINT is given, else embedded")
    p.add_argument("--endpoint", help="a running Corral manager's URL (keys from --config or the SDK's config/env)")
    p.add_argument("--config", type=Path, help="client config file with the keypair (default: the SDK's)")
    p.add_argument("--resource-group", help="where the sessions run (default: the user's default group)")
    p.add_argument("--cluster-mode", choices=("multi-node", "single-node"), default="multi-node",
                   help="for the distributed sessions (default multi-node; single-node: N kernels on one node)")
    p.add_argument("--rig-state-dir", type=Path, metavar="DIR",
                   help="the multi-host rig (multihost.sh --state-dir) whose hosts run the direct distributed runs")
    p.add_argument("--rig", type=_positive_int, metavar="N",
                   help="build a multi-host rig of N hosts on this machine (configs/bootstrap/multihost.sh; root), "
                        "run Corral on it (a manager on h1, an agent per host) and this benchmark against it; "
                        "distributed N then really crosses hosts")
    p.add_argument("--skip-direct", action="store_true", help="no baseline without Corral")
    p.add_argument("--skip-corral", action="store_true", help="only the baseline")
    p.add_argument("--run-timeout", type=_positive_float, default=1800.0, metavar="S", help="per run (default 1800)")
    p.add_argument("--plot", type=Path, default=DEFAULT_PLOT, help=f"the PNG (default {DEFAULT_PLOT})")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up run of each path")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.skip_direct and args.skip_corral:
        parser.error("--skip-direct and --skip-corral leave nothing to run")
    if args.batch_size < max(args.workers):
        parser.error(f"--batch-size {args.batch_size} is smaller than {max(args.workers)} workers")
    if args.data and not Path(args.data).is_dir():
        parser.error(f"--data {args.data}: no such directory")
    if args.train_size is not None and args.train_size < max(args.workers):
        parser.error(f"--train-size {args.train_size} is smaller than {max(args.workers)} workers")
    if args.rig_state_dir is not None and not (args.rig_state_dir / "rig.env").is_file():
        parser.error(f"--rig-state-dir {args.rig_state_dir}: no rig there (no rig.env; multihost.sh up N)")
    return args


def train_args(args: argparse.Namespace, *, data: str | None = None) -> list[str]:
    """The training script's options shared by every run of this benchmark."""
    out = ["--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
    if args.train_size:
        out += ["--train-size", str(args.train_size)]
    if args.test_size:
        out += ["--test-size", str(args.test_size)]
    if data:
        out += ["--data", data, "--dataset", "cifar10"]
    return out


def train_command(train_options: Sequence[str], nproc: int | None = None, source: bytes | None = None) -> list[str]:
    """``python -c BOOTSTRAP [--nproc N] OPTIONS``, the script inside."""
    source = TRAIN_SCRIPT.read_bytes() if source is None else source
    payload = base64.b64encode(zlib.compress(source, 9)).decode()
    command = ["python", "-c", BOOTSTRAP.replace("{payload}", payload)]
    if nproc is not None:
        command += ["--nproc", str(nproc)]
    return command + list(train_options)


# -- results and statistics ----------------------------------------------------------------------------


_KERNEL_PREFIX = re.compile(r"^\[([A-Za-z0-9_.-]+)\] ?")


def kernel_lines(logs: str, kernel: str = "main1") -> list[str]:
    """The lines of ``kernel`` in a session's logs (``[main1] ...``, prefix removed); all lines when
    no line carries a kernel prefix (a single-kernel session's plain output)."""
    lines = logs.splitlines()
    prefixed = [(m, line) for line in lines if (m := _KERNEL_PREFIX.match(line))]
    if not prefixed:
        return lines
    return [line[m.end():] for m, line in prefixed if m.group(1) == kernel]


def parse_result(output: str, kernel: str | None = "main1") -> dict[str, Any] | None:
    """The last ``DDP_RESULT {json}`` of ``kernel``'s lines (any line when kernel is None), or None."""
    lines = kernel_lines(output, kernel) if kernel else output.splitlines()
    for line in reversed(lines):
        line = line.strip()
        if kernel is None:
            line = _KERNEL_PREFIX.sub("", line, count=1)
        if line.startswith(RESULT_PREFIX):
            try:
                doc = json.loads(line[len(RESULT_PREFIX):])
            except ValueError:
                return None
            if isinstance(doc, dict) and isinstance(doc.get("epoch_times_s"), list) and doc["epoch_times_s"]:
                return doc
            return None
    return None


def timed_epochs(epoch_times: Sequence[float]) -> list[float]:
    """The epochs that count: all but the first (warm-up) when there are 2 or more."""
    return list(epoch_times[1:]) if len(epoch_times) >= 2 else list(epoch_times)


def mean_stdev(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("no values")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) >= 2 else 0.0)


def run_epoch_s(result: dict[str, Any]) -> float:
    """One run's time per epoch: the mean of its timed epochs."""
    return statistics.fmean(timed_epochs(result["epoch_times_s"]))


def scaling_efficiency(t1: float | None, tn: float | None, n: int) -> float | None:
    """E(N) = T(1) / (N * T(N)) for a fixed global batch: 1.0 is perfect linear scaling."""
    if t1 is None or tn is None or tn <= 0 or n < 1:
        return None
    return t1 / (n * tn)


def overhead(corral_s: float | None, direct_s: float | None) -> float | None:
    """Corral's overhead per epoch: corral / direct - 1 (0.03 is 3 % slower through Corral)."""
    if corral_s is None or direct_s is None or direct_s <= 0:
        return None
    return corral_s / direct_s - 1


@dataclass
class Point:
    """One (path, mode, N): its runs and what became of it."""

    path: str
    mode: str
    workers: int
    status: str = "pending"  # ok | skipped | failed | pending
    reason: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)  # per run: start to exit, as seen by the driver
    errors: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, int]:
        return self.path, self.mode, self.workers

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "mode": self.mode, "workers": self.workers, "status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.errors:
            out["errors"] = self.errors[:5]
        if self.results:
            per_run = [run_epoch_s(r) for r in self.results]
            epoch_mean, epoch_sd = mean_stdev(per_run)
            out.update(
                runs=len(self.results),
                epoch_s_mean=round(epoch_mean, 4), epoch_s_stdev=round(epoch_sd, 4),
                epoch_s_per_run=[round(v, 4) for v in per_run], epoch_s_min=round(min(per_run), 4),
                images_per_s_mean=round(statistics.fmean(r["images_per_s"] for r in self.results), 2),
                test_accuracy_mean=round(statistics.fmean(r["test_accuracy"] for r in self.results), 4),
                warmup_excluded=all(len(r["epoch_times_s"]) >= 2 for r in self.results),
                dataset=self.results[0].get("dataset"), world_size=self.results[0].get("world_size"),
                threads_per_worker=self.results[0].get("threads_per_worker"),
            )
            if self.wall_s:
                out["wall_s_mean"] = round(statistics.fmean(self.wall_s), 3)
        return out


def analyse(points: Iterable[Point], target: float = OVERHEAD_TARGET) -> dict[str, Any]:
    """Summaries with scaling efficiency, Corral's overhead per (mode, N), and which mode is faster per N."""
    summaries = {p.key: p.summary() for p in points}
    for (path, mode, n), s in summaries.items():
        base = summaries.get((path, mode, 1), {})
        s["efficiency"] = _round(scaling_efficiency(base.get("epoch_s_mean"), s.get("epoch_s_mean"), n))
    overheads = []
    for (path, mode, n), s in sorted(summaries.items(), key=lambda kv: (MODES.index(kv[0][1]), kv[0][2])):
        if path != "corral":
            continue
        d = summaries.get(("direct", mode, n), {})
        value = overhead(s.get("epoch_s_mean"), d.get("epoch_s_mean"))
        if value is None:
            continue
        best = overhead(s.get("epoch_s_min"), d.get("epoch_s_min"))  # less sensitive to a busy machine
        entry = {"mode": mode, "workers": n, "corral_epoch_s": s["epoch_s_mean"], "direct_epoch_s": d["epoch_s_mean"],
                 "overhead": round(value, 4), "pass": value <= target,
                 "overhead_best_run": _round(best)}
        s["overhead"] = entry["overhead"]
        overheads.append(entry)
    faster = []
    for path in PATHS:
        for n in sorted({k[2] for k in summaries if k[0] == path}):
            par = summaries.get((path, "parallel", n), {}).get("epoch_s_mean")
            dist = summaries.get((path, "distributed", n), {}).get("epoch_s_mean")
            if par is not None and dist is not None:
                faster.append({"path": path, "workers": n, "faster": "parallel" if par <= dist else "distributed",
                               "parallel_epoch_s": par, "distributed_epoch_s": dist})
    return {
        "points": [summaries[k] for k in sorted(summaries, key=lambda k: (PATHS.index(k[0]), MODES.index(k[1]), k[2]))],
        "overhead": overheads,
        "overhead_target": target,
        "overhead_pass": all(o["pass"] for o in overheads) if overheads else None,
        "faster_mode": faster,
    }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def format_table(analysis: dict[str, Any]) -> str:
    """The human table: one row per mode, N and path."""
    header = (f"{'mode':<12}{'N':>3}  {'path':<7}{'time/epoch (s)':>18}{'images/s':>11}{'efficiency':>12}"
              f"{'test acc':>10}{'vs direct':>15}  note")
    lines = [header, "-" * len(header)]
    rows = sorted(analysis["points"], key=lambda s: (MODES.index(s["mode"]), s["workers"], PATHS.index(s["path"])))
    for s in rows:
        if "epoch_s_mean" in s:
            timing = f"{s['epoch_s_mean']:.3f} ± {s['epoch_s_stdev']:.3f}"
            images = f"{s['images_per_s_mean']:.0f}"
            eff = "-" if s.get("efficiency") is None else f"{s['efficiency']:.2f}"
            acc = f"{s['test_accuracy_mean']:.3f}"
        else:
            timing = images = eff = acc = "-"
        if s.get("overhead") is not None:
            verdict = "pass" if s["overhead"] <= analysis["overhead_target"] else "MISS"
            over = f"{s['overhead'] * 100:+.1f} % {verdict}"
        else:
            over = ""
        note = s["status"] if s["status"] != "ok" else ""
        if s.get("reason"):
            note += f": {s['reason']}"
        if s["status"] == "ok" and s.get("runs"):
            note = f"{s['runs']} run(s)"
        lines.append(f"{s['mode']:<12}{s['workers']:>3}  {s['path']:<7}{timing:>18}{images:>11}{eff:>12}{acc:>10}"
                     f"{over:>15}  {note}".rstrip())
    return "\n".join(lines)


# -- the plot ----------------------------------------------------------------------------------------------


def plot(analysis: dict[str, Any], path: Path, title: str) -> str:
    """Time per epoch against N, one line per (path, mode), error bars = stdev; returns the backend used."""
    series = []
    for p in PATHS:
        for mode in MODES:
            pts = sorted((s for s in analysis["points"] if s["path"] == p and s["mode"] == mode
                          and "epoch_s_mean" in s), key=lambda s: s["workers"])
            if pts:
                series.append((f"{mode} ({p})", [s["workers"] for s in pts], [s["epoch_s_mean"] for s in pts],
                               [s["epoch_s_stdev"] for s in pts]))
    xs = sorted({x for _, xv, _, _ in series for x in xv}) or [1]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:  # noqa: BLE001 - no (working) matplotlib: the small PNG writer does it
        sys.path.insert(0, str(HERE))
        try:
            from png_plot import Series, line_chart
        finally:
            sys.path.remove(str(HERE))
        colors = {"parallel": (31, 119, 180), "distributed": (214, 39, 40)}  # one colour per mode; direct dashed
        line_chart(path, [Series(label, x, y, err, color=colors[label.split()[0]], dashed="direct" in label)
                          for label, x, y, err in series], title=title,
                   x_label="number of workers", y_label="time per epoch (s)", x_ticks=xs)
        return "png_plot"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for label, x, y, err in series:
        ax.errorbar(x, y, yerr=err, marker="o" if label.startswith("parallel") else "s", capsize=4,
                    color="tab:blue" if label.startswith("parallel") else "tab:red",
                    linestyle="--" if "direct" in label else "-", label=label)
    ax.set_xticks(xs)
    ax.set_xlabel("number of workers")
    ax.set_ylabel("time per epoch (s)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return "matplotlib"


# -- running things ----------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    result: dict[str, Any] | None
    wall_s: float
    error: str = ""
    output_tail: str = ""


@dataclass
class RigHost:
    name: str
    ip: str
    docker_url: str


def parse_rig_status(stdout: str) -> list[RigHost]:
    """The hosts in ``multihost.sh status``'s lines (``host=h1 ... ip=... docker=unix://...``)."""
    hosts = []
    for line in stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if {"host", "ip", "docker"} <= fields.keys() and fields.get("dockerd", "running") == "running" \
                and fields.get("link", "up") == "up":
            hosts.append(RigHost(fields["host"], fields["ip"], fields["docker"]))
    return sorted(hosts, key=lambda h: int(h.name[1:]) if h.name[1:].isdigit() else 0)


def rig_hosts(state_dir: Path) -> list[RigHost]:
    proc = subprocess.run(["bash", str(RIG_SCRIPT), "--state-dir", str(state_dir), "status"], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    return parse_rig_status(proc.stdout)


@dataclass
class Stack:
    """What the benchmark runs against: a Corral endpoint (or none), and where the direct runs go."""

    config: Any = None  # corral.client.ClientConfig
    kind: str = "none"  # embedded | endpoint | none
    rig: list[RigHost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def use_endpoint(args: argparse.Namespace, environ: Any = None) -> bool:
    """Whether to benchmark an already-running Corral rather than an embedded stack."""
    env = os.environ if environ is None else environ
    if args.stack != "auto":
        return args.stack == "endpoint"
    return bool(args.endpoint or args.config or env.get("CORRAL_CONFIG") or env.get("CORRAL_ENDPOINT"))


@contextlib.asynccontextmanager
async def ensure_stack(args: argparse.Namespace) -> AsyncIterator[Stack]:
    """The Corral to benchmark: an already-running one (``use_endpoint``: ``--endpoint``/``--config``/
    the SDK's config, e.g. tests/fixtures/rig_stack.py's ``corral_on_rig`` with this driver run in the
    head host's namespace), else an embedded stack (manager + one agent on the local Docker daemon) in
    a temp dir, stopped afterwards. The rig's hosts (``--rig-state-dir``) carry the direct runs.
    The place to add bringing up the rig and a Corral on it."""
    stack = Stack()
    if args.rig_state_dir is not None:
        stack.rig = rig_hosts(args.rig_state_dir)
        stack.notes.append(f"rig: {len(stack.rig)} host(s) up in {args.rig_state_dir}")
    if args.skip_corral:
        yield stack
        return
    if use_endpoint(args):
        from corral.client.config import load_client_config

        stack.config = load_client_config(args.config, endpoint=args.endpoint)
        stack.kind = "endpoint"
        yield stack
        return
    from corral.client.config import ClientConfig
    from corral.client.embedded_stack import EmbeddedStack

    root = Path(tempfile.mkdtemp(prefix="ddp-cifar-", dir="/tmp"))
    embedded = EmbeddedStack(root / "stack", "127.0.0.1", 0, write_client_config=False)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # its "ready at" lines: stdout is for the results
            await embedded.start()
        stack.config = ClientConfig(embedded.manager.url, embedded.secrets.admin_access_key,
                                    embedded.secrets.admin_secret_key)
        stack.kind = "embedded"
        yield stack
    finally:
        await embedded.stop()
        shutil.rmtree(root, ignore_errors=True)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _cpus(value: float) -> str:
    return f"{value:g}"


class CorralRunner:
    """Runs points as batch sessions through the SDK."""

    def __init__(self, client: Any, args: argparse.Namespace, token: str) -> None:
        self.client = client
        self.args = args
        self.token = token
        self.mounts: list[str] = []
        self.data_path: str | None = None
        self.count = 0

    @staticmethod
    def supports_clusters(client: Any) -> bool:
        params = inspect.signature(client.create_session).parameters
        return "cluster_size" in params and "cluster_mode" in params

    async def prepare_data(self) -> None:
        args = self.args
        if not (args.data or args.data_vfolder):
            return
        name = args.data_vfolder or DATA_VFOLDER
        if args.data and not args.data_vfolder:
            from corral.client import Conflict

            with contextlib.suppress(Conflict):
                await self.client.create_vfolder(name)
            log(f"uploading {args.data} to vfolder {name} (resumes; files already there are kept)")
            await self.client.upload(name, args.data)
        self.mounts = [f"{name}:{DATA_MOUNT}:ro"]
        self.data_path = DATA_MOUNT

    async def check(self, mode: str, n: int) -> str | None:
        """Why the point cannot run here (None: it can)."""
        args = self.args
        group = args.resource_group
        agents = [a for a in await self.client.list_agents()
                  if a.status == "ALIVE" and (group is None or a.resource_group == group)]
        where = f"resource group {group}" if group else "the cluster"
        capacity = sorted((_slot(a.available_slots.get("cpu")) for a in agents), reverse=True)
        if mode == "distributed" and n > 1:
            if not self.supports_clusters(self.client):
                return "this SDK's create_session has no cluster_size/cluster_mode yet"
            if args.cluster_mode == "multi-node":
                fitting = [c for c in capacity if c >= args.cpus_per_worker]
                if len(fitting) < n:
                    return (f"needs {n} alive nodes with {_cpus(args.cpus_per_worker)} CPU(s) each; {where} has "
                            f"{len(fitting)} ({len(agents)} alive)")
                return None
        need = args.cpus_per_worker * n
        if not capacity or capacity[0] < need:
            return f"needs one node with {_cpus(need)} CPUs; the largest in {where} has {_cpus(capacity[0] if capacity else 0)}"
        return None

    async def run(self, mode: str, n: int, run_index: int, options: Sequence[str] | None = None) -> RunOutcome:
        args = self.args
        self.count += 1
        name = f"ddp-{mode[:4]}{n}-{self.token}-{self.count}"
        opts = list(options) if options is not None else train_args(args, data=self.data_path)
        cluster: dict[str, Any] = {}
        if mode == "parallel":
            command = train_command(opts, nproc=n)
            cpus, mem = args.cpus_per_worker * n, args.mem_per_worker * n
        else:
            command = train_command(opts)
            cpus, mem = args.cpus_per_worker, args.mem_per_worker
            if n > 1:
                cluster = {"cluster_size": n, "cluster_mode": args.cluster_mode}
        from corral.client import CorralError

        started = time.perf_counter()
        session_id = ""
        logs = ""
        try:
            session = await self.client.create_session(
                image=args.image, type="batch", name=name, command=command,
                resources={"cpu": _cpus(cpus), "mem": f"{mem >> 20}m"}, mounts=self.mounts or None,
                resource_group=args.resource_group, **cluster,
            )
            session_id = session.id
            final = await self.client.wait_for_status(session_id, {"TERMINATED"}, timeout=args.run_timeout)
            wall = time.perf_counter() - started
            logs = await self.client.logs(session_id)
            result = parse_result(logs)
            if final.exit_code not in (0, None) or result is None:
                return RunOutcome(None, wall, f"session {name} ended with exit code {final.exit_code}"
                                  + ("" if result else ", no DDP_RESULT line"), _tail(logs))
            return RunOutcome(result, wall)
        except CorralError as exc:
            if session_id:
                with contextlib.suppress(Exception):
                    logs = await self.client.logs(session_id)
            return RunOutcome(None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}", _tail(logs))
        finally:
            if session_id:
                with contextlib.suppress(Exception):
                    await self.client.destroy_session(session_id)


def _slot(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


class DirectRunner:
    """The same runs with the docker CLI, no Corral: same image, command, CPU and memory limits."""

    def __init__(self, args: argparse.Namespace, token: str, rig: list[RigHost]) -> None:
        self.args = args
        self.token = token
        self.rig = rig
        self.label = f"{RUN_LABEL}=ddp_cifar-{token}"
        self.count = 0
        self.host_cpus = docker_cpus(rig[0].docker_url if rig else None)

    def data_binds(self) -> list[str]:
        return ["-v", f"{Path(self.args.data).resolve()}:{DATA_MOUNT}:ro"] if self.args.data else []

    def options(self) -> list[str]:
        return train_args(self.args, data=DATA_MOUNT if self.args.data else None)

    def limits(self, cpus: float, mem: int) -> list[str]:
        return ["--cpus", _cpus(cpus), "--memory", str(mem), "--memory-swap", str(mem), *DOCKER_LIMITS,
                "--label", self.label]

    def check(self, mode: str, n: int) -> str | None:
        cpus = self.args.cpus_per_worker * (n if mode == "parallel" else 1)
        if self.host_cpus and cpus > self.host_cpus:
            return f"needs {_cpus(cpus)} CPUs in one container; the Docker host has {self.host_cpus}"
        if self.rig:
            hosts = self.rig[:n] if mode == "distributed" else self.rig[:1]
            if len(hosts) < (n if mode == "distributed" else 1):
                return f"needs {n} rig hosts; {len(self.rig)} are up"
            missing = [h.name for h in hosts if not _docker_has_image(h.docker_url, self.args.image)]
            if missing:
                return (f"image {self.args.image} is not on rig host(s) {', '.join(missing)} "
                        f"(multihost.sh load-image {self.args.image})")
        return None

    async def run(self, mode: str, n: int, run_index: int, options: Sequence[str] | None = None) -> RunOutcome:
        args = self.args
        self.count += 1
        base = f"ddp-direct-{self.token}-{self.count}"
        opts = list(options) if options is not None else self.options()
        started = time.perf_counter()
        if mode == "parallel" or n == 1:
            nproc = n if mode == "parallel" else None
            cpus = args.cpus_per_worker * (n if mode == "parallel" else 1)
            mem = args.mem_per_worker * (n if mode == "parallel" else 1)
            docker = ["docker", "-H", self.rig[0].docker_url] if self.rig else ["docker"]
            cmd = [*docker, "run", "--rm", "--name", base, *self.limits(cpus, mem), *self.data_binds(), args.image,
                   *train_command(opts, nproc=nproc)]
            code, out = await _run_process(cmd, args.run_timeout, cleanup=[[*docker, "rm", "-f", base]])
            return _outcome(code, out, time.perf_counter() - started, base)
        return await self._distributed(n, opts, base, started)

    async def _distributed(self, n: int, opts: list[str], base: str, started: float) -> RunOutcome:
        args = self.args
        command = train_command(opts)
        network = None
        if self.rig:
            master = self.rig[0].ip
            hosts = [["docker", "-H", h.docker_url] for h in self.rig[:n]]
            net_opts = ["--network", "host"]
            ifname = "eth0"
            port = MASTER_PORT + 1 + secrets.randbelow(400)
        else:
            network = base
            code, out = await _run_process(["docker", "network", "create", "--label", self.label, network], 60)
            if code != 0:
                return RunOutcome(None, 0.0, f"docker network create failed: {out.strip()}")
            master = f"{base}-0"
            hosts = [["docker"]] * n
            net_opts = ["--network", network]
            ifname = "eth0"
            port = MASTER_PORT
        try:
            procs = []
            for rank in range(n):
                env = {"WORLD_SIZE": n, "RANK": rank, "LOCAL_RANK": 0, "MASTER_ADDR": master, "MASTER_PORT": port,
                       "GLOO_SOCKET_IFNAME": ifname}
                env_opts = [x for k, v in env.items() for x in ("-e", f"{k}={v}")]
                name = f"{base}-{rank}"
                cmd = [*hosts[rank], "run", "--rm", "--name", name, "--hostname", name, *net_opts,
                       *self.limits(args.cpus_per_worker, args.mem_per_worker), *env_opts, *self.data_binds(),
                       args.image, *command]
                procs.append(_run_process(cmd, args.run_timeout, cleanup=[[*hosts[rank], "rm", "-f", name]]))
            outcomes = await asyncio.gather(*procs)
        finally:
            if network:
                await _run_process(["docker", "network", "rm", network], 60)
        wall = time.perf_counter() - started
        failed = [(rank, code, out) for rank, (code, out) in enumerate(outcomes) if code != 0]
        if failed:
            rank, code, out = failed[0]
            return RunOutcome(None, wall, f"rank {rank} exited {code}", _tail(out))
        return _outcome(0, outcomes[0][1], wall, base)


def _outcome(code: int, out: str, wall: float, name: str) -> RunOutcome:
    result = parse_result(out, kernel=None)
    if code != 0 or result is None:
        return RunOutcome(None, wall, f"{name} exited {code}" + ("" if result else ", no DDP_RESULT line"), _tail(out))
    return RunOutcome(result, wall)


async def _run_process(cmd: list[str], timeout: float, cleanup: list[list[str]] | None = None) -> tuple[int, str]:
    """Exit code and combined output; on a timeout (or cancellation) the process is killed and
    ``cleanup`` run (e.g. ``docker rm -f``), and a timeout returns 124."""
    proc = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    timed_out = False
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        timed_out = True
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
            for extra in cleanup or []:
                await asyncio.to_thread(subprocess.run, extra, capture_output=True, timeout=60)
    if timed_out:
        return 124, f"timed out after {timeout:g} s"
    return proc.returncode or 0, out.decode(errors="replace")


def docker_cpus(docker_url: str | None) -> int | None:
    cmd = ["docker", *(["-H", docker_url] if docker_url else []), "info", "--format", "{{.NCPU}}"]
    with contextlib.suppress(Exception):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        if proc.returncode == 0 and proc.stdout.strip().isdigit():
            return int(proc.stdout.strip())
    return None


def _docker_has_image(docker_url: str | None, image: str) -> bool:
    cmd = ["docker", *(["-H", docker_url] if docker_url else []), "image", "inspect", "--format", "{{.Id}}", image]
    with contextlib.suppress(Exception):
        return subprocess.run(cmd, capture_output=True, timeout=60, stdin=subprocess.DEVNULL).returncode == 0
    return False


def remove_labelled(label: str, docker_urls: Sequence[str | None] = (None,)) -> int:
    """Containers (and networks) of this run left behind on these daemons; removed. Returns how many containers."""
    count = 0
    for url in docker_urls:
        docker = ["docker", *(["-H", url] if url else [])]

        def ids(*what: str) -> list[str]:
            with contextlib.suppress(Exception):
                return subprocess.run([*docker, *what, "--filter", f"label={label}"], capture_output=True, text=True,
                                      timeout=60, stdin=subprocess.DEVNULL).stdout.split()
            return []

        found = ids("ps", "-aq")
        if found:
            subprocess.run([*docker, "rm", "-f", *found], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        nets = ids("network", "ls", "-q")
        if nets:
            subprocess.run([*docker, "network", "rm", *nets], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        count += len(found)
    return count


def host_info() -> dict[str, Any]:
    info: dict[str, Any] = {"hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
                            "cpus": os.cpu_count(), "docker_cpus": docker_cpus(None)}
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["mem_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    return info


async def image_present(image: str, client: Any | None = None) -> bool:
    """On the local Docker daemon, or (``client``) on at least one of a remote manager's agents."""
    if client is not None:
        with contextlib.suppress(Exception):
            return any(image == i.name for i in await client.list_images())
        return False
    from corral.kernels.builder import image_exists

    return await image_exists(image)


# -- the benchmark -------------------------------------------------------------------------------------


async def _measure(runner: Any, point: Point, run_index: int) -> None:
    outcome = await runner.run(point.mode, point.workers, run_index)
    tag = f"run {run_index + 1} {point.mode} N={point.workers} {point.path}"
    if outcome.result is None:
        point.errors.append(outcome.error)
        log(f"{tag}: FAILED: {outcome.error}")
        for line in outcome.output_tail.splitlines():
            log(f"    {line}")
        return
    point.results.append(outcome.result)
    point.wall_s.append(outcome.wall_s)
    r = outcome.result
    log(f"{tag}: {run_epoch_s(r):.3f} s/epoch ({', '.join(f'{t:.2f}' for t in r['epoch_times_s'])}), "
        f"{r['images_per_s']:.0f} images/s, test accuracy {r['test_accuracy']:.3f}, wall {outcome.wall_s:.1f} s")


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    token = secrets.token_hex(3)
    started = time.perf_counter()
    log(f"{args.epochs} epoch(s) per run, {args.runs} run(s) per point, global batch {args.batch_size}, workers "
        f"{','.join(map(str, args.workers))}, modes {','.join(args.modes)} (the paper: {PAPER['epochs']} epochs, "
        f"{PAPER['runs']} runs, batch {PAPER['batch_size']}, 1-4 workers); epoch 1 is warm-up and left out of the "
        f"time per epoch" + (" (1 epoch: kept)" if args.epochs < 2 else ""))
    points = {(path, mode, n): Point(path, mode, n) for path in PATHS for mode in args.modes for n in args.workers
              if not (path == "corral" and args.skip_corral) and not (path == "direct" and args.skip_direct)}
    notes: list[str] = []
    async with ensure_stack(args) as stack:
        notes += stack.notes
        from corral.client import AsyncCorralClient

        client_cm = AsyncCorralClient(stack.config) if stack.config is not None else contextlib.nullcontext(None)
        async with client_cm as client:
            where = []
            if stack.kind == "endpoint" and not await image_present(args.image, client):
                where.append(f"any agent of {stack.config.endpoint}")
            if (stack.kind == "embedded" or not args.skip_direct) and not await image_present(args.image):
                where.append("this machine's Docker daemon")
            if where:
                raise SystemExit(f"ddp_cifar: image {args.image} is not on {' nor '.join(where)}: build it with "
                                 f"`corral image build {IMAGE_RECIPE}` (tags corral/pytorch:2.13-cpu or -cuda, "
                                 f"and corral/pytorch:2.13)")
            runners: dict[str, Any] = {}
            if client is not None:
                runners["corral"] = CorralRunner(client, args, token)
                await runners["corral"].prepare_data()
            if not args.skip_direct:
                runners["direct"] = DirectRunner(args, token, stack.rig)
                if args.rig_state_dir is None and "distributed" in args.modes and max(args.workers) > 1:
                    notes.append("direct distributed runs: N containers on one bridge network of the local daemon "
                                 "(no --rig-state-dir)")
            for point in points.values():
                runner = runners[point.path]
                why = (await runner.check(point.mode, point.workers)) if point.path == "corral" else \
                    runner.check(point.mode, point.workers)
                if why:
                    point.status, point.reason = "skipped", why
                    log(f"{point.mode} N={point.workers} {point.path}: skipped: {why}")
            if not args.no_warmup:
                warm = ["--epochs", "1", "--train-size", str(max(args.workers) * 100), "--test-size", "100",
                        "--batch-size", str(max(args.workers) * 100)]
                for path, runner in runners.items():
                    outcome = await runner.run("parallel", 1, -1, options=warm)
                    log(f"warm-up ({path}): {'ok' if outcome.result else 'FAILED: ' + outcome.error}, "
                        f"{outcome.wall_s:.1f} s")
            for run_index in range(args.runs):
                for mode in args.modes:
                    for n in args.workers:
                        # Alternate which path goes first, so that drift over the run hits both alike.
                        order = PATHS if run_index % 2 == 0 else PATHS[::-1]
                        for path in order:
                            point = points.get((path, mode, n))
                            if point is None or point.status == "skipped":
                                continue
                            await _measure(runners[path], point, run_index)
    left = remove_labelled(f"{RUN_LABEL}=ddp_cifar-{token}", [None, *(h.docker_url for h in stack.rig)]) \
        if not args.skip_direct else 0
    for point in points.values():
        if point.status == "skipped":
            continue
        point.status = "ok" if point.results else "failed"
        if point.results and point.errors:
            point.reason = f"{len(point.errors)} of {args.runs} run(s) failed"
    analysis = analyse(points.values())
    title = f"CIFAR-10 DDP: time per epoch ({args.runs} runs)"
    plot_backend = plot(analysis, args.plot, title)
    print(format_table(analysis))
    print(f"time per epoch: mean ± stdev over runs of each run's mean epoch time"
          f"{', epoch 1 (warm-up) excluded' if args.epochs >= 2 else ''}; efficiency = T(1) / (N x T(N)) "
          f"(same mode and path; 1.00 = linear scaling); vs direct = corral / direct - 1, target <= "
          f"{OVERHEAD_TARGET * 100:.0f} %")
    for o in analysis["overhead"]:
        best = "" if o["overhead_best_run"] is None else f"; best run vs best run {o['overhead_best_run'] * 100:+.2f} %"
        print(f"corral overhead {o['mode']} N={o['workers']}: {o['overhead'] * 100:+.2f} % "
              f"({o['corral_epoch_s']:.3f} s vs {o['direct_epoch_s']:.3f} s{best}) {'pass' if o['pass'] else 'MISS'}")
    if analysis["overhead_pass"] is not None:
        print(f"corral overhead target (<= {OVERHEAD_TARGET * 100:.0f} % per epoch): "
              f"{'pass' if analysis['overhead_pass'] else 'MISS'}")
    for f in analysis["faster_mode"]:
        print(f"N={f['workers']} ({f['path']}): {f['faster']} is faster "
              f"({f['parallel_epoch_s']:.3f} s parallel vs {f['distributed_epoch_s']:.3f} s distributed)")
    print(f"plot: {args.plot} ({plot_backend})")
    for note in notes:
        print(f"note: {note}")
    return {
        "benchmark": "ddp_cifar",
        "config": {
            "workers": args.workers, "modes": args.modes, "runs": args.runs, "epochs": args.epochs,
            "batch_size": args.batch_size, "train_size": args.train_size, "test_size": args.test_size,
            "seed": args.seed, "cpus_per_worker": args.cpus_per_worker, "mem_per_worker": args.mem_per_worker,
            "image": args.image, "cluster_mode": args.cluster_mode, "stack": stack.kind,
            "endpoint": stack.config.endpoint if stack.config is not None else None,
            "rig_hosts": [h.name for h in stack.rig], "data": "cifar10" if (args.data or args.data_vfolder) else "synthetic",
            "warmup_epoch_excluded": args.epochs >= 2,
        },
        "paper": PAPER,
        "host": host_info(),
        **analysis,
        "leftover_containers": left,
        "plot": str(args.plot), "plot_backend": plot_backend,
        "notes": notes,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }


def without_rig_option(argv: Sequence[str]) -> list[str]:
    """The command line less ``--rig N`` / ``--rig=N`` (what the run inside the rig gets)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--rig":
            skip = True
        elif not arg.startswith("--rig="):
            out.append(arg)
    return out


def run_on_rig(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``--rig N``: a rig of N hosts with Corral on it; this benchmark again, inside the head host's network
    namespace (where the manager is reachable), against it, the rig's dockerds carrying the direct runs."""
    sys.path.insert(0, str(HERE.parent))  # the rig fixtures live with the tests
    from tests.fixtures.multihost import start_rig
    from tests.fixtures.rig_stack import corral_on_rig

    log(f"building a rig of {args.rig} hosts and loading {args.image} into each (a few minutes)")
    with start_rig(args.rig) as rig:
        root = Path(tempfile.mkdtemp(prefix="ddp-cifar-rig-", dir="/tmp"))
        with corral_on_rig(rig, root, images=[args.image]) as stack:
            log(f"Corral on the rig: manager {stack.manager_url}, agents on {', '.join(h.name for h in rig)}")
            inner = [str(Path(__file__).resolve()), *without_rig_option(argv), "--stack", "endpoint",
                     "--config", str(stack.client_config), "--rig-state-dir", str(rig.state_dir)]
            return stack.python(*inner, timeout=24 * 3600).returncode


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.skip_direct and shutil.which("docker") is None:
        raise SystemExit("ddp_cifar: the direct baseline needs the docker CLI (or --skip-direct)")
    if args.rig:
        return run_on_rig(args, argv)
    report = asyncio.run(run_benchmark(args))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

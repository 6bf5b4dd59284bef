"""Data-parallel training of a small CNN on CIFAR-10 (or a generated CIFAR-shaped set) with DDP.

The training side of benchmarks/ddp_cifar.py, the seed paper's "parallel vs distributed
training" experiment (CIFAR-10, a CNN, global batch 1200, 1-4 workers). Needs only torch and
numpy (torchvision is used for reading CIFAR-10 when it imports, never for downloading).

How it runs:
  python ddp_cifar_train.py                      one worker (world size 1, no process group)
  python ddp_cifar_train.py --nproc N            N local workers spawned here ("parallel": one
                                                 machine or kernel, MASTER_ADDR=127.0.0.1, a free port)
  torchrun --nproc-per-node N ddp_cifar_train.py DDP across torchrun's world
  WORLD_SIZE=N RANK=i MASTER_ADDR=.. MASTER_PORT=.. python ddp_cifar_train.py
                                                 one worker per process, as in each kernel of a
                                                 Corral cluster session ("distributed")
  (--nproc with WORLD_SIZE>1 in the environment: N workers per process, ranks RANK*N+local)

Data: real CIFAR-10 when ``--data DIR`` holds the python pickles (``DIR/cifar-10-batches-py/``
or ``DIR`` itself: data_batch_1..5, test_batch; torchvision's layout is the same folder),
otherwise a generated set with learnable class structure (per-class low-frequency colour
templates, shifted, flipped, over a random low-frequency background plus noise), the same
for every rank from ``--seed``. Nothing is ever downloaded.

The global batch (``--batch-size``, default 1200) is split across the workers. Each epoch is
timed on rank 0 between barriers; epoch 1 is marked as warm-up. Rank 0 prints progress lines
and, last, exactly one line ``DDP_RESULT {json}``; other ranks print only errors.
Exit status 0 on success, 1 on a failure while training, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import pickle
import platform
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

RESULT_PREFIX = "DDP_RESULT "
NUM_CLASSES = 10
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
SYNTHETIC_TRAIN_SIZE = 12000
SYNTHETIC_TEST_SIZE = 2000
MAX_SHIFT = 4  # generated data: pixels a template may be shifted by
BACKGROUND = 1.0  # generated data: weight of the random background
NOISE = 0.8  # generated data: pixel noise
PAPER = "CIFAR-10, CNN, batch 1200, 50 epochs, 10 runs, 1-4 workers"


# -- arguments -------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddp_cifar_train.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", metavar="DIR", help="where CIFAR-10's python pickles are (else: generated data)")
    parser.add_argument("--dataset", choices=("auto", "cifar10", "synthetic"), default="auto",
                        help="auto (default): CIFAR-10 when found under --data, else synthetic; "
                             "cifar10: fail when it is not found")
    parser.add_argument("--train-size", type=_positive_int, metavar="N",
                        help=f"training images (default: all 50000 of CIFAR-10, {SYNTHETIC_TRAIN_SIZE} generated)")
    parser.add_argument("--test-size", type=_positive_int, metavar="N",
                        help=f"test images (default: all 10000 of CIFAR-10, {SYNTHETIC_TEST_SIZE} generated)")
    parser.add_argument("--epochs", type=_positive_int, default=3, help="default 3 (the paper: 50)")
    parser.add_argument("--batch-size", type=_positive_int, default=1200,
                        help="global batch, split across the workers (default 1200, as in the paper)")
    parser.add_argument("--lr", type=_positive_float, default=None,
                        help="learning rate (default: 0.003 for adam, 0.05 for sgd)")
    parser.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="data generation, init and shuffling")
    parser.add_argument("--backend", choices=("gloo", "nccl", "auto"), default="gloo",
                        help="gloo (default); nccl needs CUDA; auto: nccl when CUDA is available, else gloo")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto (default): cuda when available, else cpu")
    parser.add_argument("--threads", type=_positive_int, metavar="T",
                        help="torch threads per worker (default: usable cores / local workers, at least 1)")
    parser.add_argument("--nproc", type=_positive_int, metavar="N",
                        help="spawn N local workers (parallel training on one machine)")
    parser.add_argument("--timeout", type=_positive_float, default=600.0, metavar="S",
                        help="seconds to wait for the other workers (process group set-up, collectives)")
    parser.add_argument("--quiet", action="store_true", help="rank 0 prints only the DDP_RESULT line")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.lr is None:
        args.lr = 0.003 if args.optimizer == "adam" else 0.05
    if args.dataset == "cifar10" and not args.data:
        parser.error("--dataset cifar10 needs --data DIR")
    return args


# -- the world ---------------------------------------------------------------------------------


def _env_int(env: dict[str, str] | os._Environ, name: str, default: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise ValueError(f"{name} is not set")
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} is not a whole number: {raw!r}") from None


def launch_from_env(env: Any = None) -> dict[str, Any]:
    """World size, rank and how this process was started, from the environment."""
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    if world < 1:
        raise ValueError(f"WORLD_SIZE must be at least 1: {world}")
    if not 0 <= rank < world:
        raise ValueError(f"RANK {rank} is not in 0..{world - 1} (WORLD_SIZE {world})")
    if "TORCHELASTIC_RUN_ID" in env or "LOCAL_WORLD_SIZE" in env:
        mode = "torchrun"
    elif world > 1:
        mode = "distributed"  # one process per node or kernel (a Corral cluster session)
    else:
        mode = "single"
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", 1)
    if world > 1:
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not env.get(name):
                raise ValueError(f"WORLD_SIZE is {world} but {name} is not set")
    return {"world": world, "rank": rank, "local_rank": _env_int(env, "LOCAL_RANK", 0), "mode": mode,
            "local_world": max(1, local_world)}


def usable_cpus() -> float:
    """Cores this process may use: its affinity, capped by a cgroup CPU quota (docker --cpus)."""
    try:
        cores = float(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cores = float(os.cpu_count() or 1)
    quota = _cgroup_cpu_quota()
    return min(cores, quota) if quota else cores


def _cgroup_cpu_quota() -> float | None:
    try:  # cgroup v2
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:  # cgroup v1
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def default_threads(local_workers: int, cpus: float | None = None) -> int:
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, int(cpus // max(1, local_workers)))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


# -- data ----------------------------------------------------------------------------------------


def find_cifar(data_dir: str | None) -> Path | None:
    """The folder holding CIFAR-10's python pickles under ``data_dir``, or None."""
    if not data_dir:
        return None
    root = Path(data_dir)
    for candidate in (root / CIFAR_DIR, root):
        if all((candidate / name).is_file() for name in (*CIFAR_TRAIN, CIFAR_TEST)):
            return candidate
    return None


def _read_cifar_pickles(folder: Path, names: tuple[str, ...]) -> tuple[Any, Any]:
    import numpy as np

    images, labels = [], []
    for name in names:
        with open(folder / name, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        data = batch.get(b"data", batch.get("data"))
        targets = batch.get(b"labels", batch.get("labels"))
        if data is None or targets is None:
            raise ValueError(f"{folder / name} is not a CIFAR-10 batch (no data/labels)")
        if isinstance(data, (bytes, bytearray)):
            data = np.frombuffer(data, dtype=np.uint8)
        images.append(np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(targets, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_cifar(folder: Path, train: bool) -> tuple[Any, Any]:
    """CIFAR-10 as uint8 (N, 3, 32, 32) and int64 labels: via torchvision when it imports, else the pickles."""
    import numpy as np

    try:
        from torchvision.datasets import CIFAR10  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - missing or broken torchvision: read the pickles ourselves
        CIFAR10 = None
    if CIFAR10 is not None and folder.name == CIFAR_DIR:
        try:
            dataset = CIFAR10(str(folder.parent), train=train, download=False)
            return (np.ascontiguousarray(np.asarray(dataset.data).transpose(0, 3, 1, 2)),
                    np.asarray(dataset.targets, dtype=np.int64))
        except Exception:  # noqa: BLE001 - e.g. its integrity check; the pickles are still readable
            pass
    return _read_cifar_pickles(folder, CIFAR_TRAIN if train else (CIFAR_TEST,))


def _upsample_matrix(size: int, grid: int) -> Any:
    """(size, grid) bilinear interpolation weights from a grid of control points to ``size`` pixels."""
    import numpy as np

    positions = np.linspace(0, grid - 1, size)
    low = np.floor(positions).astype(int).clip(0, grid - 2)
    frac = positions - low
    matrix = np.zeros((size, grid))
    matrix[np.arange(size), low] = 1 - frac
    matrix[np.arange(size), low + 1] = frac
    return matrix


def synthetic_cifar(train_size: int, test_size: int, seed: int) -> tuple[Any, Any, Any, Any]:
    """A CIFAR-shaped set (uint8 N x 3 x 32 x 32, labels 0-9) with learnable class structure.

    Each class has a smooth random colour template; an image is its class's template at a random
    contrast, shifted (wrapping) up to 4 px, maybe mirrored, over a random smooth background of
    its own, plus pixel noise. The same seed gives the same set on every rank and machine.
    """
    import numpy as np

    rng = np.random.default_rng([seed, 0x0C1FA5])
    up4, up8 = _upsample_matrix(32, 4).astype(np.float32), _upsample_matrix(32, 8).astype(np.float32)
    coarse = rng.normal(0.0, 1.0, (NUM_CLASSES, 3, 4, 4)).astype(np.float32)
    fine = rng.normal(0.0, 0.6, (NUM_CLASSES, 3, 8, 8)).astype(np.float32)
    templates = up4 @ coarse @ up4.T + up8 @ fine @ up8.T  # (10, 3, 32, 32), smooth
    templates /= templates.std(axis=(1, 2, 3), keepdims=True)
    # Every placement of every template: shift dy, dx in -4..4 (wrapping), mirrored or not.
    shifts = range(-MAX_SHIFT, MAX_SHIFT + 1)
    bank = np.stack([
        np.stack([
            np.stack([np.roll(t, (dy, dx), axis=(1, 2)) for dx in shifts])
            for dy in shifts
        ])
        for t in templates
    ])  # (10, 9, 9, 3, 32, 32)
    bank = np.stack([bank, bank[..., ::-1]], axis=3)  # (10, 9, 9, 2, 3, 32, 32)

    def make(count: int, stream: int) -> tuple[Any, Any]:
        srng = np.random.default_rng([seed, stream])
        labels = srng.permutation(np.arange(count) % NUM_CLASSES).astype(np.int64)
        images = np.empty((count, 3, 32, 32), dtype=np.uint8)
        for start in range(0, count, 2000):
            idx = slice(start, min(count, start + 2000))
            chunk = labels[idx]
            n = len(chunk)
            dy, dx = srng.integers(0, len(shifts), n), srng.integers(0, len(shifts), n)
            flip = srng.integers(0, 2, n)
            placed = bank[chunk, dy, dx, flip]
            contrast = srng.uniform(0.4, 1.0, (n, 1, 1, 1)).astype(np.float32)
            background = up4 @ srng.standard_normal((n, 3, 4, 4), dtype=np.float32) @ up4.T
            noise = srng.standard_normal((n, 3, 32, 32), dtype=np.float32)
            pixels = 128 + 40 * (contrast * placed + BACKGROUND * background + NOISE * noise)
            images[idx] = np.clip(pixels, 0, 255).astype(np.uint8)
        return images, labels

    train_x, train_y = make(train_size, 1)
    test_x, test_y = make(test_size, 2)
    return train_x, train_y, test_x, test_y


def load_data(args: argparse.Namespace) -> tuple[str, Any, Any, Any, Any, str]:
    """(dataset name, train images, train labels, test images, test labels, a note for people)."""
    folder = find_cifar(args.data) if args.dataset != "synthetic" else None
    if folder is not None:
        train_x, train_y = load_cifar(folder, train=True)
        test_x, test_y = load_cifar(folder, train=False)
        if args.train_size:
            train_x, train_y = train_x[:args.train_size], train_y[:args.train_size]
        if args.test_size:
            test_x, test_y = test_x[:args.test_size], test_y[:args.test_size]
        return "cifar10", train_x, train_y, test_x, test_y, f"CIFAR-10 from {folder}"
    if args.dataset == "cifar10":
        raise FileNotFoundError(f"no CIFAR-10 python pickles under {args.data} ({CIFAR_DIR}/data_batch_1..5, test_batch)")
    note = "generated CIFAR-shaped data (seed %d)" % args.seed
    if args.data:
        note += f"; no CIFAR-10 under {args.data}"
    train_x, train_y, test_x, test_y = synthetic_cifar(
        args.train_size or SYNTHETIC_TRAIN_SIZE, args.test_size or SYNTHETIC_TEST_SIZE, args.seed)
    return "synthetic", train_x, train_y, test_x, test_y, note


# -- the model and the loop ---------------------------------------------------------------------


def build_model() -> Any:
    """Three 3x3 conv + ReLU + 2x2 max-pool stages (16, 32, 64 channels), then 1024 -> 128 -> 10."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(inplace=True), nn.Linear(128, NUM_CLASSES),
    )


def choose_device(args: argparse.Namespace, local_rank: int) -> tuple[str, str]:
    """(device, backend) for this worker; ValueError when the choice cannot work here."""
    import torch

    cuda = torch.cuda.is_available()
    if args.device == "cuda" and not cuda:
        raise ValueError("--device cuda: CUDA is not available here")
    backend = args.backend
    if backend == "auto":
        backend = "nccl" if cuda and args.device != "cpu" else "gloo"
    if backend == "nccl" and (not cuda or args.device == "cpu"):
        raise ValueError("--backend nccl needs CUDA (use gloo on CPUs)")
    use_cuda = args.device == "cuda" or (args.device == "auto" and cuda)
    if use_cuda:
        index = local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return f"cuda:{index}", backend
    return "cpu", backend


def worker(local_rank: int, args: argparse.Namespace, launch: dict[str, Any]) -> None:
    """One DDP worker; rank 0 prints and returns the result."""
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    rank = launch["rank_base"] + local_rank
    world = launch["world"]
    main = rank == 0
    if not main:
        warnings.filterwarnings("ignore")
    say = (lambda *_: None) if (not main or args.quiet) else (lambda text: print(text, flush=True))
    threads = args.threads or default_threads(launch["local_workers"])
    torch.set_num_threads(threads)
    if launch.get("spawned"):
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(local_rank), WORLD_SIZE=str(world))
    device, backend = choose_device(args, launch["local_rank_base"] + local_rank)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    distributed = world > 1
    if distributed:
        dist.init_process_group(backend, rank=rank, world_size=world, init_method="env://",
                                timeout=datetime.timedelta(seconds=args.timeout))
    try:
        setup_started = time.perf_counter()
        dataset, train_x, train_y, test_x, test_y, note = load_data(args)
        if args.batch_size < world:
            raise ValueError(f"--batch-size {args.batch_size} is smaller than the world size {world}")
        if len(train_x) < world:
            raise ValueError(f"{len(train_x)} training images for {world} workers")
        per_rank_batch = args.batch_size // world
        # uint8 images (37 MB for 12000) and labels live where the model does: no copies per step on a GPU.
        train_x, train_y = torch.from_numpy(train_x).to(device), torch.from_numpy(train_y).to(device)
        test_x, test_y = torch.from_numpy(test_x).to(device), torch.from_numpy(test_y).to(device)
        mean = torch.tensor(CIFAR_MEAN, device=device).view(1, 3, 1, 1) * 255
        std = torch.tensor(CIFAR_STD, device=device).view(1, 3, 1, 1) * 255

        def prepare(images: Any) -> Any:
            return (images.float() - mean) / std

        model = build_model().to(device)  # the same init everywhere (seeded); DDP broadcasts rank 0's anyway
        if distributed:
            model = DistributedDataParallel(model, device_ids=[int(device.split(":")[1])] if device != "cpu" else None)
        if args.optimizer == "adam":
            optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
        sampler = DistributedSampler(range(len(train_x)), num_replicas=world, rank=rank, shuffle=True,
                                     seed=args.seed, drop_last=False)
        steps = math.ceil(len(sampler) / per_rank_batch)
        if main:
            say(f"ddp_cifar_train: {launch['mode']}, world size {world}, {backend} on {device}, "
                f"{threads} thread(s) per worker; {note}: {len(train_x)} train / {len(test_x)} test images")
            say(f"ddp_cifar_train: {args.epochs} epoch(s) of {steps} step(s), global batch "
                f"{per_rank_batch * world} ({per_rank_batch} per worker), {args.optimizer} lr {args.lr:g} "
                f"(the paper: {PAPER})")
        setup_s = time.perf_counter() - setup_started

        def barrier() -> None:
            if distributed:
                dist.barrier()
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        def all_sum(values: list[float]) -> list[float]:
            tensor = torch.tensor(values, dtype=torch.float64, device=device if backend == "nccl" else "cpu")
            if distributed:
                dist.all_reduce(tensor)
            return tensor.tolist()

        def evaluate() -> float:
            model.eval()
            correct = 0
            with torch.no_grad():
                shard = torch.arange(rank, len(test_x), world, device=device)
                for start in range(0, len(shard), 1000):
                    idx = shard[start:start + 1000]
                    logits = model(prepare(test_x[idx]))
                    correct += int((logits.argmax(1) == test_y[idx]).sum())
            model.train()
            total_correct, total = all_sum([float(correct), float(len(shard))])
            return total_correct / total

        epoch_times, losses, accuracies = [], [], []
        model.train()
        for epoch in range(1, args.epochs + 1):
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), dtype=torch.long, device=device)
            barrier()
            started = time.perf_counter()
            loss_sum, seen = torch.zeros((), dtype=torch.float64, device=device), 0
            for step in range(steps):
                idx = order[step * per_rank_batch:(step + 1) * per_rank_batch]
                inputs, targets = prepare(train_x[idx]), train_y[idx]
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(inputs), targets)
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach().double() * len(idx)  # stays on the device: no sync per step
                seen += len(idx)
            barrier()
            elapsed = time.perf_counter() - started
            epoch_times.append(elapsed)
            total_loss, total_seen = all_sum([float(loss_sum), float(seen)])
            losses.append(total_loss / total_seen)
            accuracies.append(evaluate())
            say(f"epoch {epoch}/{args.epochs}: {elapsed:.3f} s{' (warm-up)' if epoch == 1 else ''}, "
                f"loss {losses[-1]:.4f}, test accuracy {accuracies[-1]:.4f}")
        timed = epoch_times[1:] if len(epoch_times) >= 2 else epoch_times
        images_per_epoch = len(sampler) * world
        result = {
            "world_size": world, "mode": launch["mode"], "epochs": args.epochs,
            "batch_size": per_rank_batch * world, "batch_size_per_worker": per_rank_batch,
            "epoch_times_s": [round(t, 6) for t in epoch_times], "warmup_epochs": 1,
            "images_per_s": round(images_per_epoch * len(timed) / sum(timed), 3),
            "images_per_s_excludes_warmup": len(epoch_times) >= 2,
            "test_accuracy": round(accuracies[-1], 6), "test_accuracy_per_epoch": [round(a, 6) for a in accuracies],
            "train_loss_per_epoch": [round(x, 6) for x in losses],
            "train_size": len(train_x), "test_size": len(test_x), "steps_per_epoch": steps,
            "dataset": dataset, "backend": backend if distributed else "none", "device": device,
            "threads_per_worker": threads, "setup_s": round(setup_s, 3), "optimizer": args.optimizer,
            "lr": args.lr, "seed": args.seed, "torch": torch.__version__, "python": platform.python_version(),
        }
        if main:
            print(RESULT_PREFIX + json.dumps(result, sort_keys=True), flush=True)
        if distributed:
            dist.barrier()  # nobody tears down while a peer still talks to it
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _spawned_worker(local_rank: int, args: argparse.Namespace, launch: dict[str, Any]) -> None:
    try:
        worker(local_rank, args, launch)
    except Exception as exc:
        print(f"ddp_cifar_train: worker {launch['rank_base'] + local_rank} failed: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)
        raise SystemExit(1) from None


def _start_method() -> str:
    """spawn, unless __main__ cannot be re-imported (``python -c``): then fork."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return "spawn" if main_file and os.path.exists(main_file) else "fork"


def run(args: argparse.Namespace) -> int:
    try:
        env_launch = launch_from_env()
    except ValueError as exc:
        print(f"ddp_cifar_train: error: {exc}", file=sys.stderr)
        return 2
    if args.nproc is None:
        launch = {**env_launch, "rank_base": env_launch["rank"], "local_rank_base": env_launch["local_rank"],
                  "local_workers": env_launch["local_world"]}
        try:
            worker(0, args, launch)
        except Exception as exc:  # one readable line (the traceback is noise in a kernel's log)
            print(f"ddp_cifar_train: rank {env_launch['rank']} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        return 0

    import torch.multiprocessing as mp

    nodes, node = env_launch["world"], env_launch["rank"]
    if env_launch["mode"] == "torchrun":
        print("ddp_cifar_train: error: --nproc is for plain python; under torchrun use --nproc-per-node",
              file=sys.stderr)
        return 2
    if nodes == 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(free_port())
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    launch = {"world": nodes * args.nproc, "rank_base": node * args.nproc, "local_rank_base": 0,
              "local_workers": args.nproc, "mode": "parallel" if nodes == 1 else "hybrid", "spawned": True}
    try:
        mp.start_processes(_spawned_worker, args=(args, launch), nprocs=args.nproc, join=True,
                           start_method=_start_method())
    except mp.ProcessExitedException as exc:
        print(f"ddp_cifar_train: a worker exited with status {exc.exit_code}", file=sys.stderr)
        return 1
    except mp.ProcessRaisedException as exc:
        print(f"ddp_cifar_train: a worker failed: {str(exc).strip().splitlines()[-1]}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""benchmarks/ddp_cifar.py and its training script: the parts that need no Docker and no Corral.

Result-line parsing (plain output and a cluster session's ``[main1] ...`` logs), the statistics,
scaling efficiency and overhead maths, the table, the PNG writer (benchmarks/png_plot.py),
argument validation, and the ``python -c`` bootstrap that carries the script into containers.
The training script itself runs only where an interpreter with torch is found
(``CORRAL_TORCH_PYTHON``, /tmp/torchvenv, or this one); otherwise those tests skip.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def _load(name: str, filename: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    try:
        yield _load("benchmark_ddp_cifar", "ddp_cifar.py")
    finally:
        sys.modules.pop("benchmark_ddp_cifar", None)


@pytest.fixture(scope="module")
def png():  # type: ignore[no-untyped-def]
    try:
        yield _load("benchmark_png_plot", "png_plot.py")
    finally:
        sys.modules.pop("benchmark_png_plot", None)


@pytest.fixture(scope="module")
def train():  # type: ignore[no-untyped-def]
    try:
        yield _load("benchmark_ddp_cifar_train", "ddp_cifar_train.py")
    finally:
        sys.modules.pop("benchmark_ddp_cifar_train", None)


def _result(epoch_times: list[float], accuracy: float = 0.5, images_per_s: float = 100.0, **extra: object) -> dict:
    return {"world_size": 1, "mode": "single", "epochs": len(epoch_times), "batch_size": 1200,
            "epoch_times_s": epoch_times, "images_per_s": images_per_s, "test_accuracy": accuracy,
            "train_size": 12000, "dataset": "synthetic", "backend": "gloo", "device": "cpu", **extra}


# -- result lines --------------------------------------------------------------------------------------


def test_the_result_line_is_found_in_plain_output(bench) -> None:  # type: ignore[no-untyped-def]
    doc = _result([3.0, 2.0, 2.2])
    output = "ddp_cifar_train: single ...\nepoch 1/3: 3.0 s\nDDP_RESULT " + json.dumps(doc) + "\n"
    assert bench.parse_result(output) == doc
    assert bench.parse_result(output, kernel=None) == doc


def test_only_main1s_result_counts_in_a_cluster_sessions_logs(bench) -> None:  # type: ignore[no-untyped-def]
    main, sub = _result([3.0, 2.0], accuracy=0.7), _result([9.0, 9.0], accuracy=0.1)
    logs = "\n".join([
        "[main1] ddp_cifar_train: distributed, world size 2",
        "[sub1] DDP_RESULT " + json.dumps(sub),
        "[main1] DDP_RESULT " + json.dumps(main),
        "[sub1] some error",
    ])
    assert bench.parse_result(logs) == main
    assert bench.kernel_lines(logs, "sub1") == ["DDP_RESULT " + json.dumps(sub), "some error"]
    assert bench.parse_result("[sub1] DDP_RESULT " + json.dumps(sub)) is None  # main1 said nothing
    assert bench.parse_result("[main1] DDP_RESULT " + json.dumps(main), kernel=None) == main


def test_the_last_result_line_wins_and_broken_ones_are_none(bench) -> None:  # type: ignore[no-untyped-def]
    first, last = _result([1.0]), _result([2.0])
    assert bench.parse_result(f"DDP_RESULT {json.dumps(first)}\nDDP_RESULT {json.dumps(last)}") == last
    assert bench.parse_result("DDP_RESULT {not json") is None
    assert bench.parse_result('DDP_RESULT {"epoch_times_s": []}') is None
    assert bench.parse_result("DDP_RESULT [1, 2]") is None
    assert bench.parse_result("epoch 1/1: 2.0 s\n") is None
    assert bench.parse_result("") is None


# -- statistics ------------------------------------------------------------------------------------------


def test_the_warmup_epoch_is_left_out_when_there_are_two_or_more(bench) -> None:  # type: ignore[no-untyped-def]
    assert bench.timed_epochs([5.0, 2.0, 4.0]) == [2.0, 4.0]
    assert bench.timed_epochs([5.0]) == [5.0]
    assert bench.run_epoch_s(_result([9.0, 2.0, 4.0])) == pytest.approx(3.0)


def test_mean_and_sample_stdev(bench) -> None:  # type: ignore[no-untyped-def]
    assert bench.mean_stdev([2.0, 4.0]) == (pytest.approx(3.0), pytest.approx(2 ** 0.5))
    assert bench.mean_stdev([7.0]) == (7.0, 0.0)
    with pytest.raises(ValueError):
        bench.mean_stdev([])


def test_scaling_efficiency_and_overhead(bench) -> None:  # type: ignore[no-untyped-def]
    assert bench.scaling_efficiency(10.0, 5.0, 2) == pytest.approx(1.0)  # perfect
    assert bench.scaling_efficiency(10.0, 4.0, 4) == pytest.approx(0.625)
    assert bench.scaling_efficiency(None, 4.0, 4) is None
    assert bench.scaling_efficiency(10.0, 0.0, 4) is None
    assert bench.overhead(10.5, 10.0) == pytest.approx(0.05)
    assert bench.overhead(9.0, 10.0) == pytest.approx(-0.1)
    assert bench.overhead(None, 10.0) is None
    assert bench.overhead(1.0, 0.0) is None


def _points(bench):  # type: ignore[no-untyped-def]
    P = bench.Point
    return [
        P("corral", "parallel", 1, "ok", results=[_result([9.0, 10.0]), _result([9.0, 10.2])]),
        P("corral", "parallel", 2, "ok", results=[_result([9.0, 6.0]), _result([9.0, 6.0])]),
        P("direct", "parallel", 1, "ok", results=[_result([9.0, 10.0]), _result([9.0, 10.0])]),
        P("direct", "parallel", 2, "ok", results=[_result([9.0, 5.0]), _result([9.0, 5.0])]),
        P("corral", "distributed", 1, "ok", results=[_result([9.0, 10.0])]),
        P("corral", "distributed", 2, "skipped", "needs 2 alive nodes"),
        P("direct", "distributed", 1, "ok", results=[_result([9.0, 10.0])]),
        P("direct", "distributed", 2, "ok", results=[_result([9.0, 4.0])]),
    ]


def test_analysis_efficiency_overhead_and_the_faster_mode(bench) -> None:  # type: ignore[no-untyped-def]
    analysis = bench.analyse(_points(bench), target=0.05)
    by_key = {(s["path"], s["mode"], s["workers"]): s for s in analysis["points"]}
    one = by_key[("corral", "parallel", 1)]
    assert one["epoch_s_mean"] == pytest.approx(10.1) and one["epoch_s_stdev"] == pytest.approx(0.1414, abs=1e-4)
    assert one["warmup_excluded"] is True and one["runs"] == 2
    assert one["efficiency"] == pytest.approx(1.0)
    assert by_key[("corral", "parallel", 2)]["efficiency"] == pytest.approx(10.1 / 12, abs=1e-4)
    assert by_key[("direct", "distributed", 2)]["efficiency"] == pytest.approx(10 / 8, abs=1e-4)
    assert by_key[("corral", "distributed", 2)]["status"] == "skipped"
    assert "epoch_s_mean" not in by_key[("corral", "distributed", 2)]
    overheads = {(o["mode"], o["workers"]): o for o in analysis["overhead"]}
    assert set(overheads) == {("parallel", 1), ("parallel", 2), ("distributed", 1)}  # the skipped point has none
    assert overheads[("parallel", 1)]["overhead"] == pytest.approx(0.01) and overheads[("parallel", 1)]["pass"]
    assert overheads[("parallel", 2)]["overhead"] == pytest.approx(0.2) and not overheads[("parallel", 2)]["pass"]
    assert overheads[("parallel", 1)]["overhead_best_run"] == pytest.approx(0.0)  # 10.0 vs 10.0 at best
    assert analysis["overhead_pass"] is False
    faster = {(f["path"], f["workers"]): f["faster"] for f in analysis["faster_mode"]}
    assert faster == {("corral", 1): "distributed", ("direct", 1): "parallel", ("direct", 2): "distributed"}


def test_overhead_pass_is_none_without_pairs(bench) -> None:  # type: ignore[no-untyped-def]
    analysis = bench.analyse([bench.Point("direct", "parallel", 1, "ok", results=[_result([2.0])])])
    assert analysis["overhead"] == [] and analysis["overhead_pass"] is None


def test_the_table(bench) -> None:  # type: ignore[no-untyped-def]
    table = bench.format_table(bench.analyse(_points(bench), target=0.05))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["mode", "N", "path"] and set(lines[1]) == {"-"}
    assert len(lines) == 2 + 8
    row = next(line for line in lines if line.startswith("parallel") and " 2  corral" in line)
    assert "6.000 ± 0.000" in row and "+20.0 % MISS" in row and "0.84" in row
    assert any("+1.0 % pass" in line for line in lines)
    skipped = next(line for line in lines if line.startswith("distributed") and " 2  corral" in line)
    assert "skipped: needs 2 alive nodes" in skipped


# -- arguments -------------------------------------------------------------------------------------------


def test_worker_and_mode_lists(bench) -> None:  # type: ignore[no-untyped-def]
    import argparse

    assert bench.parse_workers("4,1,2,2") == [1, 2, 4]
    assert bench.parse_modes("distributed,parallel") == ["parallel", "distributed"]
    for bad in ("", "0", "1,x", "-1", "1,,2"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_workers(bad)
    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_modes("parallel,serial")
    assert bench.parse_size("2g") == 2 << 30 and bench.parse_size("512m") == 512 << 20
    for bad in ("lots", "1m", "2x"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_size(bad)


@pytest.mark.parametrize("argv, message", [
    (["--skip-direct", "--skip-corral"], "leave nothing to run"),
    (["--workers", "1,8", "--batch-size", "4"], "smaller than 8 workers"),
    (["--workers", "0"], "--workers"),
    (["--runs", "0"], "--runs"),
    (["--epochs", "two"], "--epochs"),
    (["--cpus-per-worker", "-1"], "--cpus-per-worker"),
    (["--modes", "serial"], "--modes"),
    (["--data", "/nonexistent/cifar"], "no such directory"),
    (["--train-size", "2", "--workers", "4"], "--train-size 2"),
    (["--rig-state-dir", "/nonexistent/rig"], "no rig there"),
])
def test_bad_arguments_are_one_clear_error(bench, capsys, argv, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_defaults(bench) -> None:  # type: ignore[no-untyped-def]
    args = bench.parse_args([])
    assert (args.workers, args.modes, args.runs, args.epochs, args.batch_size) == (
        [1, 2, 4], ["parallel", "distributed"], 3, 3, 1200)
    assert args.image == "corral/pytorch:2.13" and args.cluster_mode == "multi-node"
    assert bench.train_args(args) == ["--epochs", "3", "--batch-size", "1200", "--seed", "0"]
    assert bench.train_args(args, data="/d")[-4:] == ["--data", "/d", "--dataset", "cifar10"]


# -- the bootstrap that carries the script --------------------------------------------------------------


def test_the_command_carries_the_script_and_passes_the_arguments(bench, tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = b"import os, sys\nprint('ARGS', sys.argv[1:], os.path.basename(__file__))\n"
    command = bench.train_command(["--epochs", "1"], nproc=2, source=source)
    assert command[:2] == ["python", "-c"] and command[3:] == ["--nproc", "2", "--epochs", "1"]
    real = bench.train_command([])
    payload = real[2].split("b64decode('")[1].split("'")[0]
    import base64

    assert zlib.decompress(base64.b64decode(payload)) == (BENCHMARKS / "ddp_cifar_train.py").read_bytes()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    out = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ARGS ['--nproc', '2', '--epochs', '1'] ddp_cifar_train.py"


def test_rig_status_lines(bench) -> None:  # type: ignore[no-untyped-def]
    text = "\n".join([
        "host=h2 netns=mh-h2 ip=10.231.0.12 docker=unix:///r/h2/docker.sock link=up dockerd=running",
        "host=h1 netns=mh-h1 ip=10.231.0.11 docker=unix:///r/h1/docker.sock link=up dockerd=running",
        "host=h3 netns=mh-h3 ip=10.231.0.13 docker=unix:///r/h3/docker.sock link=cut dockerd=running",
        "[corral-multihost] rig: state dir ...",
    ])
    hosts = bench.parse_rig_status(text)
    assert [(h.name, h.ip, h.docker_url) for h in hosts] == [
        ("h1", "10.231.0.11", "unix:///r/h1/docker.sock"), ("h2", "10.231.0.12", "unix:///r/h2/docker.sock")]


# -- the PNG writer ----------------------------------------------------------------------------------------


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length:at + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def test_encode_png_is_a_valid_rgb_png(png) -> None:  # type: ignore[no-untyped-def]
    pixels = bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30, 40, 50, 60, 70, 80, 90])  # 3 x 2
    chunks = _chunks(png.encode_png(3, 2, pixels))
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (3, 2, 8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert raw == b"\x00" + pixels[:9] + b"\x00" + pixels[9:]
    with pytest.raises(ValueError):
        png.encode_png(3, 2, pixels[:-1])
    with pytest.raises(ValueError):
        png.encode_png(0, 2, b"")


def test_line_chart_draws_series_and_writes_the_file(png, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "results" / "chart.png"
    series = [png.Series("parallel", [1, 2, 4], [10.0, 6.0, 4.0], [0.5, 0.2, 0.3], color=(31, 119, 180)),
              png.Series("distributed", [1, 2, 4], [10.5, None, 3.0], [0.0, 0.0, 0.1], color=(214, 39, 40),
                         dashed=True)]
    data = png.line_chart(target, series, title="time per epoch", x_label="workers", y_label="s",
                          width=400, height=300, x_ticks=[1, 2, 4])
    assert target.read_bytes() == data
    chunks = _chunks(data)
    width, height = struct.unpack(">II", chunks[0][1][:8])
    assert (width, height) == (400, 300)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    rows = [raw[y * (1 + 3 * width) + 1:(y + 1) * (1 + 3 * width)] for y in range(height)]
    colours = {bytes(row[i:i + 3]) for row in rows for i in range(0, len(row), 3)}
    assert bytes((31, 119, 180)) in colours and bytes((214, 39, 40)) in colours and bytes((0, 0, 0)) in colours
    with pytest.raises(ValueError):
        png.line_chart(None, series, width=50, height=50)


def test_line_chart_without_points_still_draws_axes(png) -> None:  # type: ignore[no-untyped-def]
    data = png.line_chart(None, [png.Series("empty", [1], [None])], title="nothing")
    assert _chunks(data)[0][0] == b"IHDR"


def test_nice_ticks(png) -> None:  # type: ignore[no-untyped-def]
    assert png.nice_ticks(0, 10, 5) == [0, 2, 4, 6, 8, 10]
    assert png.nice_ticks(0, 7.3, 5) == [0, 2, 4, 6, 8]
    ticks = png.nice_ticks(0.0, 0.37, 4)
    assert ticks[0] == 0 and ticks[-1] >= 0.37
    assert png.nice_ticks(3, 3) == [3, 4, 5, 6]  # a flat range still gets ticks
    assert png.format_tick(2.0) == "2" and png.format_tick(2.5) == "2.5"


def test_plot_falls_back_to_the_png_writer(bench, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    target = tmp_path / "out" / "ddp.png"
    backend = bench.plot(bench.analyse(_points(bench)), target, "CIFAR-10 DDP: time per epoch")
    assert backend == "png_plot" and target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the training script's pure parts (stdlib only) --------------------------------------------------------


def test_training_arguments(train, capsys) -> None:  # type: ignore[no-untyped-def]
    args = train.parse_args([])
    assert (args.epochs, args.batch_size, args.backend, args.optimizer, args.lr) == (3, 1200, "gloo", "adam", 0.003)
    assert train.parse_args(["--optimizer", "sgd"]).lr == 0.05
    for argv, message in ((["--epochs", "0"], "--epochs"), (["--batch-size", "x"], "--batch-size"),
                          (["--backend", "mpi"], "--backend"), (["--dataset", "cifar10"], "needs --data"),
                          (["--lr", "0"], "--lr"), (["--nproc", "-2"], "--nproc")):
        with pytest.raises(SystemExit) as exc:
            train.parse_args(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err.splitlines()[-1]


def test_training_world_from_the_environment(train) -> None:  # type: ignore[no-untyped-def]
    assert train.launch_from_env({})["mode"] == "single"
    cluster = {"WORLD_SIZE": "3", "RANK": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "main1", "MASTER_PORT": "29500",
               "CORRAL_CLUSTER_SIZE": "3", "CORRAL_CLUSTER_IDX": "2"}
    assert train.launch_from_env(cluster) == {"world": 3, "rank": 2, "local_rank": 0, "mode": "distributed",
                                              "local_world": 1}
    torchrun = {**cluster, "LOCAL_WORLD_SIZE": "3", "TORCHELASTIC_RUN_ID": "x"}
    assert train.launch_from_env(torchrun)["mode"] == "torchrun"
    for env, message in (({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "a", "MASTER_PORT": "1"}, "not in 0..1"),
                         ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR"), ({"WORLD_SIZE": "two"}, "whole number")):
        with pytest.raises(ValueError, match=message):
            train.launch_from_env(env)
    assert train.default_threads(2, cpus=4.0) == 2 and train.default_threads(4, cpus=2.0) == 1
    assert train.default_threads(1, cpus=0.5) == 1


def test_training_finds_cifar_in_both_layouts(train, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert train.find_cifar(None) is None and train.find_cifar(str(tmp_path)) is None
    folder = _fake_cifar(tmp_path / "cifar-10-batches-py", per_batch=2)
    assert train.find_cifar(str(tmp_path)) == folder
    assert train.find_cifar(str(folder)) == folder


def _fake_cifar(folder: Path, per_batch: int) -> Path:
    """CIFAR-10's python layout with ``per_batch`` random images per file."""
    import random

    rng = random.Random(0)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [i % 10 for i in range(per_batch)]
        data = bytes(rng.randrange(256) for _ in range(per_batch * 3072))
        try:
            import numpy as np

            array: object = np.frombuffer(data, dtype=np.uint8).reshape(per_batch, 3072)
        except ImportError:
            array = data
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": array}, fh)
    return folder


# -- the training script for real, where torch is ------------------------------------------------------------


def _torch_python() -> str | None:
    for candidate in (os.environ.get("CORRAL_TORCH_PYTHON"), "/tmp/torchvenv/bin/python", sys.executable):
        if candidate and shutil.which(candidate):
            probe = subprocess.run([candidate, "-c", "import torch, numpy"], capture_output=True, timeout=120)
            if probe.returncode == 0:
                return candidate
    return None


@pytest.fixture(scope="module")
def torch_python() -> str:
    found = _torch_python()
    if found is None:
        pytest.skip("no Python with torch and numpy here (set CORRAL_TORCH_PYTHON)")
    return found


def _train(python: str, *argv: str, env: dict[str, str] | None = None, timeout: float = 240) -> dict:
    proc = subprocess.run([python, str(BENCHMARKS / "ddp_cifar_train.py"), *argv], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("DDP_RESULT ")]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0][len("DDP_RESULT "):])


@pytest.mark.slow
def test_two_local_workers_learn_the_generated_set(torch_python, bench) -> None:  # type: ignore[no-untyped-def]
    result = _train(torch_python, "--nproc", "2", "--epochs", "2", "--train-size", "2400", "--test-size", "400")
    assert result["world_size"] == 2 and result["mode"] == "parallel" and result["backend"] == "gloo"
    assert result["dataset"] == "synthetic" and result["batch_size_per_worker"] == 600
    assert len(result["epoch_times_s"]) == 2 and result["images_per_s_excludes_warmup"] is True
    assert result["test_accuracy"] > 0.3  # chance is 0.1
    assert bench.run_epoch_s(result) == result["epoch_times_s"][1]


@pytest.mark.slow
def test_one_worker_reads_cifar_pickles(torch_python, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _fake_cifar(tmp_path / "cifar-10-batches-py", per_batch=40)
    result = _train(torch_python, "--data", str(tmp_path), "--dataset", "cifar10", "--epochs", "1",
                    "--batch-size", "100")
    assert result["dataset"] == "cifar10" and result["train_size"] == 200 and result["test_size"] == 40
    assert result["world_size"] == 1 and result["backend"] == "none"

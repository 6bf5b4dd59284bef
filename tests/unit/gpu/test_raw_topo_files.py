"""`--mock-gpus` with raw `nvidia-smi topo -m` output (+ optional `--query-gpu` CSV)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corral.common.errors import ConfigError
from corral.common.gpu.topo_parser import load_topology_file, parse_gpu_csv

GPUS = Path(__file__).resolve().parents[3] / "configs" / "gpus"


def _same_shape(a, b) -> None:
    assert a.links == b.links
    for x, y in zip(a.devices, b.devices, strict=True):
        assert (x.index, x.model, x.memory, x.numa_node, x.cpu_affinity) == (
            y.index, y.model, y.memory, y.numa_node, y.cpu_affinity)


@pytest.mark.parametrize("stem", ["dgx1-v100", "dgx-a100"])
def test_raw_sample_matches_toml(stem: str) -> None:
    raw = load_topology_file(GPUS / f"{stem}-topo.txt", uuid_seed="s")
    toml = load_topology_file(GPUS / f"{stem}.toml", uuid_seed="s")
    _same_shape(raw, toml)
    # The CSV beside it (same stem) gave the real UUIDs.
    csv = parse_gpu_csv((GPUS / f"{stem}-topo.csv").read_text())
    assert [d.uuid for d in raw.devices] == [csv[i]["uuid"] for i in range(8)]


def test_without_csv_defaults_and_comma_form(tmp_path: Path) -> None:
    topo = tmp_path / "topo.txt"
    shutil.copy(GPUS / "dgx1-v100-topo.txt", topo)
    bare = load_topology_file(topo, uuid_seed="x")
    assert bare.device_count == 8 and bare.devices[0].model == "NVIDIA Mock GPU"
    assert [d.numa_node for d in bare.devices] == [0] * 4 + [1] * 4
    other = tmp_path / "elsewhere.csv"
    other.write_text("0, Tesla V100-SXM2-16GB, 16160 MiB, GPU-aaaa\n")  # noheader
    picked = load_topology_file(f"{topo},{other}", uuid_seed="x")
    assert picked.devices[0].uuid == "GPU-aaaa" and picked.devices[0].memory == 16160 * 2**20
    assert picked.devices[1].model == "NVIDIA Mock GPU"
    (tmp_path / "gpus.csv").write_text("index, name, memory.total [MiB]\n3, Tesla X, 1024\n")  # nounits
    beside = load_topology_file(topo, uuid_seed="x")
    assert beside.devices[3].model == "Tesla X" and beside.devices[3].memory == 2**30


def test_ansi_crlf_and_bad_files(tmp_path: Path) -> None:
    text = (GPUS / "dgx-a100-topo.txt").read_text()
    escaped = tmp_path / "esc.txt"
    escaped.write_bytes(("\x1b[4m" + text.replace("\n", "\r\n", 1).replace("GPU7\t", "GPU7\t")).encode())
    assert load_topology_file(escaped).device_count == 8
    junk = tmp_path / "junk.txt"
    junk.write_text("hello world\n")
    with pytest.raises(ConfigError, match="neither `nvidia-smi topo -m` output"):
        load_topology_file(junk)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("index, name\n9, Tesla\n")
    with pytest.raises(ConfigError, match=r"GPUs the matrix .* does not have: \[9\]"):
        load_topology_file(f"{GPUS / 'dgx-a100-topo.txt'},{bad_csv}")
    with pytest.raises(ConfigError, match="cannot read"):
        load_topology_file(tmp_path / "missing.txt")

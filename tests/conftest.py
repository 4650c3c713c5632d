"""Shared fixtures: everything runs offline, on the CPU, against the committed mini dataset."""

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from pmv2nb.config import repo_root  # noqa: E402

REPO = repo_root()
MINI = REPO / "data" / "mini"


@pytest.fixture(scope="session")
def mini_root() -> Path:
    return MINI


@pytest.fixture
def mini_copy(tmp_path) -> Path:
    """A writable copy of the mini dataset, for breaking on purpose."""
    target = tmp_path / "mirror"
    shutil.copytree(MINI, target)
    return target


@pytest.fixture(scope="session")
def benchmark_data():
    from pmv2nb.data import load_split

    return load_split(MINI, "benchmark")


@pytest.fixture(scope="session")
def tiny_server():
    """A real ``transformers serve`` process on loopback, serving the tiny offline model."""
    from pmv2nb.backends.serve import TransformersServer
    from pmv2nb.models import tiny_model_dir

    with TransformersServer(tiny_model_dir()) as server:
        yield server

"""Shared fixtures: one Spark session per test run, and the shared data folder when present."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def spark():
    """A local[2] session shared by every test: starting one costs ~10 s."""
    from pipeline.spark.session import get_spark

    os.environ.setdefault("SPARK_PROGRESS", "false")  # progress bars garble pytest's output
    session = get_spark("local[2]", "tests")
    session.conf.set("spark.sql.shuffle.partitions", "4")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real text written by others); tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def load_job(name: str):
    """The ``main`` of ``jobs/<name>.py``, imported without putting ``jobs/`` on sys.path.

    Calling it in-process reuses the test session's Spark (``getOrCreate``).
    """
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"jobs_{name}", REPO / "jobs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main

"""Two CPU processes under torchrun (gloo) train what one process trains on the same global batch:
DDP, and FSDP2 with a checkpoint that a single process then resumes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from trainer.fixtures import write_dataset
from trainer.run import main

SETTINGS = ["n_layer=2", "n_embd=32", "n_head=2", "seq_len=32", "warmup_steps=2", "eval_every=3", "log_every=1",
            "max_steps=6", "num_samples=0", "tensorboard=false", "threads=1"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    rng = np.random.default_rng(0)
    pattern = rng.integers(0, 200, 37)  # something learnable, so the losses move
    return write_dataset(tmp_path_factory.mktemp("ddp") / "data",
                         {"train": np.tile(pattern, 300), "val": np.tile(pattern, 20)}, vocab_size=200)


@pytest.fixture(scope="module")
def one_process(shards, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    main(["--data", str(shards), "--out", str(out), *SETTINGS, "batch_size=4"])
    return metrics(out)


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def torchrun(*args):
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "trainer.run", *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def assert_same_run(a, b):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    # the same arithmetic, summed in another order across processes: float32 rounding apart
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=2e-5)
    np.testing.assert_allclose([r.get("val_loss", 0) for r in a], [r.get("val_loss", 0) for r in b], rtol=2e-5)


def test_ddp_two_processes_match_one(shards, one_process, tmp_path):
    out = tmp_path / "ddp"
    proc = torchrun("--data", str(shards), "--out", str(out), *SETTINGS, "batch_size=2")
    assert "(2 x 1 x 2 x 32)" in proc.stdout  # two processes of two sequences each
    assert json.loads((out / "config.json").read_text())["processes"] == 2
    assert_same_run(metrics(out), one_process)
    assert one_process[-1]["loss"] < one_process[0]["loss"] - 0.3


def test_fsdp_checkpoint_resumes_in_one_process(shards, one_process, tmp_path):
    out = tmp_path / "fsdp"
    torchrun("--data", str(shards), "--out", str(out), "--fsdp", *SETTINGS, "batch_size=2", "stop_at=3")
    # full (unsharded) tensors in the checkpoint: any number of processes can continue it
    main(["--data", str(shards), "--out", str(out), "--resume", "batch_size=4"])
    assert_same_run(metrics(out), one_process)

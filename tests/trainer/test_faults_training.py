"""Training killed with SIGKILL, at seeded moments and in the middle of writing a checkpoint,
then continued with --resume: the loss curve equals an uninterrupted run's, bit for bit (CPU).

Every run is a real `python -m trainer.run` process killed from outside. To land a kill inside
a checkpoint save every time, the process that is to die runs the trainer through a small
wrapper (written by this test, not part of the product) whose `torch.save` writes half of the
checkpoint into the temporary file and then waits: the test sees the temporary file appear and
SIGKILLs the process while the file is half written.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO  # noqa: E402
from safetensors.torch import load_file

from trainer.checkpoint import list_checkpoints
from trainer.fixtures import write_dataset

MAX_STEPS, CKPT_EVERY = 24, 4
SETTINGS = ["preset=tiny", "seq_len=64", "batch_size=2", "dropout=0.1", "warmup_steps=4",
            f"max_steps={MAX_STEPS}", f"ckpt_every={CKPT_EVERY}", "eval_every=8", "eval_iters=2",
            "log_every=1", "keep_ckpts=2", "num_samples=0", "tensorboard=false", "threads=1",
            "device=cpu", "compile=false"]
# what must not change across a kill; tokens_per_s and step_s are wall-clock measures
EXACT_KEYS = ("step", "loss", "lr", "grad_norm", "val_loss", "val_bpb", "tokens")

# Runs the trainer; the save of checkpoint STEP (argv[1]) or of the final model ("model")
# stops half way through its temporary file, and waits there to be killed.
STALLING_TRAINER = r'''
import io, os, runpy, sys, time
import torch
import trainer.checkpoint as ck

stall = sys.argv[1]

def half_then_wait(data: bytes, f):
    f.write(data[: len(data) // 2])
    f.flush()
    os.fsync(f.fileno())
    print("STALLED", flush=True)
    time.sleep(600)

real_save = torch.save
def save(obj, f, *args, **kwargs):
    if isinstance(obj, dict) and str(obj.get("step")) == stall:
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        half_then_wait(buf.getvalue(), f)
    return real_save(obj, f, *args, **kwargs)
torch.save = save

real_save_file = ck.save_file
def save_file(tensors, filename, metadata=None):
    if stall == "model":
        from safetensors.torch import save
        with open(filename, "wb") as f:
            half_then_wait(save(tensors, metadata=metadata), f)
    return real_save_file(tensors, filename, metadata=metadata)
ck.save_file = save_file

sys.argv = ["trainer.run"] + sys.argv[2:]
runpy.run_module("trainer.run", run_name="__main__")
'''


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Tiny synthetic shards: a noisy cycle over 256 tokens, so the loss has something to learn."""
    rng = np.random.default_rng(7)

    def stream(n):
        cycle = np.arange(n) * 7 % 256
        noise = rng.integers(0, 256, n)
        return np.where(rng.random(n) < 0.2, noise, cycle)

    return write_dataset(tmp_path_factory.mktemp("shards") / "data",
                         {"train": stream(20_000), "val": stream(2_000)}, vocab_size=256)


def trainer_cmd(data, out, *extra, resume=False, stall=None):
    args = ["--data", str(data), "--out", str(out), *SETTINGS, *extra] + (["--resume"] if resume else [])
    if stall is None:
        return [sys.executable, "-m", "trainer.run", *args]
    wrapper = Path(out).parent / "stalling_trainer.py"
    wrapper.write_text(STALLING_TRAINER)
    return [sys.executable, str(wrapper), str(stall), *args]


def start(cmd):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc, timeout=300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def kill_when(proc, condition, timeout=300):
    """SIGKILL proc as soon as condition() holds; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the trainer ended (status {proc.returncode}) before the kill point:\n"
                        f"{proc.stdout.read()}")
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL


def last_logged_step(out: Path) -> int:
    try:
        lines = (out / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [0]
    for line in lines:
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            pass
    return max(steps)


def exact(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: r.get(k) for k in EXACT_KEYS} for r in rows]


def resume_or_restart(data, out, **kw):
    """After a kill: --resume when a checkpoint was saved, else start again (what a user does)."""
    return start(trainer_cmd(data, out, resume=bool(list_checkpoints(out)), **kw))


@pytest.mark.slow
def test_sigkill_at_seeded_moments_and_mid_save_then_resume_equals_an_uninterrupted_run(shards, tmp_path):
    whole, killed = tmp_path / "whole" / "run", tmp_path / "killed" / "run"
    whole.parent.mkdir()
    killed.parent.mkdir()
    reference = start(trainer_cmd(shards, whole))
    rng = random.Random(20240520)
    first = rng.randint(1, 2 * CKPT_EVERY)
    kill_steps = [first, rng.randint(first + CKPT_EVERY, MAX_STEPS - CKPT_EVERY)]

    # 1, 2: killed from outside once training has logged a seeded step
    proc = start(trainer_cmd(shards, killed))
    kill_when(proc, lambda: last_logged_step(killed) >= kill_steps[0])
    saved = [s for s, _ in list_checkpoints(killed)]
    proc = resume_or_restart(shards, killed)
    target = max(kill_steps[1], (saved or [0])[-1] + 1)
    kill_when(proc, lambda: last_logged_step(killed) >= target)

    # 3: killed while the next checkpoint is half written to its temporary file
    before = [s for s, _ in list_checkpoints(killed)]
    assert before, "the second kill comes after a checkpoint step"
    save_step = min(before[-1] + CKPT_EVERY * rng.randint(1, 2), MAX_STEPS)
    tmp = killed / "ckpt" / f".step_{save_step:08d}.pt.tmp"
    proc = resume_or_restart(shards, killed, stall=save_step)
    kill_when(proc, lambda: tmp.exists() and tmp.stat().st_size > 0)
    assert tmp.exists(), "the kill should leave the half-written checkpoint behind"
    after = [s for s, _ in list_checkpoints(killed)]
    assert save_step not in after and after[-1] == save_step - CKPT_EVERY

    # 4: the resume starts from the last complete checkpoint and runs to the end, where it is
    # killed again while writing model.safetensors
    proc = start(trainer_cmd(shards, killed, resume=True, stall="model"))
    model_tmp = killed / ".model.safetensors.tmp"
    kill_when(proc, lambda: model_tmp.exists() and model_tmp.stat().st_size > 0)
    assert not (killed / "model.safetensors").exists()
    assert [s for s, _ in list_checkpoints(killed)][-1] == MAX_STEPS

    # 5: a last --resume has only the final weights left to write
    log = finish(start(trainer_cmd(shards, killed, resume=True)))
    assert f"resuming after step {MAX_STEPS}" in log
    finish(reference)

    assert [r["step"] for r in exact(killed)] == list(range(1, MAX_STEPS + 1))
    assert exact(killed) == exact(whole)
    assert any(r["val_loss"] is not None for r in exact(whole))
    a, b = load_file(whole / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_resume_after_a_kill_mid_save_loads_the_checkpoint_before_it(shards, tmp_path):
    """The half-written temporary file is never taken for a checkpoint, and the next save
    clears it."""
    out = tmp_path / "run"
    proc = start(trainer_cmd(shards, out, f"stop_at={2 * CKPT_EVERY}", stall=2 * CKPT_EVERY))
    tmp = out / "ckpt" / f".step_{2 * CKPT_EVERY:08d}.pt.tmp"
    kill_when(proc, lambda: tmp.exists() and tmp.stat().st_size > 0)
    assert [s for s, _ in list_checkpoints(out)] == [CKPT_EVERY]
    log = finish(start(trainer_cmd(shards, out, f"stop_at={2 * CKPT_EVERY}", resume=True)))
    assert f"resuming after step {CKPT_EVERY}" in log
    assert [s for s, _ in list_checkpoints(out)] == [CKPT_EVERY, 2 * CKPT_EVERY]
    assert not tmp.exists()
    assert [r["step"] for r in exact(out)] == list(range(1, 2 * CKPT_EVERY + 1))

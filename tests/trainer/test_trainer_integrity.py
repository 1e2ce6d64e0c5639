"""What the trainer reads back is what it wrote (issue 20, cases 5 and 6).

A checkpoint carries its sha256 in a sidecar (`step_N.pt.sha256`, sha256sum's format); a
bit-rotted one (same size, bytes changed in the middle) is skipped on --resume with a warning, and
the advice after a divergence names only a checkpoint that verifies. `trainer.export` refuses a
destination that overlaps the run, and a tokenizer file whose sha256 is not the one the run
trained with.
"""

import hashlib
import io
import json
import shutil
import struct
import zipfile

import numpy as np
import pytest
import sentencepiece as spm
import torch

from core.errors import run_command
from trainer.checkpoint import list_checkpoints
from trainer.fixtures import write_dataset
from trainer.export import main as export_main
from trainer.run import main as train_main

TINY = ["n_layer=2", "n_embd=32", "n_head=2", "seq_len=32", "batch_size=4", "warmup_steps=2", "log_every=1",
        "eval_every=0", "num_samples=0", "tensorboard=false", "threads=1", "device=cpu", "compile=false"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    rng = np.random.default_rng(3)
    return write_dataset(tmp_path_factory.mktemp("shards") / "data",
                         {"train": rng.integers(0, 256, 8000), "val": rng.integers(0, 256, 800)}, vocab_size=256)


def command(main, argv, capsys) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of a trainer command run as its entry point runs it."""
    try:
        run_command(main, argv)
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def train(shards, out, capsys, *settings, resume=False):
    argv = ["--data", str(shards), "--out", str(out), *TINY, *settings] + (["--resume"] if resume else [])
    return command(train_main, argv, capsys)


def rot(path):
    """Bit rot: overwrite 64 bytes in the middle of the largest tensor a checkpoint stores. The
    file keeps its size and still opens as a zip (torch does not check the zip's CRCs)."""
    with zipfile.ZipFile(path) as z:
        entry = max(z.infolist(), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(entry.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        f.seek(entry.header_offset + 30 + name_len + extra_len + entry.file_size // 2 - 32)
        f.write(b"\xff" * 64)  # 0xffffffff is a NaN in float32


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder) -> dict:
    return {p.relative_to(folder): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def all_finite(state) -> bool:
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(v) for v in state)
    return True


@pytest.fixture
def two_checkpoints(shards, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = train(shards, out, capsys, "max_steps=4", "ckpt_every=2", "keep_ckpts=2")
    assert code == 0, err
    assert [s for s, _ in list_checkpoints(out)] == [2, 4]
    return out


# --------------------------------------------------------------------------------------------
# case 6: checkpoints are verified before they are loaded

def test_every_checkpoint_has_a_sha256_sidecar_and_pruning_removes_it(shards, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(shards, out, capsys, "max_steps=4", "ckpt_every=1", "keep_ckpts=2")[0] == 0
    ckpts = list_checkpoints(out)
    assert [s for s, _ in ckpts] == [3, 4]
    for _, path in ckpts:  # `sha256sum -c step_N.pt.sha256` checks it
        assert (path.parent / f"{path.name}.sha256").read_text() == f"{sha256(path)}  {path.name}\n"
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == [
        "step_00000003.pt", "step_00000003.pt.sha256", "step_00000004.pt", "step_00000004.pt.sha256"]


def test_a_bit_rotted_newest_checkpoint_is_skipped_and_the_one_before_resumes(shards, two_checkpoints, capsys):
    out = two_checkpoints
    rotted = out / "ckpt" / "step_00000004.pt"
    size = rotted.stat().st_size
    rot(rotted)
    assert rotted.stat().st_size == size
    code, stdout, err = train(shards, out, capsys, "max_steps=6", resume=True)
    assert code == 0, err
    assert "resuming after step 2" in stdout
    warnings = [line for line in err.splitlines() if str(rotted) in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 7)) and all(np.isfinite(r["loss"]) for r in rows)


def test_when_no_checkpoint_verifies_resume_is_one_line_and_exit_2(shards, two_checkpoints, capsys):
    out = two_checkpoints
    for _, path in list_checkpoints(out):
        rot(path)
    before = snapshot(out)
    code, _, err = train(shards, out, capsys, "max_steps=6", resume=True)
    assert code == 2
    lines = err.splitlines()
    assert lines[-1].startswith("error: --resume: ") and "Traceback" not in err
    assert all(line.startswith("warning: ") for line in lines[:-1])
    assert all(any(str(p) in line for line in lines[:-1]) for _, p in list_checkpoints(out))
    assert snapshot(out) == before


def test_the_advice_after_a_divergence_names_a_checkpoint_that_verifies(shards, two_checkpoints, capsys):
    out = two_checkpoints
    rot(out / "ckpt" / "step_00000004.pt")
    code, _, err = train(shards, out, capsys, "max_steps=12", "ckpt_every=1", "lr=1e30", "grad_clip=0",
                         "warmup_steps=0", resume=True)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "last good checkpoint is " in last
    named = last.split("last good checkpoint is ")[1].split(":")[0]
    assert named in {str(p) for _, p in list_checkpoints(out)}
    state = torch.load(named, map_location="cpu", weights_only=True)
    assert all_finite(state["model"]) and all_finite(state["optimizer"])
    assert sha256(out / "ckpt" / named.rsplit("/", 1)[1]) == \
        (out / "ckpt" / f"{named.rsplit('/', 1)[1]}.sha256").read_text().split()[0]


def test_a_checkpoint_from_before_checksums_loads_with_a_warning(shards, two_checkpoints, capsys):
    """A checkpoint file appears only after its sidecar, so one without a sidecar was written
    by a trainer that recorded none; it loads, unverified, and says so."""
    out = two_checkpoints
    (out / "ckpt" / "step_00000004.pt.sha256").unlink()
    (out / "ckpt" / "step_00000008.pt.sha256").write_text("0" * 64 + "  step_00000008.pt\n")  # a save killed
    code, stdout, err = train(shards, out, capsys, "max_steps=6", "ckpt_every=1",    # before its rename
                              resume=True)
    assert code == 0, err
    assert "resuming after step 4" in stdout
    assert any(line.startswith("warning: ") and "step_00000004.pt" in line and "sha256" in line
               for line in err.splitlines())
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == [
        "step_00000005.pt", "step_00000005.pt.sha256", "step_00000006.pt", "step_00000006.pt.sha256"]


# --------------------------------------------------------------------------------------------
# case 5: export writes only outside the run, and only the tokenizer the run trained with

def tokenizer_model(seed: int, vocab_size: int) -> bytes:
    rng = np.random.default_rng(seed)
    words = ["the", "cat", "dog", "sees", "likes", "a", "red", "hat", "river", "bread", "old", "man"]
    docs = [" ".join(rng.choice(words, 12)) + "." for _ in range(300)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(docs), model_writer=model, vocab_size=vocab_size,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   num_threads=1, minloglevel=2)
    return model.getvalue()


@pytest.fixture(scope="module")
def exportable_run(tmp_path_factory):
    """A finished one-step llama run on shards whose manifest names a tokenizer file."""
    folder = tmp_path_factory.mktemp("exportable")
    (folder / "tokenizer.model").write_bytes(tokenizer_model(0, 300))
    rng = np.random.default_rng(1)
    data = write_dataset(folder / "shards", {"train": rng.integers(0, 300, 4000)}, vocab_size=300,
                         tokenizer_file=folder / "tokenizer.model")
    run_command(train_main, ["--data", str(data), "--out", str(folder / "run"), *TINY, "max_steps=1"])
    return folder


@pytest.fixture
def run_copy(exportable_run, tmp_path):
    """The run and its tokenizer, copied so that a test may break them."""
    shutil.copytree(exportable_run, tmp_path / "x")
    config = tmp_path / "x" / "run" / "config.json"
    saved = json.loads(config.read_text())
    saved["data"]["tokenizer"] = str(tmp_path / "x" / "tokenizer.model")
    config.write_text(json.dumps(saved))
    return tmp_path / "x"


@pytest.mark.parametrize("where", ["the run", "inside the run", "the run's parent"])
def test_export_over_the_run_is_refused_before_anything_is_written(run_copy, where, capsys):
    run = run_copy / "run"
    dest = {"the run": run, "inside the run": run / "hf", "the run's parent": run_copy}[where]
    before = snapshot(run_copy)
    code, stdout, err = command(export_main, [str(run), "--to", "hf", str(dest)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and "overlap" in err
    assert snapshot(run_copy) == before
    assert not (run / "hf").exists()


def test_export_refuses_a_tokenizer_that_is_not_the_one_the_run_trained_with(run_copy, tmp_path, capsys):
    run, tokenizer = run_copy / "run", run_copy / "tokenizer.model"
    code, _, err = command(export_main, [str(run), "--to", "hf", str(tmp_path / "hf")], capsys)
    assert code == 0, err
    assert (tmp_path / "hf" / "tokenizer.model").read_bytes() == tokenizer.read_bytes()

    tokenizer.write_bytes(tokenizer_model(1, 280))  # replaced after training by another valid model
    code, _, err = command(export_main, [str(run), "--to", "hf", str(tmp_path / "hf2")], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ") and str(tokenizer) in err
    assert not (tmp_path / "hf2").exists()


def test_export_of_a_run_that_recorded_no_tokenizer_sha256_says_it_is_unverified(run_copy, tmp_path, capsys):
    config = run_copy / "run" / "config.json"
    saved = json.loads(config.read_text())
    saved["data"].pop("tokenizer_sha256", None)
    config.write_text(json.dumps(saved))
    code, stdout, err = command(export_main, [str(run_copy / "run"), "--to", "hf", str(tmp_path / "hf")], capsys)
    assert code == 0, err
    assert "sha256" in stdout + err and (tmp_path / "hf" / "tokenizer.model").is_file()

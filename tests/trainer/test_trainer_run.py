"""trainer.run end to end on tiny models: outputs, exact resume, checkpoints, NaN, bad input,
and the two tools that read a finished run (trainer.export, trainer.report)."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import sentencepiece as spm
import torch
from safetensors.torch import load_file

from core.errors import UsageError, run_command
from trainer.checkpoint import list_checkpoints, load_latest_checkpoint
from trainer.config import TrainConfig, load_config
from trainer.fixtures import encode_texts, write_dataset
from trainer.run import lr_at, main

TINY = ["n_layer=2", "n_embd=32", "n_head=2", "seq_len=32", "batch_size=4", "warmup_steps=3", "log_every=1",
        "sample_tokens=8", "tensorboard=false",
        "threads=1"]


def documents(n, seed):
    rng = np.random.default_rng(seed)
    subjects, verbs, objects = ["the cat", "a dog", "my friend", "the old man"], ["sees", "likes", "finds"], \
        ["the ball", "a red hat", "some bread", "the river"]
    return [" ".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}."
                     for _ in range(rng.integers(3, 9))) for _ in range(n)]


@pytest.fixture(scope="module")
def text_data(tmp_path_factory):
    """A SentencePiece tokenizer and shards made from a few hundred tiny documents."""
    folder = tmp_path_factory.mktemp("text")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(documents(300, 0)), model_writer=model, vocab_size=300,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0, num_threads=1,
                                   minloglevel=2)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    return encode_texts(folder / "shards", {"train": documents(400, 1), "val": documents(40, 2)},
                        folder / "tokenizer.model", shard_tokens=5000)


def run(data, out, *settings, resume=False):
    main(["--data", str(data), "--out", str(out), *TINY, *settings] + (["--resume"] if resume else []))


def rows(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def finished_run(text_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    run(text_data, out, "max_steps=12", "eval_every=6")
    return out


def test_a_run_writes_every_output(text_data, finished_run):
    out = finished_run
    metrics = rows(out)
    assert [r["step"] for r in metrics] == list(range(1, 13))
    assert {"step", "loss", "lr", "tokens_per_s", "mfu", "grad_norm"} <= set(metrics[0])
    assert metrics[0]["mfu"] is None  # no peak FLOPs for a CPU
    assert [r["step"] for r in metrics if "val_loss" in r] == [6, 12]
    assert metrics[-1]["val_bpb"] == pytest.approx(
        metrics[-1]["val_loss"] / np.log(2) / json.loads((text_data / "manifest.json").read_text())
        ["splits"]["val"]["bytes_per_token"])
    assert metrics[-1]["loss"] < metrics[0]["loss"] - 0.5
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["n_layer"] == 2 and config["model"]["vocab_size"] == 320  # 300 padded to 64s
    assert config["train"]["max_steps"] == 12 and config["tokens_per_step"] == 128
    assert "transformer.wte.weight" in load_file(out / "model.safetensors")
    assert [s for s, _ in list_checkpoints(out)] == [12]
    samples = (out / "samples.txt").read_text()
    assert samples.count("=== sample") == 3 and len(samples) > 100


def test_resume_gives_the_losses_of_an_uninterrupted_run_bit_for_bit(text_data, tmp_path):
    # dropout makes the RNG state matter too
    common = ["eval_every=4", "ckpt_every=4", "dropout=0.1", "num_samples=0", "max_steps=16"]
    run(text_data, tmp_path / "whole", *common)
    run(text_data, tmp_path / "split", *common, "stop_at=8")
    assert [s for s, _ in list_checkpoints(tmp_path / "split")] == [4, 8]
    assert not (tmp_path / "split" / "samples.txt").exists()
    with open(tmp_path / "split" / "metrics.jsonl", "a") as f:  # a killed job logged steps it never saved
        f.write(json.dumps({"step": 9, "loss": 1.0}) + "\n{\"step\": 10, \"lo")
    main(["--data", str(text_data), "--out", str(tmp_path / "split"), "--resume", "max_steps=16"])
    whole, split = rows(tmp_path / "whole"), rows(tmp_path / "split")
    assert [r["step"] for r in split] == list(range(1, 17))
    assert [r["loss"] for r in split] == [r["loss"] for r in whole]
    assert [r.get("val_loss") for r in split] == [r.get("val_loss") for r in whole]
    a, b = load_file(tmp_path / "whole" / "model.safetensors"), load_file(tmp_path / "split" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_pruned_and_a_broken_newest_one_falls_back(text_data, tmp_path):
    out = tmp_path / "run"
    run(text_data, out, "max_steps=6", "ckpt_every=1", "keep_ckpts=2", "num_samples=0")
    assert [s for s, _ in list_checkpoints(out)] == [5, 6]
    state = torch.load(out / "ckpt" / "step_00000006.pt", weights_only=True)
    assert {"model", "optimizer", "step", "data", "rng", "config"} <= set(state)
    (out / "ckpt" / ".step_00000007.pt.tmp").write_bytes(b"a save killed half way")
    (out / "ckpt" / "step_00000006.pt").write_bytes(b"garbage")
    assert [s for s, _ in list_checkpoints(out)] == [5, 6]
    assert load_latest_checkpoint(out)["step"] == 5


def test_a_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(text_data, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as stop:
        run_command(main, ["--data", str(text_data), "--out", str(out), *TINY, "max_steps=12", "ckpt_every=1",
                           "lr=1e30", "grad_clip=0", "warmup_steps=0"])
    assert stop.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    # caught as a NaN loss, or earlier, as weights gone infinite before a save
    assert err.startswith(("error: loss is nan at step ", "error: the weights are not finite after step "))
    bad = int(err.split(" step ")[1].split(";")[0])
    steps = [s for s, _ in list_checkpoints(out)]
    assert steps and steps[-1] < bad and f"last good checkpoint is {list_checkpoints(out)[-1][1]}:" in err
    logged = [r["step"] for r in rows(out)]
    assert logged == list(range(1, len(logged) + 1)) and logged[-1] <= bad
    assert all(np.isfinite(r["loss"]) for r in rows(out))


def test_schedules():
    cfg = TrainConfig(lr=1.0, min_lr_ratio=0.1, warmup_steps=10, max_steps=111)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.55)  # half way down the cosine
    assert lr_at(110, cfg) == pytest.approx(0.1)
    wsd = TrainConfig(lr=1.0, min_lr_ratio=0.0, warmup_steps=10, max_steps=110, schedule="wsd", decay_frac=0.2)
    assert [lr_at(s, wsd) for s in (10, 50, 87)] == [1.0, 1.0, 1.0]
    assert lr_at(88, wsd) == pytest.approx(1.0) and lr_at(109, wsd) == pytest.approx(0.0)
    assert lr_at(98, wsd) == pytest.approx(0.5, abs=0.03)


def test_config_file_then_command_line(tmp_path):
    yaml = tmp_path / "c.yaml"
    yaml.write_text("# a run\npreset: gpt2-124m\nmax_steps: 50  # short\nlr: 1e-3\ncompile: false\nsample_prompt: 'Once'\n")
    cfg = load_config(str(yaml), ["max_steps=7", "dropout=0.1", "stop_at=3"])
    assert (cfg.preset, cfg.max_steps, cfg.lr, cfg.compile, cfg.dropout, cfg.stop_at) == \
        ("gpt2-124m", 7, 1e-3, False, 0.1, 3)
    assert cfg.sample_prompt == "Once"
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"batch_size": 3, "qk_norm": True, "seq_len": None}))
    assert (load_config(str(js), []).batch_size, load_config(str(js), []).qk_norm) == (3, True)
    assert load_config(None, ["max_steps=1e4"]).max_steps == 10000
    for bad, message in [(["bogus=1"], "unknown setting 'bogus'"), (["max_steps=ten"], "must be int"),
                         (["compile=maybe"], "true or false"), (["schedule=linear"], "schedule must be"),
                         (["stop_at=2000"], "stop_at must be"), (["max_steps"], "key=value"),
                         (["attention=fast"], "attention must be one of"),
                         (["compile_mode=turbo"], "compile_mode must be one of")]:
        with pytest.raises(UsageError, match=message):
            load_config(None, bad)


def test_attention_setting_leaves_only_the_chosen_kernel():
    import torch

    from trainer import parallel

    switches = {"flash": "flash_sdp_enabled", "cudnn": "cudnn_sdp_enabled",
                "efficient": "mem_efficient_sdp_enabled", "math": "math_sdp_enabled"}
    before = {k: getattr(torch.backends.cuda, f)() for k, f in switches.items()}
    try:
        parallel.select_attention(parallel.Runtime(0, 0, 1, torch.device("cpu")), "cudnn")
        assert {k: getattr(torch.backends.cuda, f)() for k, f in switches.items()} == before
        parallel.select_attention(parallel.Runtime(0, 0, 1, torch.device("cuda", 0)), "cudnn")
        assert {k: getattr(torch.backends.cuda, f)() for k, f in switches.items()} == {
            "flash": False, "cudnn": True, "efficient": False, "math": False}
    finally:
        for k, f in switches.items():
            getattr(torch.backends.cuda, "enable_" + f.removesuffix("_enabled"))(before[k])


def error_of(capsys, argv) -> str:
    with pytest.raises(SystemExit) as stop:
        run_command(main, argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    return err


def test_bad_input_is_one_line_and_exit_2(text_data, tmp_path, capsys):
    good = ["--data", str(text_data), "--out", str(tmp_path / "o")]
    assert "no manifest.json" in error_of(capsys, ["--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "unknown setting 'bogus'" in error_of(capsys, good + ["bogus=3"])
    assert "does not divide" in error_of(capsys, good + TINY + ["global_batch_tokens=1000"])
    assert "--out" in error_of(capsys, ["--data", str(text_data)])
    assert "unrecognized arguments" in error_of(capsys, good + ["--bogus"])
    assert "no checkpoint" in error_of(capsys, good + ["--resume"])
    assert "unknown preset" in error_of(capsys, good + ["preset=huge"])
    wrong = write_dataset(tmp_path / "wrong", {"train": np.arange(100)}, vocab_size=200)
    (wrong / "train_000000.bin").write_bytes(b"\0" * 2000)
    assert "wrong header" in error_of(capsys, ["--data", str(wrong), "--out", str(tmp_path / "o")])
    run(text_data, tmp_path / "done", "max_steps=2", "num_samples=0")
    assert "already holds checkpoints" in error_of(capsys, ["--data", str(text_data), "--out", str(tmp_path / "done")])
    assert "differ from the checkpoint" in error_of(
        capsys, ["--data", str(text_data), "--out", str(tmp_path / "done"), "--resume", "n_layer=3"])


def test_global_batch_in_tokens_sets_accumulation(text_data, tmp_path):
    run(text_data, tmp_path / "run", "max_steps=2", "num_samples=0", "global_batch_tokens=512")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["grad_accum"] == 4 and config["tokens_per_step"] == 512


def test_the_command_line_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "trainer.run", "--data", str(tmp_path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no manifest.json")
    assert "Traceback" not in proc.stderr
    help_text = subprocess.run([sys.executable, "-m", "trainer.run", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--resume" in help_text.stdout


def test_export_to_transformers_gives_the_same_logits(finished_run, text_data, tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("google.protobuf", reason="transformers reads a SentencePiece model through protobuf")
    from trainer.checkpoint import load_model
    from trainer.export import main as export_main
    export_main([str(finished_run), "--to", "hf", str(tmp_path / "hf")])
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    ours = load_model(finished_run)
    idx = torch.randint(0, 300, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(hf(idx).logits.numpy(), ours(idx)[0].numpy(), atol=1e-4, rtol=1e-4)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    sp = spm.SentencePieceProcessor(model_file=str(text_data.parent / "tokenizer.model"))
    text = "the old man finds a red hat."
    assert tokenizer(text)["input_ids"] == [sp.bos_id()] + sp.encode(text)
    assert tokenizer.decode(tokenizer(text)["input_ids"], skip_special_tokens=True) == text


def test_export_of_grouped_query_attention_and_an_untied_head(tmp_path):
    transformers = pytest.importorskip("transformers")
    import dataclasses

    from trainer.checkpoint import save_model, write_json
    from trainer.export import to_hf
    from trainer.model import GPT, GPTConfig
    config = GPTConfig(vocab_size=128, block_size=24, n_layer=2, n_head=4, n_kv_head=2, n_embd=64,
                       tie_embeddings=False, rope_theta=500.0, norm_eps=1e-6)
    torch.manual_seed(0)
    ours = GPT(config).eval()
    for p in ours.parameters():  # norm gains away from 1, so a swapped norm would show
        p.data.add_(0.05 * torch.randn_like(p))
    run = tmp_path / "run"
    run.mkdir()
    save_model(run, ours.state_dict(), config)
    write_json(run / "config.json", {"model": dataclasses.asdict(config), "data": {"tokenizer": None}})
    hf = transformers.AutoModelForCausalLM.from_pretrained(to_hf(run, tmp_path / "hf")).eval()
    idx = torch.randint(0, 128, (3, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        np.testing.assert_allclose(hf(idx).logits.numpy(), ours(idx)[0].numpy(), atol=1e-4, rtol=1e-4)


def test_export_refuses_what_llama_cannot_hold(text_data, tmp_path, capsys):
    from trainer.export import main as export_main
    run(text_data, tmp_path / "gpt2", "max_steps=1", "num_samples=0", "arch=gpt2")
    with pytest.raises(SystemExit) as stop:
        run_command(export_main, [str(tmp_path / "gpt2"), "--to", "hf", str(tmp_path / "hf")])
    assert stop.value.code == 2 and "arch=gpt2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_command(export_main, [str(tmp_path / "nothing"), "--to", "hf", str(tmp_path / "hf")])
    assert "no readable config.json" in capsys.readouterr().err


def test_report_draws_loss_and_lr(finished_run, capsys):
    from trainer.report import main as report_main
    report_main([str(finished_run)])
    png = finished_run / "report.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert str(png) in capsys.readouterr().out

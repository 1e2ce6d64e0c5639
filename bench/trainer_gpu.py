"""Trainer on one GPU: tokens/s and MFU of `gpt2-124m` (12 layers, 768 wide, 12 heads, 1024
context), bf16, compiled, at batch 16 and 32, against nanoGPT's bench.py on the same card.

    bench/trainer_gpu.sh [--steps 60] [--warmup 20] [--batch-sizes 16,32]
    bench/trainer_gpu.sh --smoke        (the tiny preset for a few steps: checks the script on CPU)

Made for a bare GPU machine with no network: it needs torch, numpy and this checkout, writes
random tokens in the shard format (vocabulary 50257, padded to 50304 as nanoGPT does), and runs
`python -m trainer.run` itself, one process per batch size, so what is timed is what a user runs.
Throughput is the trainer's own windows of log_every steps (each closed by a device sync), after
the warm-up steps that include compilation. MFU counts FLOPs as nanoGPT does (6N + attention)
against the card's dense bf16 peak. nanoGPT's figures (torch 2.11, compiled, batch 32): 480k
tokens/s on one H100, 499k on one H200 (SPEC "Benchmarks"); target: 1.3x.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.trainer_cpu import write_results
from trainer.fixtures import write_dataset

NANOGPT_TOKENS_PER_S = {"H200": 499_000, "H100": 480_000}  # batch 32, bf16, compiled
TARGET = 1.3


def reference(device_name: str) -> float | None:
    return next((v for k, v in NANOGPT_TOKENS_PER_S.items() if k in device_name), None)


def run_trainer(data: Path, out: Path, settings: list[str]) -> list[dict]:
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "trainer.run", "--data", str(data), "--out", str(out), *settings]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env, cwd=repo)
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench/trainer_gpu.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps after the warm-up")
    parser.add_argument("--warmup", type=int, default=20, help="steps not timed (compilation, allocator)")
    parser.add_argument("--batch-sizes", default="16,32")
    parser.add_argument("--smoke", action="store_true", help="tiny preset, a few steps, any device; writes no results")
    parser.add_argument("--variant", action="append", default=[], metavar="'key=value ...'",
                        help="also run the largest batch size with these trainer settings added (repeatable), "
                             "e.g. 'attention=cudnn' or 'compile_mode=max-autotune-no-cudagraphs'")
    args = parser.parse_args(argv)
    if args.smoke:
        preset, vocab, batches, steps, warmup, log_every = "tiny", 512, [2, 4], 4, 2, 2
        extra, label = ["compile=false", "threads=1"], "smoke"
    else:
        if not torch.cuda.is_available():
            print("error: no CUDA device (use --smoke to check the script on CPU)", file=sys.stderr)
            return 2
        preset, vocab, log_every = "gpt2-124m", 50257, 10
        batches, steps, warmup = [int(b) for b in args.batch_sizes.split(",")], args.steps, args.warmup
        extra, label = ["compile=true", "dtype=bfloat16", "device=cuda"], "bf16 compiled"
    device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    ref = reference(device_name)
    rows, runs = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokens = np.random.default_rng(0).integers(0, vocab, 20_000_000 if not args.smoke else 200_000)
        data = write_dataset(tmp / "data", {"train": tokens}, vocab_size=vocab)
        plan = [(batch, []) for batch in batches] + [(max(batches), v.split()) for v in args.variant]
        for n, (batch, variant) in enumerate(plan):
            settings = [f"preset={preset}", f"batch_size={batch}", "grad_accum=1", f"max_steps={warmup + steps}",
                        "warmup_steps=10", "eval_every=0", "ckpt_every=0", "num_samples=0", f"log_every={log_every}",
                        "tensorboard=false", *extra, *variant]
            metrics = run_trainer(data, tmp / f"run{n}", settings)
            timed = [r for r in metrics if r["step"] > warmup]
            tok_s = statistics.mean(r["tokens_per_s"] for r in timed)
            mfu = statistics.mean(r["mfu"] for r in timed) if timed[0]["mfu"] is not None else None
            what = f"batch {batch}" + "".join(f", {v}" for v in variant)
            runs[what] = {"tokens_per_s": tok_s, "mfu": mfu, "loss_first": metrics[0]["loss"],
                          "loss_last": metrics[-1]["loss"]}
            rows.append({"name": f"trainer {preset} {label}, {what} on {device_name}",
                         "figure": round(tok_s), "unit": "tokens/s", "baseline": ref,
                         "ratio": round(tok_s / ref, 3) if ref else None, "target": f">= {TARGET}",
                         "met": bool(ref and tok_s / ref >= TARGET)})
            if mfu is not None:
                rows.append({"name": f"trainer {preset} MFU, {what} (nanoGPT: 0.42 at batch 32 on H100)",
                             "figure": round(mfu, 4), "unit": "fraction of peak", "baseline": None, "ratio": None,
                             "target": "-", "met": None})
    if args.smoke:
        for r in rows:
            print(f"smoke: {r['name']}: {r['figure']:,} {r['unit']}")
        return 0
    write_results("trainer_gpu", rows, device=device_name, torch=torch.__version__, steps=steps, warmup=warmup,
                  runs=runs, nanogpt_reference=NANOGPT_TOKENS_PER_S)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Trainer on CPU: tokens/s of the `tiny` preset against the same model written the simplest way
in eager PyTorch, in the same process, on the same shards.

    python -m bench.trainer_cpu [--steps 8] [--rounds 3] [--threads 1] [--batch-size 16]

Ours is trainer.run's own loop (data sampling, forward, backward, clipping, AdamW, metrics),
timed by its own per-step figures. The baseline is what a person writes from the papers:
attention as softmax(q k^T) v with a mask, RMSNorm and rotary positions by hand, three Linear
layers for SwiGLU, torch.optim.AdamW with its defaults, nanoGPT's get_batch. Same shape, same
batch, float32. The two alternate for --rounds rounds and each side's median is kept, because
this machine is shared. One thread by default: figures per core, and far less noisy on busy cores
than two threads waiting on each other.
"""

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from trainer.config import load_config
from trainer.fixtures import write_dataset
from trainer.model import PRESETS
from trainer.run import train

RESULTS = Path(__file__).resolve().parent / "results"
VOCAB = 8000  # the demo's vocabulary (Makefile VOCAB)


def write_results(name: str, rows: list[dict], **extra) -> Path:
    """bench/results/<name>.json in the shape bench/all.py reads, and the rows as a table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"bench": name, **extra, "rows": rows}, indent=2) + "\n")
    for r in rows:
        base = "-" if r["baseline"] is None else f"{r['baseline']:,.4g}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
        print(f"{r['name']:<58} {r['figure']:>12,.4g} {r['unit']:<10} baseline {base:>10}  ratio {ratio:>6}  "
              f"target {r['target']}  met {r['met']}")
    print(f"wrote {path}")
    return path


class PlainBlock(nn.Module):
    def __init__(self, d, n_head, hidden):
        super().__init__()
        self.n_head = n_head
        self.norm1, self.norm2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        self.q, self.k, self.v, self.o = (nn.Linear(d, d, bias=False) for _ in range(4))
        self.gate, self.up = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    @staticmethod
    def rmsnorm(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    @staticmethod
    def rope(x, cos, sin):
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        h = self.rmsnorm(x, self.norm1)
        q, k, v = (f(h).view(B, T, self.n_head, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        att = att.masked_fill(mask[:T, :T] == 0, float("-inf")).softmax(dim=-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, C))
        h = self.rmsnorm(x, self.norm2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class PlainGPT(nn.Module):
    def __init__(self, vocab, d, n_layer, n_head, hidden, block):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(PlainBlock(d, n_head, hidden) for _ in range(n_layer))
        self.norm = nn.Parameter(torch.ones(d))
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.emb.weight
        hd = d // n_head
        freqs = torch.outer(torch.arange(block).float(), 1.0 / 10000 ** (torch.arange(0, hd, 2).float() / hd))
        self.register_buffer("cos", freqs.cos())
        self.register_buffer("sin", freqs.sin())
        self.register_buffer("mask", torch.tril(torch.ones(block, block)))

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x, self.cos[:T], self.sin[:T], self.mask)
        logits = self.head(PlainBlock.rmsnorm(x, self.norm))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def plain_tokens_per_s(tokens: np.ndarray, cfg, steps: int, warmup: int) -> float:
    torch.manual_seed(0)
    mc = cfg.model_config(VOCAB)
    model = PlainGPT(VOCAB, mc.n_embd, mc.n_layer, mc.n_head, mc.mlp_hidden, mc.block_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    B, T = cfg.batch_size, mc.block_size
    times = []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        ix = np.random.randint(0, len(tokens) - T - 1, B)  # nanoGPT's get_batch
        x = torch.stack([torch.from_numpy(tokens[i:i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(tokens[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - t0)
    return B * T / statistics.mean(times[warmup:])


def ours_tokens_per_s(data: Path, work: Path, settings: list[str], steps: int, warmup: int) -> float:
    out = Path(tempfile.mkdtemp(dir=work))
    cfg = load_config(None, settings + [f"max_steps={warmup + steps}", "eval_every=0", "ckpt_every=0",
                                        "num_samples=0", "log_every=1", "tensorboard=false"])
    rows = train(data, out, cfg)
    step_s = [r["step_s"] for r in rows[warmup:]]
    return cfg.batch_size * cfg.model_config(VOCAB).block_size / statistics.mean(step_s)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.trainer_cpu", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = ["preset=tiny", f"batch_size={args.batch_size}", f"threads={args.threads}", "device=cpu"]
    cfg = load_config(None, settings)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, VOCAB, 2_000_000).astype(np.uint16)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_dataset(work / "data", {"train": tokens}, vocab_size=VOCAB)
        ours, plain = [], []
        for r in range(args.rounds):
            ours.append(ours_tokens_per_s(data, work, settings, args.steps, args.warmup))
            plain.append(plain_tokens_per_s(tokens, cfg, args.steps, args.warmup))
            print(f"round {r + 1}: ours {ours[-1]:,.0f} tok/s, plain eager {plain[-1]:,.0f} tok/s", flush=True)
    figure, baseline = statistics.median(ours), statistics.median(plain)
    shape = PRESETS["tiny"]
    rows = [{"name": f"trainer tiny ({shape['n_layer']}L {shape['n_embd']}d, batch {args.batch_size}x"
                     f"{shape['block_size']}), {args.threads} thread(s)",
             "figure": round(figure, 1), "unit": "tokens/s", "baseline": round(baseline, 1),
             "ratio": round(figure / baseline, 3), "target": ">= 1", "met": figure / baseline >= 1.0}]
    write_results("trainer_cpu", rows, threads=args.threads, steps=args.steps, rounds=args.rounds,
                  ours_tokens_per_s=ours, plain_tokens_per_s=plain, torch=torch.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())

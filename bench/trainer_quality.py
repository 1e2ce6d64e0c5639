"""Trainer quality: our default recipe against the GPT-2 recipe at the same size and token budget.

    python -m bench.trainer_quality [--steps 300] [--batch-size 8] [--books-mb 4] [--vocab 2048]

Both train the `tiny` preset on the same shards with the same optimizer, learning rate, schedule
and batches; only the architecture differs: ours (rotary positions, RMSNorm, SwiGLU, no biases)
against GPT-2's (learned positions, LayerNorm, GELU, biases; the same width, so it has slightly
more weights). The shards are Project Gutenberg books from ../shared/data/books (Gutenberg's
header and footer cut off), encoded with a SentencePiece BPE model trained here on the training
books; two other books are the validation set. Writes bench/results/trainer_quality.json and
both validation curves to bench/results/trainer_quality.png.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

from bench.trainer_cpu import RESULTS, write_results
from trainer.config import load_config
from trainer.fixtures import encode_texts
from trainer.run import train

REPO = Path(__file__).resolve().parent.parent
BOOKS = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data")) / "books"


def book_text(path: Path) -> str:
    """The book without Gutenberg's licence header and footer."""
    text = path.read_text(encoding="utf-8", errors="replace")
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start != -1:
        text = text[text.find("\n", start) + 1:]
        end = text.find("*** END OF")
    return text[:end] if end != -1 else text


def load_books(megabytes: float) -> tuple[list[str], list[str]]:
    """(train books, val books): in name order, byte-identical copies skipped; val is the last two."""
    seen, books = set(), []
    for path in sorted(BOOKS.glob("*.txt")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        books.append(book_text(path))
        if sum(map(len, books[:-2])) > megabytes * 1e6 and len(books) > 2:
            break
    return books[:-2], books[-2:]


def build_shards(folder: Path, vocab: int, megabytes: float) -> Path:
    import sentencepiece as spm
    train_books, val_books = load_books(megabytes)
    paragraphs = [p for book in train_books for p in book.split("\n\n") if p.strip()]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(paragraphs), model_writer=model, vocab_size=vocab, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, max_sentence_length=1 << 16, input_sentence_size=200_000,
        shuffle_input_sentence=True, num_threads=2, minloglevel=2)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    return encode_texts(folder / "shards", {"train": train_books, "val": val_books}, folder / "tokenizer.model")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.trainer_quality", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--books-mb", type=float, default=4.0)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if not BOOKS.is_dir():
        print(f"skipped: no books at {BOOKS}")
        return 0
    every = max(1, args.steps // 10)
    common = ["preset=tiny", f"seq_len={args.seq_len}", f"batch_size={args.batch_size}", f"max_steps={args.steps}",
              f"warmup_steps={every}", f"eval_every={every}", "eval_iters=20", "ckpt_every=0", "log_every=10",
              "num_samples=1", "tensorboard=false", f"threads={args.threads}", "device=cpu"]
    curves = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = build_shards(tmp, args.vocab, args.books_mb)
        for name, arch in (("ours", "llama"), ("gpt2", "gpt2")):
            out = tmp / name
            rows = train(data, out, load_config(None, common + [f"arch={arch}"]))
            curves[name] = {"tokens": [r["tokens"] for r in rows if r.get("val_loss") is not None],
                            "val_loss": [r["val_loss"] for r in rows if r.get("val_loss") is not None],
                            "val_bpb": [r["val_bpb"] for r in rows if r.get("val_loss") is not None],
                            "train_tokens": [r["tokens"] for r in rows], "train_loss": [r["loss"] for r in rows],
                            "params": json.loads((out / "config.json").read_text())["params"],
                            "sample": (out / "samples.txt").read_text()[:400]}
    ours, gpt2 = curves["ours"], curves["gpt2"]
    plot(curves, RESULTS / "trainer_quality.png")
    tokens = ours["tokens"][-1]
    rows = [{"name": f"tiny val_loss after {tokens:,} tokens, ours vs GPT-2 recipe (lower is better)",
             "figure": round(ours["val_loss"][-1], 4), "unit": "nats/token", "baseline": round(gpt2["val_loss"][-1], 4),
             "ratio": round(ours["val_loss"][-1] / gpt2["val_loss"][-1], 4), "target": "< 1",
             "met": ours["val_loss"][-1] < gpt2["val_loss"][-1]},
            {"name": "tiny val bits per byte, ours vs GPT-2 recipe", "figure": round(ours["val_bpb"][-1], 4),
             "unit": "bits/byte", "baseline": round(gpt2["val_bpb"][-1], 4),
             "ratio": round(ours["val_bpb"][-1] / gpt2["val_bpb"][-1], 4), "target": "< 1",
             "met": ours["val_bpb"][-1] < gpt2["val_bpb"][-1]}]
    write_results("trainer_quality", rows, settings=common, vocab=args.vocab, books_mb=args.books_mb,
                  params={k: v["params"] for k, v in curves.items()}, curves=curves)
    return 0


def plot(curves: dict, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, c), color in zip(curves.items(), ("tab:blue", "tab:orange")):
        label = "ours (RoPE, RMSNorm, SwiGLU)" if name == "ours" else "GPT-2 recipe (learned pos., LayerNorm, GELU)"
        ax.plot(c["train_tokens"], c["train_loss"], color=color, alpha=0.25, linewidth=0.8)
        ax.plot(c["tokens"], c["val_loss"], "o-", color=color, label=f"{label}, {c['params'] / 1e6:.2f}M params")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats/token); faint: train, dots: validation")
    ax.set_title("tiny preset on Gutenberg books, same optimizer and token budget")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())

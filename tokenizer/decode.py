"""Shards back to text: the round-trip check, and a look at what a trainer will read.

    python -m tokenizer.decode SHARDS --tokenizer DIR [--split val] [--docs 3]

Every shard's header is checked against the manifest, and the tokenizer folder against the
manifest's sha256, before anything is decoded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from core.errors import UsageError, exit_code
from core.shards import (
    check_tokenizer,
    file_in,
    iter_tokens,
    read_header,
    read_manifest,
)
from tokenizer.encode import load_processor


def check_shards(folder: str | Path, manifest: dict) -> None:
    """Every listed shard exists, has a valid header of the manifest's dtype, and the counts add up."""
    for split, info in manifest["splits"].items():
        total = 0
        for name in info["shards"]:
            count, dtype = read_header(file_in(folder, name))
            if dtype.name != manifest["dtype"]:
                raise UsageError(
                    f"{name} holds {dtype.name} tokens, the manifest says {manifest['dtype']}"
                )
            total += count
        if total != info["tokens"]:
            raise UsageError(f"{split}: manifest says {info['tokens']} tokens, shards hold {total}")


def iter_document_tokens(folder: str | Path, manifest: dict, split: str) -> Iterator[np.ndarray]:
    """Each document's ids (BOS dropped), in shard order; documents may span shards."""
    bos = manifest["bos_id"]
    carry = None
    for name in manifest["splits"][split]["shards"]:
        for chunk in iter_tokens(file_in(folder, name)):
            tokens = chunk if carry is None else np.concatenate([carry, chunk])
            starts = np.flatnonzero(tokens == bos)
            if carry is None and (not starts.size or starts[0] != 0):
                raise UsageError(f"{name}: tokens before the first BOS")
            for s, e in zip(starts[:-1], starts[1:]):
                yield tokens[s + 1 : e]
            carry = tokens[starts[-1] :] if starts.size else tokens
    if carry is not None:
        yield carry[1:]


def iter_documents(folder: str | Path, tokenizer_dir: str | Path, split: str = "train") -> Iterator[str]:
    """The documents of a split as text, after checking shards and tokenizer against the manifest."""
    manifest = read_manifest(folder)
    check_shards(folder, manifest)
    sp = load_processor(check_tokenizer(manifest, tokenizer_dir))
    for ids in iter_document_tokens(folder, manifest, split):
        yield sp.decode(ids.tolist())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tokenizer.decode", description=__doc__.split("\n\n")[0])
    p.add_argument("shards", help="folder written by jobs/encode.py")
    p.add_argument("--tokenizer", required=True, help="the tokenizer folder the shards were encoded with")
    p.add_argument("--split", default="val", choices=("train", "val"))
    p.add_argument("--docs", type=int, default=3, help="how many documents to print")
    args = p.parse_args(argv)

    def show() -> None:
        for i, text in enumerate(iter_documents(args.shards, args.tokenizer, args.split)):
            if i == args.docs:
                break
            print(f"--- {args.split} document {i} ({len(text.encode())} bytes)\n{text}")

    return exit_code(show)


if __name__ == "__main__":
    sys.exit(main())

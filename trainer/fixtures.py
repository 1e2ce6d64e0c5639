"""Shard folders made from arrays or a little text, for tests and benchmarks.

Real shards come from ``jobs/encode.py``; these are the same format (``core.shards``) and
manifest, made in a second, so a trainer test or the GPU benchmark (which runs on a machine
without the corpus pipeline) needs no corpus.
"""
import json
from pathlib import Path

import numpy as np

from core.files import file_sha256
from core.shards import token_dtype, write_shard


def write_dataset(folder, splits: dict, vocab_size: int, tokenizer_file=None, bytes_per_token=None,
                  shard_tokens: int | None = None) -> Path:
    """Shards and a manifest.json for each split's token array, shaped like jobs/encode.py's."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dtype = token_dtype(vocab_size)
    manifest = {"vocab_size": vocab_size, "dtype": dtype.name, "splits": {}}
    if tokenizer_file is not None:
        manifest["tokenizer"] = {"file": Path(tokenizer_file).name, "path": str(Path(tokenizer_file).resolve()),
                                 "sha256": file_sha256(tokenizer_file)}
    for split, tokens in splits.items():
        tokens = np.asarray(tokens)
        step = shard_tokens or max(tokens.size, 1)
        names = []
        for i, start in enumerate(range(0, max(tokens.size, 1), step)):
            names.append(write_shard(folder / f"{split}_{i:06d}.bin", tokens[start:start + step], dtype).name)
        manifest["splits"][split] = {"shards": names, "tokens": int(tokens.size)}
        if bytes_per_token:
            manifest["splits"][split]["bytes_per_token"] = bytes_per_token
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder


def encode_texts(folder, splits: dict, tokenizer_file, shard_tokens: int | None = None) -> Path:
    """Encode each split's documents with a SentencePiece model (BOS before each, as
    jobs/encode.py does) into shards and a manifest with bytes per token. For tests and benches
    that start from a little text; a real corpus goes through jobs/encode.py."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_file))
    streams, sizes = {}, {}
    for split, docs in splits.items():
        ids = sp.encode(list(docs))
        streams[split] = np.fromiter((t for doc in ids for t in (sp.bos_id(), *doc)), dtype=np.int64)
        sizes[split] = sum(len(d.encode("utf-8")) for d in docs)
    folder = write_dataset(folder, streams, sp.vocab_size(), tokenizer_file=tokenizer_file, shard_tokens=shard_tokens)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["bos_id"] = sp.bos_id()
    for split, info in manifest["splits"].items():
        info["bytes"] = sizes[split]
        info["bytes_per_token"] = sizes[split] / max(info["tokens"], 1)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder

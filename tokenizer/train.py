"""Train a SentencePiece vocabulary on a corpus stage folder.

    python -m tokenizer.train --input DIR --output DIR --vocab-size N

Reads ``DIR/data/*.parquet`` (``id``, ``text``, optional ``lang``) with pyarrow, no Spark: the
sample is small and SentencePiece trains in one process anyway. Writes ``tokenizer.model``,
``tokenizer.vocab`` (SentencePiece's text listing: piece, tab, score; a piece may hold a
newline, so read the model, not this file, in code), ``tokenizer.json`` (every setting, the
sample, the model's sha256) and ``_SUCCESS`` last.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import UsageError, exit_code
from core.files import atomic_write_bytes, atomic_write_text, file_sha256
from core.shards import file_in
from pipeline.screen.pii import PLACEHOLDERS
from pipeline.stage.stagedir import (
    data_dir,
    prepare_output,
    require_complete,
    write_success,
)
from tokenizer.encode import MAX_PIECE_BYTES, encode_documents, load_processor
from tokenizer.sample import (
    SampleCount,
    choose_buckets,
    lang_quotas,
    main_scripts,
    parquet_files,
    script_shares,
    stream_sample,
    survey,
)

MODEL, VOCAB, INFO = "tokenizer.model", "tokenizer.vocab", "tokenizer.json"

# The bias screen's PII placeholders: as user-defined symbols a mask stays one token instead
# of eight pieces of punctuation and capitals that the model would have to learn to spell.
PII_PLACEHOLDERS = tuple(PLACEHOLDERS.values())


@dataclass
class TrainSettings:
    vocab_size: int
    model_type: str = "bpe"  # GPT-2, Llama and Mistral vocabularies are BPE; unigram is T5's
    # SentencePiece's training needs ~13x its sample in RAM (1.3 GB for 100 MB of books)
    sample_bytes: int = 256 << 20
    seed: int = 0
    # "auto": 1.0 for one script (every character gets a piece), 0.9995 when the corpus mixes
    # scripts (SentencePiece's recommendation for CJK-sized alphabets; the rarest characters
    # fall back to bytes instead of taking vocabulary from common words).
    character_coverage: str = "auto"
    lang_alpha: float = 1.0
    # Recorded in the model file by SentencePiece, so part of its sha256; the pieces and
    # scores themselves are the same for any thread count.
    num_threads: int = os.cpu_count() or 1


def sentencepiece_options(s: TrainSettings, coverage: float) -> dict:
    """The trainer options, as modern decoder vocabularies set them (Llama 2 / Mistral style)."""
    return dict(
        vocab_size=s.vocab_size,
        model_type=s.model_type,
        byte_fallback=True,  # no <unk>: any byte sequence round-trips
        split_digits=True,  # numbers as digits, as Llama and PaLM do: arithmetic sees each digit
        normalization_rule_name="identity",  # no NFKC: decode(encode(text)) == text
        remove_extra_whitespaces=False,  # keep indentation and runs of spaces
        add_dummy_prefix=False,  # no invented leading space: pieces concatenate exactly
        allow_whitespace_only_pieces=True,  # "▁▁▁▁" indentation as one piece
        character_coverage=coverage,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        user_defined_symbols=list(PII_PLACEHOLDERS),
        max_sentence_length=MAX_PIECE_BYTES,  # our pieces never exceed it: none is skipped
        input_sentence_size=0,  # the sample is already chosen; use all of it
        num_threads=s.num_threads,
    )


def _coverage(setting: str, scripts: list[str]) -> float:
    if setting != "auto":
        try:
            value = float(setting)
        except ValueError:
            raise UsageError(
                f"--character-coverage must be 'auto' or a number, got {setting!r}"
            ) from None
        if not 0 < value <= 1:
            raise UsageError(f"--character-coverage must be in (0, 1], got {value}")
        return value
    return 1.0 if len(scripts) <= 1 else 0.9995


def _sentencepiece_error(e: RuntimeError, vocab_size: int) -> UsageError:
    """SentencePiece's C++ check message as one line a user can act on."""
    text = str(e)
    m = re.search(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)", text)
    if m:
        return UsageError(
            f"--vocab-size {vocab_size} is larger than the sample supports (at most {m.group(2)}); "
            "lower it, or give a larger corpus or --sample-bytes"
        )
    detail = re.sub(r"^\S+: \S+\(\d+\) \[[^\]]*\] ?", "", text.splitlines()[0] if text else "")
    return UsageError(f"SentencePiece training failed: {detail or text}")


def _check_newline(sp) -> None:
    """A newline must be a real piece or byte and come back intact, or code and poems break."""
    probe = "line one\nline two\n\n  indented\tcell ▁ |||IBAN|||"
    ids = encode_documents(sp, [probe])[0][1:].tolist()
    newline = sp.encode("\n")
    if sp.unk_id() in ids or len(newline) != 1 or sp.unk_id() in newline or sp.decode(ids) != probe:
        raise RuntimeError("trained tokenizer does not round-trip newlines and whitespace")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(
    input_dir: str | Path,
    output_dir: str | Path,
    settings: TrainSettings,
    overwrite: bool = False,
    verbose: bool = False,
) -> dict:
    """Sample the corpus, train SentencePiece, write the tokenizer folder; returns tokenizer.json."""
    import pyarrow.parquet as pq
    import sentencepiece as spm
    from tqdm import tqdm

    if settings.model_type not in ("bpe", "unigram"):
        raise UsageError(f"--model-type must be bpe or unigram, got {settings.model_type!r}")
    if settings.sample_bytes <= 0:
        raise UsageError(f"--sample-bytes must be positive, got {settings.sample_bytes}")
    require_complete(input_dir)
    files = parquet_files(data_dir(input_dir))
    prepare_output(output_dir, overwrite, inputs=[str(input_dir)])
    started = time.perf_counter()

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    bars = dict(file=sys.stderr, disable=False, mininterval=2)  # shown in logs too: runs are long
    with tqdm(total=rows, unit="doc", desc="survey", **bars) as bar:
        surv = survey(files, settings.seed, progress=bar)
    surveyed = time.perf_counter()
    corpus_bytes = surv.lang_bytes()
    if sum(corpus_bytes.values()) == 0:
        raise UsageError(f"empty corpus: no text in {input_dir}")
    scripts = script_shares([t for _, t in surv.probe])
    coverage = _coverage(settings.character_coverage, main_scripts(scripts))
    quotas = lang_quotas(corpus_bytes, settings.sample_bytes, settings.lang_alpha)
    chosen = choose_buckets(surv, quotas, settings.sample_bytes)
    options = sentencepiece_options(settings, coverage)

    out = Path(output_dir)
    count = SampleCount()
    planned = sum(int(h[chosen[lang]].sum()) for lang, h in surv.histograms.items())
    model = io.BytesIO()  # not model_prefix: SentencePiece would store that path in the model
    with tqdm(total=int(planned), unit="B", unit_scale=True, desc="sample", **bars) as bar:
        pieces = stream_sample(files, settings.seed, chosen, count, progress=bar)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=pieces, model_writer=model, minloglevel=0 if verbose else 2, **options
            )
        except RuntimeError as e:
            if sum(count.bytes.values()) == 0:
                raise UsageError(
                    f"empty corpus: the sample of {input_dir} holds no text (--sample-bytes too small?)"
                ) from None
            raise _sentencepiece_error(e, settings.vocab_size) from None
    atomic_write_bytes(out / MODEL, model.getvalue())
    sp = load_processor(model.getvalue())
    vocab = "".join(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n" for i in range(sp.get_piece_size()))
    atomic_write_bytes(out / VOCAB, vocab.encode())
    _check_newline(sp)
    info = {
        "model": MODEL,
        "vocab": VOCAB,
        "sha256": file_sha256(out / MODEL),
        "vocab_size": sp.get_piece_size(),
        "special_ids": {"unk": sp.unk_id(), "bos": sp.bos_id(), "eos": sp.eos_id(), "pad": sp.pad_id()},
        "user_defined_symbols": list(PII_PLACEHOLDERS),
        "settings": asdict(settings),
        "sentencepiece_options": options,
        "input": str(Path(input_dir).resolve()),
        "sample": {
            "docs": sum(count.docs.values()),
            "bytes": sum(count.bytes.values()),
            "pieces": count.pieces,
            "by_lang": {
                lang
                or "none": {
                    "docs": count.docs[lang],
                    "bytes": count.bytes[lang],
                    "corpus_docs": surv.docs[lang],
                    "corpus_bytes": corpus_bytes[lang],
                }
                for lang in sorted(corpus_bytes)
            },
            "scripts": {k: round(v, 4) for k, v in scripts.items() if v >= 0.001},
        },
        "versions": {"sentencepiece": spm.__version__},
    }
    atomic_write_text(out / INFO, json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    write_success(out)
    seconds = time.perf_counter() - started
    print(
        f"tokenizer: {info['vocab_size']} pieces ({settings.model_type}) from "
        f"{info['sample']['bytes'] / 1e6:.1f} MB in {info['sample']['docs']} documents; "
        f"{seconds:.1f} s (survey {surveyed - started:.1f} s), peak memory {peak_rss_mb():.0f} MB -> {out}",
        file=sys.stderr,
    )
    return info


def read_tokenizer(folder: str | Path) -> tuple[Path, dict]:
    """(model path, tokenizer.json) of a tokenizer folder, refusing one whose model was changed
    after training: shards record the sha256 they were encoded with, so it must be the truth."""
    folder = Path(folder)
    info_path = folder / INFO
    if not info_path.is_file():
        raise UsageError(f"not a tokenizer folder (no {INFO}): {folder}")
    with open(info_path, encoding="utf-8") as f:
        info = json.load(f)
    model = file_in(folder, info.get("model", MODEL))
    if not model.is_file():
        raise UsageError(f"tokenizer model missing: {model}")
    sha = file_sha256(model)
    if sha != info.get("sha256"):
        raise UsageError(
            f"tokenizer folder does not match: {model} has sha256 {sha[:12]}…, "
            f"{info_path} records {str(info.get('sha256'))[:12]}…"
        )
    return model, info


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tokenizer.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="corpus stage folder (DIR/data/*.parquet, DIR/_SUCCESS)")
    p.add_argument("--output", required=True, help="tokenizer folder to write")
    p.add_argument("--vocab-size", type=int, required=True)
    p.add_argument("--model-type", choices=("bpe", "unigram"), default=TrainSettings.model_type)
    p.add_argument(
        "--sample-bytes",
        type=int,
        default=TrainSettings.sample_bytes,
        help="cap on the training sample, in bytes of UTF-8 text",
    )
    p.add_argument("--seed", type=int, default=TrainSettings.seed)
    p.add_argument(
        "--character-coverage",
        default=TrainSettings.character_coverage,
        help="'auto' (1.0 for one script, 0.9995 for several) or a number",
    )
    p.add_argument(
        "--lang-alpha",
        type=float,
        default=TrainSettings.lang_alpha,
        help="language sampling exponent: 1 proportional, below 1 favours small languages",
    )
    p.add_argument("--num-threads", type=int, default=TrainSettings.num_threads)
    p.add_argument("--overwrite", action="store_true", help="replace a complete output folder")
    p.add_argument("--verbose", action="store_true", help="show SentencePiece's own log")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = TrainSettings(
        vocab_size=args.vocab_size,
        model_type=args.model_type,
        sample_bytes=args.sample_bytes,
        seed=args.seed,
        character_coverage=args.character_coverage,
        lang_alpha=args.lang_alpha,
        num_threads=args.num_threads,
    )
    return exit_code(lambda: train(args.input, args.output, settings, args.overwrite, args.verbose))


if __name__ == "__main__":
    sys.exit(main())

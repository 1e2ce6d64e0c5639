"""Tokenizer stage: sampling, training, encoding, the Spark job, and the exact round trip.

Fixtures are built here (a small multilingual corpus in every script we could think of, with
code, emoji, PII placeholders and hard cases), so the suite runs without shared data; one test
repeats the round trip on the real man pages in ../shared/data when they are there.
"""

from __future__ import annotations

import collections
import json
import random
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO  # noqa: E402
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import UsageError
from core.shards import read_shard, token_dtype
from tokenizer.decode import iter_documents
from tokenizer.encode import (
    MAX_PIECE_CHARS,
    encode_documents,
    encode_partition,
    is_val,
    load_processor,
    split_pieces,
)
from tokenizer.sample import lang_quotas
from tokenizer.train import PII_PLACEHOLDERS, TrainSettings, read_tokenizer, train
from tokenizer.train import main as train_main

SENTENCES = {
    "en": [
        "The quick brown fox jumps over the lazy dog.",
        "It was the best of times, it was the worst of times.",
        "Call me Ishmael.",
        "Order 66 cost $1,234.56 on 2024-05-20 at 13:37.",
    ],
    "de": [
        "Über allen Gipfeln ist Ruh, in allen Wipfeln spürest du kaum einen Hauch.",
        "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    ],
    "ru": [
        "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "В чащах юга жил бы цитрус? Да, но фальшивый экземпляр!",
    ],
    "el": ["Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.", "Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο."],
    "zh": ["我能吞下玻璃而不伤身体。", "天下大势，分久必合，合久必分。", "學而時習之，不亦說乎？"],
    "ja": ["いろはにほへと ちりぬるを わかよたれそ つねならむ。", "日本語の文章です。カタカナもあります。"],
    "ar": ["نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق."],
    "hi": ["ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम।"],
    "code": [
        "def f(x):\n\tif x > 10:\n        return x ** 2  # square\r\n",
        "for (int i = 0; i < n; ++i) { a[i] = b[i]; }\n",
    ],
    "mixed": [
        "Emoji 😀👍🏽 and a family 👨‍👩‍👧, a lower block ▁▁ and NBSP\u00a0here, \u3000ideographic space.",
        "Contact |||EMAIL_ADDRESS||| or |||PHONE_NUMBER||| from |||IP_ADDRESS|||, card |||CREDIT_CARD|||, |||IBAN|||.",
        "Control \x00 nul, \x7f del, \u200b zero width, \ufeff BOM, e\u0301 combining.",
    ],
}
SEPARATORS = [" ", " ", "\n", "\n\n", "  \n", "\n\n\n", "\t"]
HARD_CASES = ["", "\n\n\n", "   ", "x" * (3 * MAX_PIECE_CHARS + 5), "▁", " leading and trailing spaces  "]


def make_corpus(n_docs=240, seed=0):
    """Documents as (id, text, lang) rows; a few are long enough to be cut into pieces."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_docs):
        lang = rng.choice(sorted(SENTENCES))
        n = rng.choice([3, 10, 40, 400]) if i % 9 else 1200
        text = "".join(rng.choice(SENTENCES[lang]) + rng.choice(SEPARATORS) for _ in range(n))
        rows.append({"id": f"doc-{i:05d}", "text": text, "lang": lang})
    rows += [{"id": f"hard-{i}", "text": t, "lang": "mixed"} for i, t in enumerate(HARD_CASES)]
    return rows


def write_stage(folder, rows, files=2, complete=True):
    """A stage folder as the corpus jobs write it: data/*.parquet and _SUCCESS."""
    (folder / "data").mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    for k, part in enumerate(np.array_split(np.arange(len(rows)), files)):
        pq.write_table(table.take(part), folder / "data" / f"part-{k:05d}.parquet")
    if complete:
        (folder / "_SUCCESS").write_text("")
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rows = make_corpus()
    return write_stage(tmp_path_factory.mktemp("corpus"), rows), rows


@pytest.fixture(scope="module")
def tokenizer_dir(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    train(corpus[0], out, TrainSettings(vocab_size=800, num_threads=1))
    return out


@pytest.fixture(scope="module")
def sp(tokenizer_dir):
    return load_processor(tokenizer_dir / "tokenizer.model")


# --- pieces and hashing -------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n\té▁你"), max_size=300), st.integers(4, 40))
def test_pieces_concatenate_back_and_respect_the_limit(text, max_chars):
    pieces = split_pieces(text, max_chars)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= max_chars for p in pieces) or text == ""


def test_pieces_cut_after_paragraphs_and_before_spaces():
    para = "word " * 300 + "end.\n\n"
    pieces = split_pieces(para * 10, max_chars=2048)
    assert all(p.endswith("\n\n") for p in pieces[:-1])
    pieces = split_pieces("word " * 1000, max_chars=100)
    assert all(p.startswith(" ") for p in pieces[1:])  # SentencePiece words start with their space


def test_split_is_fixed_by_id_and_seed():
    ids = [f"doc-{i}" for i in range(20000)]
    val = [i for i in ids if is_val(i, 0, 0.05)]
    assert val == [i for i in ids if is_val(i, 0, 0.05)]
    assert 0.04 < len(val) / len(ids) < 0.06
    assert val != [i for i in ids if is_val(i, 1, 0.05)]


def test_language_quotas_are_proportional_or_flattened():
    sizes = {"en": 900, "de": 90, "fi": 10}
    assert lang_quotas(sizes, 100) == pytest.approx({"en": 90, "de": 9, "fi": 1})
    flat = lang_quotas(sizes, 100, alpha=0.3)
    assert flat["fi"] == 10 and flat["de"] > 9 and sum(flat.values()) == pytest.approx(100)
    assert lang_quotas(sizes, 10_000) == {"en": 900, "de": 90, "fi": 10}


# --- training -----------------------------------------------------------------------------


def test_tokenizer_folder(tokenizer_dir, sp, corpus):
    model, info = read_tokenizer(tokenizer_dir)
    assert (tokenizer_dir / "tokenizer.vocab").is_file() and (tokenizer_dir / "_SUCCESS").is_file()
    assert info["vocab_size"] == sp.get_piece_size() == 800
    assert info["special_ids"] == {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
    assert [sp.id_to_piece(i) for i in range(4, 9)] == list(PII_PLACEHOLDERS)
    assert set(PII_PLACEHOLDERS) == {
        f"|||{k}|||" for k in ("EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "CREDIT_CARD", "IBAN")
    }
    assert info["sentencepiece_options"]["character_coverage"] == 0.9995  # many scripts
    sample = info["sample"]
    assert sample["docs"] == len(corpus[1]) and sample["bytes"] == sum(
        len(r["text"].encode()) for r in corpus[1]
    )
    assert set(sample["by_lang"]) == set(SENTENCES)


def test_newlines_and_placeholders_are_single_tokens(sp):
    newline = sp.encode("\n")
    assert len(newline) == 1 and newline[0] != sp.unk_id()
    for placeholder in PII_PLACEHOLDERS:
        assert len(sp.encode(placeholder)) == 1
    assert sp.encode("a\n\nb").count(sp.unk_id()) == 0


def test_training_is_deterministic_and_independent_of_file_layout(corpus, tokenizer_dir, tmp_path):
    again = write_stage(tmp_path / "corpus", corpus[1][::-1], files=5)
    train(again, tmp_path / "tok", TrainSettings(vocab_size=800, num_threads=1))
    a, b = read_tokenizer(tokenizer_dir)[1], read_tokenizer(tmp_path / "tok")[1]
    assert a["sample"] == b["sample"]
    assert a["sha256"] == b["sha256"]
    # another thread count changes only the recorded setting, never a piece or a score
    train(again, tmp_path / "tok2", TrainSettings(vocab_size=800, num_threads=2))
    vocab = (tokenizer_dir / "tokenizer.vocab").read_bytes()
    assert (
        (tmp_path / "tok" / "tokenizer.vocab").read_bytes()
        == (tmp_path / "tok2" / "tokenizer.vocab").read_bytes()
        == vocab
    )


def test_sample_is_capped_and_stratified(tmp_path):
    rng = random.Random(1)
    rows = [
        {
            "id": f"{lang}-{i}",
            "lang": lang,
            "text": " ".join(rng.choices(SENTENCES["en"] + SENTENCES["de"], k=6)),
        }
        for lang, n in (("en", 700), ("de", 200), ("fi", 100))
        for i in range(n)
    ]
    stage = write_stage(tmp_path / "c", rows)
    info = train(stage, tmp_path / "tok", TrainSettings(vocab_size=400, sample_bytes=60_000, num_threads=1))
    sample = info["sample"]
    assert 59_000 < sample["bytes"] <= 60_000
    corpus_bytes = sum(s["corpus_bytes"] for s in sample["by_lang"].values())
    for s in sample["by_lang"].values():  # each language at its share of the corpus
        assert s["bytes"] / sample["bytes"] == pytest.approx(s["corpus_bytes"] / corpus_bytes, abs=0.01)


def test_single_script_corpus_gets_full_coverage(tmp_path):
    rows = [{"id": str(i), "text": " ".join(SENTENCES["en"] * 20)} for i in range(50)]
    info = train(
        write_stage(tmp_path / "c", rows), tmp_path / "tok", TrainSettings(vocab_size=400, num_threads=1)
    )
    assert info["sentencepiece_options"]["character_coverage"] == 1.0
    assert list(info["sample"]["by_lang"]) == ["none"]


def one_line_error(capsys, code):
    """Exit 2, and the error is one line, the last (progress bars may come before it)."""
    assert code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "doc/s" not in line and "B/s" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(corpus, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert "not found" in one_line_error(
        capsys, train_main(["--input", str(tmp_path / "nope"), "--output", out, "--vocab-size", "300"])
    )
    incomplete = write_stage(tmp_path / "incomplete", corpus[1][:5], complete=False)
    assert "incomplete" in one_line_error(
        capsys, train_main(["--input", str(incomplete), "--output", out, "--vocab-size", "300"])
    )
    empty = write_stage(tmp_path / "empty", [{"id": "a", "text": ""}, {"id": "b", "text": None}])
    assert "empty corpus" in one_line_error(
        capsys, train_main(["--input", str(empty), "--output", out, "--vocab-size", "300"])
    )
    msg = one_line_error(
        capsys, train_main(["--input", str(corpus[0]), "--output", out, "--vocab-size", "50000"])
    )
    assert "larger than the sample supports" in msg


def test_cli_error_has_no_traceback(tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "tokenizer.train",
            "--input",
            str(tmp_path / "nope"),
            "--output",
            str(tmp_path / "o"),
            "--vocab-size",
            "300",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0 and "Traceback" not in run.stderr


def test_changed_model_is_refused(tokenizer_dir, tmp_path):
    copy = tmp_path / "tok"
    shutil.copytree(tokenizer_dir, copy)
    with open(copy / "tokenizer.model", "ab") as f:
        f.write(b"\0")
    with pytest.raises(UsageError, match="does not match"):
        read_tokenizer(copy)


# --- encoding -----------------------------------------------------------------------------


def test_documents_decode_back_byte_for_byte(sp, corpus):
    texts = [r["text"] for r in corpus[1]]
    tokens, counts = encode_documents(sp, texts, num_threads=2)
    assert counts.sum() == tokens.size
    starts = np.cumsum(counts) - counts
    assert (tokens[starts] == sp.bos_id()).all()
    for text, s, n in zip(texts, starts, counts):
        assert sp.decode(tokens[s + 1 : s + n].tolist()) == text


def test_partition_files_hold_each_split_in_order(sp, corpus, tmp_path):
    rows = corpus[1]
    table = pa.Table.from_pylist(rows).select(["id", "text"])
    stats = encode_partition(
        table.to_batches(max_chunksize=7),
        sp,
        tmp_path,
        3,
        seed=0,
        val_fraction=0.2,
        dtype=token_dtype(800),
        batch_bytes=50_000,
    )
    for split in ("train", "val"):
        want = [r["text"] for r in rows if is_val(r["id"], 0, 0.2) == (split == "val")]
        tokens = np.asarray(read_shard(tmp_path / f"{split}-000003.bin"))
        starts = list(np.flatnonzero(tokens == sp.bos_id())) + [tokens.size]
        got = [sp.decode(tokens[a + 1 : b].tolist()) for a, b in zip(starts, starts[1:])]
        assert got == want
        assert stats[split] == {
            "docs": len(want),
            "tokens": tokens.size,
            "bytes": sum(len(t.encode()) for t in want),
        }


# --- the Spark job ------------------------------------------------------------------------


def run_job(spark, *argv):
    from tokenizer import spark_encode

    return spark_encode.encode(spark, spark_encode.parse_args(list(argv)))


def assert_round_trip(shards, tokenizer, rows, seed, val_fraction):
    for split in ("train", "val"):
        want = collections.Counter(
            r["text"] for r in rows if is_val(r["id"], seed, val_fraction) == (split == "val")
        )
        assert collections.Counter(iter_documents(shards, tokenizer, split)) == want


@pytest.mark.slow
def test_job_shards_round_trip_and_do_not_depend_on_partitions(spark, corpus, tokenizer_dir, tmp_path):
    common = [
        "--input",
        str(corpus[0]),
        "--tokenizer",
        str(tokenizer_dir),
        "--val-fraction",
        "0.1",
        "--shard-tokens",
        "20000",
    ]
    m3 = run_job(spark, *common, "--output", str(tmp_path / "p3"), "--partitions", "3")
    m1 = run_job(spark, *common, "--output", str(tmp_path / "p1"), "--partitions", "1")
    assert m1["splits"] == m3["splits"]
    for split in ("train", "val"):
        for name in m3["splits"][split]["shards"]:
            assert (tmp_path / "p1" / name).read_bytes() == (tmp_path / "p3" / name).read_bytes()
    assert len(m3["splits"]["train"]["shards"]) > 1 and not (tmp_path / "p3" / "_parts").exists()
    rows = corpus[1]
    train_split = m3["splits"]["train"]
    assert train_split["docs"] + m3["splits"]["val"]["docs"] == len(rows) == m3["docs_in"]
    assert train_split["bytes"] == sum(len(r["text"].encode()) for r in rows if not is_val(r["id"], 0, 0.1))
    assert m3["dtype"] == "uint16" and m3["tokenizer"]["sha256"] == read_tokenizer(tokenizer_dir)[1]["sha256"]
    manifest = json.loads((tmp_path / "p3" / "manifest.json").read_text())
    assert manifest["corpus"] == str(corpus[0].resolve()) and (tmp_path / "p3" / "_SUCCESS").is_file()
    assert_round_trip(tmp_path / "p3", tokenizer_dir, rows, 0, 0.1)


def test_job_refuses_bad_input_before_starting_spark(corpus, tokenizer_dir, tmp_path):
    copy = tmp_path / "tok"
    shutil.copytree(tokenizer_dir, copy)
    (copy / "tokenizer.model").write_bytes(b"not the model")
    incomplete = write_stage(tmp_path / "incomplete", corpus[1][:3], complete=False)
    for tok, inp, expect in [
        (copy, corpus[0], "does not match"),
        (tokenizer_dir, incomplete, "incomplete"),
        (tmp_path / "none", corpus[0], "not a tokenizer folder"),
    ]:
        run = subprocess.run(
            [
                sys.executable,
                "jobs/encode.py",
                "--input",
                str(inp),
                "--tokenizer",
                str(tok),
                "--output",
                str(tmp_path / "o"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (
            run.returncode == 2 and expect in run.stderr and run.stderr.strip().count("\n") == 0
        ), run.stderr


@pytest.mark.slow
def test_round_trip_on_real_multilingual_man_pages(spark, shared_data, tmp_path):
    rows = []
    with open(shared_data / "multilingual" / "manpages_l10n.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            rows.append({"id": str(r["id"]), "text": r["text"], "lang": r["lang"]})
    by_lang = collections.defaultdict(list)
    for r in rows:
        by_lang[r["lang"]].append(r)
    rows = [r for lang in sorted(by_lang) for r in by_lang[lang][:12]]  # every language, ~3 MB
    stage = write_stage(tmp_path / "corpus", rows)
    train(stage, tmp_path / "tok", TrainSettings(vocab_size=2000, num_threads=2))
    run_job(
        spark,
        "--input",
        str(stage),
        "--tokenizer",
        str(tmp_path / "tok"),
        "--output",
        str(tmp_path / "shards"),
        "--val-fraction",
        "0.1",
    )
    assert_round_trip(tmp_path / "shards", tmp_path / "tok", rows, 0, 0.1)

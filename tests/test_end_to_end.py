"""`make corpus` end to end on a small mixed input (JSONL, WARC, text files): every stage keeps
its books balanced, and the shards decode back to exactly the documents the last stage kept."""
from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import load_job

from pipeline.stage import stagedir

SENTENCES = [
    "The river rose during the night and covered the lower fields with brown water.",
    "Farmers gathered at the old bridge to watch branches drift toward the sea.",
    "Nobody in the village could remember a flood like this one since the great storm.",
    "By noon the rain had stopped and the children were sent home from school early.",
    "The baker handed out warm bread to the families whose kitchens had been flooded.",
    "Two engineers walked along the bank with the mayor, pointing at the broken wall.",
    "They agreed that the repairs would take most of the summer and cost a great deal.",
    "The county promised to pay for new stone, timber and the wages of the workers.",
    "In the evening the church bells rang to call the volunteers to the town hall.",
    "A young teacher wrote a list of every house that needed help with its cellar.",
    "The ferry did not run for three days, so the mail arrived late from the city.",
    "Old maps in the library showed that the river had changed its course twice before.",
    "Scientists from the university came to measure the depth of the new channel.",
    "The fishermen said the water was warmer than usual for the time of the year.",
    "When the sun came out, the meadows shone with a thin layer of silver mud.",
    "Cows that had been moved to the hills were brought back down after a week.",
    "The local newspaper printed photographs of boats floating in the market square.",
    "A retired sailor organised the rowing boats that carried food to isolated farms.",
    "Everyone agreed that the new wall should be higher and built with deeper roots.",
    "The children painted pictures of the flood, and the school hung them in the hall.",
    "Insurance clerks arrived with thick folders and asked the same questions at each door.",
    "At the end of the month the village held a feast to thank the volunteers.",
    "The mayor gave a short speech and promised that the lessons would not be forgotten.",
    "Years later the grandchildren still told the story of the night the river rose.",
]


def _doc(rng: random.Random) -> str:
    picked = rng.sample(SENTENCES, 12)
    return " ".join(picked[:6]) + "\n\n" + " ".join(picked[6:]) + "\n"


def _warc_bytes(pages: list[tuple[str, str]]) -> bytes:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    for url, body in pages:
        html = f"<html><head><title>t</title></head><body><article><p>{body}</p></article></body></html>"
        headers = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")],
                                   protocol="HTTP/1.0")
        rec = writer.create_warc_record(url, "response", payload=io.BytesIO(html.encode()),
                                        http_headers=headers)
        writer.write_record(rec)
    return buf.getvalue()


def _mixed_input(root: Path) -> Path:
    rng = random.Random(7)
    root.mkdir(parents=True)
    docs = [_doc(rng) for _ in range(24)]
    lines = [json.dumps({"text": d, "lang": "en"}) for d in docs[:16]]
    lines.append(json.dumps({"text": docs[0]}))  # an exact copy: dup:exact
    lines.append("{not json")  # ingest:bad_json
    german = ("Der Fluss stieg in der Nacht und bedeckte die unteren Felder mit braunem Wasser. "
              "Die Bauern versammelten sich an der alten Brücke und sahen den Ästen nach. "
              "Niemand im Dorf konnte sich an ein solches Hochwasser erinnern. Gegen Mittag "
              "hörte der Regen auf, und die Kinder wurden früh aus der Schule nach Hause "
              "geschickt. Der Bäcker verteilte warmes Brot an die Familien, deren Küchen "
              "überflutet waren. Zwei Ingenieure gingen mit dem Bürgermeister am Ufer entlang "
              "und zeigten auf die zerbrochene Mauer. Sie waren sich einig, dass die Reparatur "
              "den größten Teil des Sommers dauern würde.\n")
    lines.append(json.dumps({"text": german}))  # not English: lang:de
    with gzip.open(root / "docs.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    (root / "crawl.warc.gz").write_bytes(
        _warc_bytes([(f"https://example.org/{i}", docs[16 + i]) for i in range(4)]))
    for i in range(4):
        (root / f"note{i}.txt").write_text(docs[20 + i], encoding="utf-8")
    return root


def _texts(folder: str) -> list[str]:
    return pq.read_table(folder, columns=["text"]).column("text").to_pylist()


@pytest.mark.slow
def test_make_corpus_end_to_end(spark, tmp_path):
    from core.shards import read_manifest
    from tokenizer.decode import iter_documents
    from tokenizer.train import main as train_tokenizer

    raw = _mixed_input(tmp_path / "raw")
    out = tmp_path / "corpus"
    load_job("corpus")(["--input", str(raw), "--output", str(out), "--languages", "en"])

    summary = json.loads((out / "corpus.json").read_text())
    assert summary["stages"] == ["clean", "langfilter", "dedup", "bias_screen"]
    for stage in summary["stages"]:
        stats = stagedir.read_stats(out / stage)
        assert stagedir.is_complete(out / stage)
        assert stats["docs_in"] == stats["docs_kept"] + stats["docs_rejected"], stage
    clean = stagedir.read_stats(out / "clean")
    assert clean["docs_in"] == 27 and clean["rejected_by_reason"].get("ingest:bad_json") == 1
    assert stagedir.read_stats(out / "langfilter")["rejected_by_reason"].get("lang:de") == 1
    assert stagedir.read_stats(out / "dedup")["rejected_by_reason"].get("dup:exact") == 1
    kept = _texts(stagedir.data_dir(out / "final"))
    assert len(kept) >= 20

    # A rerun skips the stages that are complete.
    load_job("corpus")(["--input", str(raw), "--output", str(out), "--languages", "en"])
    assert json.loads((out / "corpus.json").read_text())["skipped"] == summary["stages"]

    assert train_tokenizer(["--input", str(out / "final"), "--output", str(out / "tokenizer"),
                            "--vocab-size", "400"]) in (0, None)
    load_job("encode")(["--input", str(out / "final"), "--tokenizer", str(out / "tokenizer"),
                        "--output", str(out / "tokens"), "--val-fraction", "0.1"])
    manifest = read_manifest(out / "tokens")
    decoded = []
    for split in manifest["splits"]:
        decoded += list(iter_documents(out / "tokens", out / "tokenizer", split))
    assert sorted(decoded) == sorted(kept)

"""Ingest: raw files (JSONL, text, WARC/WET/ARC, HTML, Parquet) in, one record per document
out, with a reason for every bad record (``readers``). The clean stage runs it first."""

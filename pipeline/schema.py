"""The document columns, defined once for every stage.

Every stage folder holds these columns first; stages append their own (``lang``,
``dup_cluster``, ``toxicity`` …). ``reason`` exists only in rejected folders: a kept document
is one whose reason is null while a stage runs.
"""
import pyarrow as pa

ID, TEXT, SOURCE, URL, METADATA = "id", "text", "source", "url", "metadata"
REASON = "reason"

BASE_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(TEXT, pa.string()),
        pa.field(SOURCE, pa.string()),
        pa.field(URL, pa.string()),
        # Input fields we do not model (a JSONL record's other keys, WARC headers) as a JSON
        # object: a string column keeps the schema identical across heterogeneous inputs.
        pa.field(METADATA, pa.string()),
    ]
)

INGEST_SCHEMA = pa.schema(list(BASE_SCHEMA) + [pa.field(REASON, pa.string())])

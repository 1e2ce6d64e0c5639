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


def stage_batch(batch: pa.RecordBatch, added: list[tuple[pa.Field, pa.Array]],
                reasons: pa.Array | list, *, replace: dict[str, pa.Array] | None = None,
                drop: tuple[str, ...] = ()) -> pa.RecordBatch:
    """What a stage's batch function returns: the input columns (``replace`` swapped in; the
    stage's own columns, ``drop`` and ``reason`` left out, so a rerun never doubles them), then
    the stage's columns, then ``reason`` (null: kept)."""
    replace = replace or {}
    skip = {f.name for f, _ in added} | set(drop) | {REASON}
    fields, columns = [], []
    for i, field in enumerate(batch.schema):
        if field.name in skip:
            continue
        fields.append(field)
        columns.append(replace.get(field.name, batch.column(i)))
    for field, column in added:
        fields.append(field)
        columns.append(column)
    fields.append(pa.field(REASON, pa.string()))
    columns.append(reasons if isinstance(reasons, pa.Array) else pa.array(reasons, pa.string()))
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields))

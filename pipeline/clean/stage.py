"""The clean stage: raw files in (``pipeline.ingest``), the clean rules (``rules``) over every
record, a stage folder out. The first stage, so the only one that reads raw files."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from core.errors import UsageError
from pipeline.clean.rules import CleanConfig, clean_batch
from pipeline.ingest.readers import DEFAULT_MAX_RECORD_BYTES
from pipeline.stage.contract import Stage


@dataclass
class CleanSettings(CleanConfig):
    """The clean rules' settings, and the bound on what ingest loads."""

    # A record larger than this is quarantined (ingest:too_large), never loaded whole.
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES

    def __post_init__(self) -> None:
        if self.max_record_bytes <= 0:
            raise UsageError(f"--max-record-bytes must be a positive integer, got "
                             f"{self.max_record_bytes}: every record would be quarantined")


def _arguments(parser) -> None:
    parser.add_argument("--max-record-bytes", type=int, metavar="N",
                        help="quarantine records larger than this (default 16 MiB)")


STAGE = Stage(
    name="clean",
    description="Ingest raw documents and apply the clean rules.",
    settings=CleanSettings,
    batch=lambda settings: partial(clean_batch, cfg=settings),
    reads_raw=True,
    arguments=_arguments,
)

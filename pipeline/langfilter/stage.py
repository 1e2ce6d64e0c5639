"""The language filter stage: lid.176 (``lid176``) on a sample of each document (``langid``),
keeping the languages asked for."""
from __future__ import annotations

from functools import partial

from pipeline.langfilter.langid import (
    ADDED_FIELDS,
    LANG,
    LangFilterConfig,
    langid_batch,
)
from pipeline.stage.contract import Stage


def _arguments(parser) -> None:
    parser.add_argument("--languages", metavar="CODES",
                        help="lid.176 codes to keep, comma-separated (en,de,zh,no...), or 'all' "
                             "to tag without dropping (default: the config's, else en)")
    parser.add_argument("--min-score", type=float, metavar="P",
                        help="lowest lid.176 probability kept (default 0.65, FineWeb's)")
    parser.add_argument("--partition-by-lang", action="store_true", default=None,
                        help="write data/lang=xx/ folders, one per language")


STAGE = Stage(
    name="langfilter",
    description="Identify each document's language and keep the wanted ones.",
    settings=LangFilterConfig,
    added_fields=tuple(ADDED_FIELDS),
    batch=lambda settings: partial(langid_batch, cfg=settings),
    partition_by=lambda settings: [LANG] if settings.partition_by_lang else None,
    arguments=_arguments,
)

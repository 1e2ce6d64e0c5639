"""Stage folders and config: the contract every stage shares."""
from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.errors import UsageError
from pipeline.stage import stagedir
from pipeline.stage.config import load_config, read_section


@dataclass
class Cfg:
    min_words: int = 50
    ratio: float = 0.1
    english_only: bool = True
    langs: tuple[str, ...] = ("en",)
    name: str | None = None
    extra: list[str] = field(default_factory=list)


def test_config_layers(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("clean:\n  min_words: 20\n  langs: [en, de]\n")
    cfg = load_config(Cfg, y, ["ratio=0.5", "english_only=no", "name=none"], section="clean")
    assert cfg == Cfg(min_words=20, ratio=0.5, english_only=False, langs=("en", "de"), name=None)


def test_config_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown config key 'min_wrods'"):
        load_config(Cfg, None, ["min_wrods=3"])
    with pytest.raises(UsageError, match="expects int"):
        load_config(Cfg, None, ["min_words=many"])
    with pytest.raises(UsageError, match="key=value"):
        load_config(Cfg, None, ["min_words"])
    with pytest.raises(UsageError, match="config file not found"):
        load_config(Cfg, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed\n")
    with pytest.raises(UsageError, match="cannot read config"):
        load_config(Cfg, bad)


def test_config_sections(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("clean:\n  min_words: 20\ndedup: [0.8]\n")
    assert read_section(y, "clean") == {"min_words": 20}
    assert read_section(y, "bias_screen") == {}  # a stage the file does not configure
    assert read_section(y, None) == {"clean": {"min_words": 20}, "dedup": [0.8]}
    with pytest.raises(UsageError, match="config section 'dedup' in .* must be a mapping"):
        load_config(Cfg, y, section="dedup")


def test_prepare_output_refuses_complete_and_clears_partial(tmp_path):
    out = tmp_path / "stage"
    stagedir.prepare_output(out, overwrite=False, inputs=[])
    (out / "data").mkdir()
    (out / "data" / "part-0.parquet").write_text("partial")
    stagedir.prepare_output(out, overwrite=False, inputs=[])  # incomplete: cleared
    assert not (out / "data").exists()
    stats = {"stage": "x", "docs_in": 3, "docs_kept": 2, "docs_rejected": 1,
             "rejected_by_reason": {"quality:a": 1}}
    stagedir.mark_complete(out, stats)
    assert stagedir.is_complete(out)
    with pytest.raises(UsageError, match="already complete"):
        stagedir.prepare_output(out, overwrite=False, inputs=[])
    stagedir.prepare_output(out, overwrite=True, inputs=[])
    assert not stagedir.is_complete(out)


def test_lost_documents_block_success(tmp_path):
    stats = {"stage": "x", "docs_in": 3, "docs_kept": 1, "docs_rejected": 1,
             "rejected_by_reason": {"quality:a": 1}}
    with pytest.raises(RuntimeError, match="documents lost"):
        stagedir.mark_complete(tmp_path, stats)
    assert not stagedir.is_complete(tmp_path)


def test_require_complete(tmp_path):
    with pytest.raises(UsageError, match="input not found"):
        stagedir.require_complete(tmp_path / "none")
    (tmp_path / "s" / "data").mkdir(parents=True)
    with pytest.raises(UsageError, match="incomplete"):
        stagedir.require_complete(tmp_path / "s")

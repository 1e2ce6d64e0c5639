"""The one contract every corpus stage implements, and the one list of stages.

A stage is its settings dataclass, the columns it adds, and either a rule over one Arrow batch
(clean, langfilter, bias_screen: the runner maps it over the documents) or a Spark plan of its
own (dedup, which must group and join). ``Stage.run(spark, inputs, output, settings)`` hands it
to the one runner (``pipeline.spark.runner.run_stage``), which reads the input, writes kept and
rejected documents and stats.json, and marks the folder complete only when documents in = kept
+ rejected. ``jobs/<stage>.py`` and ``jobs/corpus.py`` both call that ``run``.

This module imports no Spark: a job parses and checks everything here before a JVM starts.
"""
from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.stage.config import build_config, read_section

BatchFn = Callable[[pa.RecordBatch], pa.RecordBatch]

# The corpus stages, in the order jobs/corpus.py runs them; the module that defines each.
STAGE_MODULES = {
    "clean": "pipeline.clean.stage",
    "langfilter": "pipeline.langfilter.stage",
    "dedup": "pipeline.dedup.stage",
    "bias_screen": "pipeline.screen.stage",
}
STAGES = tuple(STAGE_MODULES)


def load_stage(name: str) -> Stage:
    """The ``STAGE`` of a stage's module, by stage name."""
    return importlib.import_module(STAGE_MODULES[name]).STAGE


def _resolve(target: str) -> Callable:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Stage:
    """What the runner and the command line need to know of a stage."""

    name: str
    description: str
    settings: type  # the settings dataclass: defaults, with their sources in comments
    added_fields: tuple[pa.Field, ...] = ()  # the columns it adds to every document
    # A map stage: settings -> a rule over one Arrow batch, answering for every row.
    batch: Callable[[Any], BatchFn] | None = None
    # A stage with its own Spark plan: "module:function", called as
    # function(spark, df, settings, scratch) -> (result with ``reason``, stats of the plan).
    plan: str | None = None
    reads_raw: bool = False  # reads raw files (the first stage), not a stage folder
    # settings -> columns to partition data/ by (Hive-style folders), or None.
    partition_by: Callable[[Any], list[str] | None] | None = None
    # "module:function", function(spark, output, settings, stats): files written beside the
    # stage folder's data before it is marked complete (the bias report).
    side_output: str | None = None
    # The stage's own flags: add them to a parser; each flag's dest names a setting.
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    # How settings are read (default: the dataclass from the config section and overrides).
    loader: Callable[[str | None, dict[str, Any]], Any] | None = None
    # stats -> extra lines for the summary printed at the end of a job.
    summary: Callable[[dict], list[str]] | None = field(default=None, compare=False)

    def load_settings(self, config_file: str | None, overrides: dict[str, Any]) -> Any:
        """Defaults, then the config file's section for this stage, then ``overrides``."""
        if self.loader is not None:
            return self.loader(config_file, overrides)
        values = read_section(config_file, self.name) if config_file else {}
        values.update(overrides)
        return build_config(self.settings, values)

    def plan_fn(self) -> Callable:
        return _resolve(self.plan)

    def side_output_fn(self) -> Callable | None:
        return _resolve(self.side_output) if self.side_output else None

    def run(self, spark, inputs: list[str], output: str, settings: Any, *,
            overwrite: bool = False) -> dict:
        """Run the stage: ``inputs`` (raw paths, or one stage folder) → the stage folder
        ``output``; returns its stats."""
        from pipeline.spark.runner import run_stage

        return run_stage(spark, self, inputs, output, settings, overwrite=overwrite)

"""The bias screen stage: toxicity, PII and identity signals per document (``policy``), what
the policy drops, and the bias report written beside the folder (``spark_report``)."""
from __future__ import annotations

import json
import os
from functools import partial
from typing import Any

from pipeline.screen.policy import (
    ADDED_FIELDS,
    Screener,
    ScreenPolicy,
    load_policy,
    screen_batch,
)
from pipeline.stage.config import read_section
from pipeline.stage.contract import Stage


def _arguments(parser) -> None:
    parser.add_argument("--policy", metavar="FILE",
                        help="policy YAML (default: pipeline/screen/policies/default.yaml)")
    parser.add_argument("--url-blocklist", metavar="FILE",
                        help="file of domains, one a line: their URLs are dropped")


def load_settings(config_file: str | None, overrides: dict[str, Any]) -> ScreenPolicy:
    """The policy file (``--policy``, else the default), then the corpus config's
    bias_screen section, then the flags and ``--set``; checked by building the screener, so a
    bad blocklist or model fails before Spark starts."""
    overrides = dict(overrides)
    policy_file = overrides.pop("policy", None)
    values = read_section(config_file, "bias_screen") if config_file else {}
    values.update(overrides)
    policy = load_policy(policy_file, values)
    Screener.build(policy)
    return policy


def _summary(stats: dict) -> list[str]:
    path = os.path.join(stats["output"], "bias_report.json")
    with open(path, encoding="utf-8") as f:
        report = json.load(f)
    return ([f"warning: {line}" for line in report["warnings"]]
            + [f"bias report: {os.path.join(stats['output'], 'bias_report.html')}"])


STAGE = Stage(
    name="bias_screen",
    description="Tag toxicity, PII and identity terms; drop by the policy.",
    settings=ScreenPolicy,
    added_fields=tuple(ADDED_FIELDS),
    batch=lambda policy: partial(screen_batch, screener=Screener.build(policy)),
    side_output="pipeline.screen.spark_report:write_report",
    arguments=_arguments,
    loader=load_settings,
    summary=_summary,
)

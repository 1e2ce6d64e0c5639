"""The layout's promises (issue 12): one contract per stage, Spark in named places only, thin
jobs, a trainer that needs neither pyspark nor the pipeline."""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest

from conftest import REPO
from pipeline.stage.contract import STAGE_MODULES, STAGES, load_stage

PYSPARK_IMPORT = re.compile(r"^\s*(import|from) pyspark", re.M)


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_implements_the_one_contract(name):
    stage = load_stage(name)
    assert stage.name == name and STAGE_MODULES[name].startswith("pipeline.")
    assert dataclasses.is_dataclass(stage.settings)
    assert (stage.batch is None) != (stage.plan is None), "a map rule or a plan of its own"
    assert callable(stage.run)
    settings = stage.load_settings(None, {})
    assert isinstance(settings, stage.settings)


def test_only_spark_modules_import_pyspark():
    files = [p for d in ("core", "pipeline", "tokenizer", "trainer") for p in (REPO / d).rglob("*.py")]
    importing = sorted(str(p.relative_to(REPO)) for p in files
                       if PYSPARK_IMPORT.search(p.read_text(encoding="utf-8")))
    assert importing and all("spark" in p for p in importing), importing


def test_jobs_are_thin_and_pipeline_top_level_is_small():
    for job in (REPO / "jobs").glob("*.py"):
        assert len(job.read_text(encoding="utf-8").splitlines()) <= 40, job.name
    assert len(list((REPO / "pipeline").glob("*.py"))) <= 8


def test_trainer_and_core_import_without_pyspark_or_the_pipeline():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('pyspark', 'pipeline'):\n"
            "            raise ImportError('blocked: ' + name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "import core.errors, core.files, core.shards\n"
            "import trainer.run, trainer.export, trainer.fixtures, trainer.report\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

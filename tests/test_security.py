"""Security basics: nothing a user passes in is unpickled or evaluated, checkpoints load with
`weights_only=True`, and no setting can put a file outside the output folder.

Where settings become paths:
- trainer.run: no setting is a path; everything is written under --out with fixed names.
- jobs/corpus.py: stage names (--stages, the config's `stages:`, --set STAGE.key) become the
  folders OUT/<stage>; only the four known stage names are accepted.
- tokenizer.train, jobs/encode.py, jobs/bias_screen.py: fixed file names inside --output. The
  bias-screen policy's `url_blocklist` and `toxicity_model` are files the user chooses to *read*
  (nothing is written from them), and the model is read with allow_pickle=False.
- tools/demo_corpus.py: names from the file system become output names, one safe component.
- manifest.json / tokenizer.json name files inside their own folder: those names come with data
  that may come from somewhere else, so they must stay inside it.
"""

import ast
import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import run_command
from tools.demo_corpus import _safe_part
from trainer.config import TrainConfig
from trainer.fixtures import write_dataset
from trainer.run import main as train_main

REPO = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("pipeline", "tokenizer", "trainer", "jobs")
ESCAPES = ["../../etc", "../escaped", "/tmp/escaped", "a/../../escaped"]


# --------------------------------------------------------------------------------------------
# No pickle, eval or exec of what a user passes in: a scan of every source file

PICKLERS = ("pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve")
SAFE_YAML_LOADERS = ("SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader")


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local name → the dotted name it was imported as (`import numpy as np` → np: numpy)."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                names[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(expr: ast.AST, aliases: dict[str, str]) -> str | None:
    if isinstance(expr, ast.Name):
        return aliases.get(expr.id, expr.id)
    if isinstance(expr, ast.Attribute):
        base = _dotted(expr.value, aliases)
        return f"{base}.{expr.attr}" if base else None
    return None


def _is_const(node: ast.AST | None, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def unsafe_calls(source: str) -> list[tuple[int, str]]:
    """(line, why) for every call that can run code hidden in data."""
    tree = ast.parse(source)
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func, aliases) or ""
        module, _, attr = name.rpartition(".")
        kw = {k.arg: k.value for k in node.keywords}
        why = None
        if name in ("eval", "exec", "compile", "builtins.eval", "builtins.exec", "__import__"):
            why = f"{name}()"
        elif (module.split(".")[0] in PICKLERS and attr in ("load", "loads", "Unpickler", "open")
              or name.endswith("read_pickle")):
            why = f"{name}(): unpickling"
        elif module == "yaml" and attr in ("unsafe_load", "unsafe_load_all", "full_load", "full_load_all"):
            why = f"{name}()"
        elif module == "yaml" and attr in ("load", "load_all"):
            loader = kw.get("Loader", node.args[1] if len(node.args) > 1 else None)
            loader_name = _dotted(loader, aliases) if loader is not None else ""
            if not (loader_name or "").endswith(SAFE_YAML_LOADERS):
                why = f"{name}() without SafeLoader"
        elif name == "torch.load" and not _is_const(kw.get("weights_only"), True):
            why = "torch.load() without weights_only=True"
        elif name == "numpy.load" and "allow_pickle" in kw and not _is_const(kw["allow_pickle"], False):
            why = "numpy.load(allow_pickle=...)"
        elif module == "subprocess" and "shell" in kw and not _is_const(kw["shell"], False):
            why = f"{name}(shell=...)"
        elif name in ("os.system", "os.popen"):
            why = f"{name}(): a shell"
        if why:
            found.append((node.lineno, why))
    return found


def project_sources() -> list[Path]:
    files = sorted(p for d in SOURCE_DIRS for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts)
    assert len(files) > 20, "the scan found too few files to be scanning the project"
    return files


def test_no_source_file_unpickles_evaluates_or_loads_unsafely():
    problems = [f"{path.relative_to(REPO)}:{line}: {why}"
                for path in project_sources()
                for line, why in unsafe_calls(path.read_text(encoding="utf-8"))]
    assert not problems, "unsafe loading or evaluation:\n" + "\n".join(problems)


@pytest.mark.parametrize("snippet", [
    "eval(text)",
    "exec(open(path).read())",
    "import pickle\npickle.loads(data)",
    "import pickle as pk\npk.load(f)",
    "from pickle import loads\nloads(b)",
    "import cloudpickle\ncloudpickle.loads(b)",
    "import marshal\nmarshal.loads(b)",
    "import pandas as pd\npd.read_pickle(p)",
    "import yaml\nyaml.load(f)",
    "import yaml\nyaml.load(f, Loader=yaml.Loader)",
    "import yaml\nyaml.unsafe_load(f)",
    "import torch\ntorch.load(p)",
    "import torch\ntorch.load(p, weights_only=False)",
    "from torch import load\nload(p, map_location='cpu')",
    "import numpy as np\nnp.load(p, allow_pickle=True)",
    "import subprocess\nsubprocess.run(cmd, shell=True)",
    "import os\nos.system(cmd)",
])
def test_the_scan_catches_each_unsafe_call(snippet):
    assert unsafe_calls(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "model.eval()",
    "import re\nre.compile(p)",
    "import ast\nast.literal_eval(s)",
    "import yaml\nyaml.safe_load(f)",
    "import yaml\nyaml.load(f, Loader=yaml.SafeLoader)",
    "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
    "import numpy as np\nnp.load(p)\nnp.load(p, allow_pickle=False)",
    "import subprocess\nsubprocess.run(['git', 'status'])",
    "import importlib\nspec.loader.exec_module(m)",
])
def test_the_scan_passes_safe_calls(snippet):
    assert not unsafe_calls(snippet), snippet


# --------------------------------------------------------------------------------------------
# A checkpoint is data: one that holds a pickled object is refused, and the object never runs

class Payload:
    """Unpickled, it creates a folder: the proof that unpickling ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


TINY = ["preset=tiny", "seq_len=32", "batch_size=2", "n_layer=1", "max_steps=4", "ckpt_every=2",
        "eval_every=0", "log_every=1", "num_samples=0", "tensorboard=false", "threads=1", "device=cpu"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    rng = np.random.default_rng(0)
    return write_dataset(tmp_path_factory.mktemp("shards") / "data",
                         {"train": rng.integers(0, 128, 5000), "val": rng.integers(0, 128, 500)}, vocab_size=128)


def train(shards, out, *extra) -> int:
    try:
        run_command(train_main, ["--data", str(shards), "--out", str(out), *TINY, *extra])
    except SystemExit as e:
        return e.code
    return 0


def plant(path: Path, marker: Path, step: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": step, "model": {}, "optimizer": {}, "rng": [], "config": {}, "hook": Payload(marker)}, path)


def test_the_payload_is_live_when_unpickled_unsafely(tmp_path):
    """The control: without weights_only the same file runs its code, so the tests below mean
    something."""
    marker = tmp_path / "pwned"
    plant(tmp_path / "evil.pt", marker, 1)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.is_dir()


def test_a_checkpoint_holding_a_pickled_object_is_refused_on_resume(shards, tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    plant(out / "ckpt" / "step_00000002.pt", marker, 2)
    assert train(shards, out, "--resume") == 2
    err = capsys.readouterr().err
    assert "cannot load" in err and "error: --resume: no checkpoint" in err
    assert not marker.exists()


def test_resume_skips_a_planted_checkpoint_and_continues_from_the_last_real_one(shards, tmp_path, capsys):
    out, marker = tmp_path / "run", tmp_path / "pwned"
    assert train(shards, out, "stop_at=2") == 0
    plant(out / "ckpt" / "step_00000003.pt", marker, 3)  # newer than the real one
    assert train(shards, out, "--resume") == 0
    captured = capsys.readouterr()
    assert "cannot load" in captured.err and "resuming after step 2" in captured.out
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# Settings cannot write outside the output folder

# every str setting of the trainer and what it is; a new one that names a file must check that
# the file stays inside --out, and be added here with a test that it does (compile_mode and
# attention are checked against fixed choices)
TRAINER_STR_SETTINGS = {"preset", "arch", "schedule", "sample_prompt", "device", "dtype", "compile_mode", "attention"}


def test_no_trainer_setting_is_a_path():
    strs = {f.name for f in dataclasses.fields(TrainConfig) if "str" in str(f.type)}
    assert strs == TRAINER_STR_SETTINGS


@pytest.mark.parametrize("setting", ["out=../../etc", "ckpt_dir=../../etc", "tensorboard_dir=/tmp/escaped",
                                     "metrics=../../escaped.jsonl"])
def test_a_path_setting_for_the_trainer_is_refused(shards, tmp_path, setting, capsys):
    assert train(shards, tmp_path / "run", setting) == 2
    assert "unknown setting" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_trainer_writes_only_under_out(shards, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = set(tmp_path.rglob("*"))
    assert train(shards, work / "run") == 0
    outside = {p for p in set(tmp_path.rglob("*")) - before if work / "run" not in (p, *p.parents)}
    assert not outside


def corpus_job(tmp_path, capsys, *args) -> tuple[int, str]:
    from conftest import load_job

    argv = ["--input", str(tmp_path / "raw.jsonl"), "--output", str(tmp_path / "deep" / "out"), *args]
    with pytest.raises(SystemExit) as done:
        run_command(load_job("corpus"), argv)
    return done.value.code, capsys.readouterr().err


@pytest.mark.parametrize("escape", ESCAPES)
def test_corpus_stage_names_cannot_leave_the_output_folder(tmp_path, capsys, escape):
    (tmp_path / "raw.jsonl").write_text('{"text": "hello"}\n')
    config = tmp_path / "c.yaml"
    config.write_text(f"stages: [clean, '{escape}']\n")
    for args in (["--stages", f"clean,{escape}"], ["--config", str(config)], ["--set", f"{escape}.threshold=1"]):
        before = set(tmp_path.rglob("*"))
        code, err = corpus_job(tmp_path, capsys, *args)
        assert code == 2, (args, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert not set(tmp_path.rglob("*")) - before, "something was written"
    assert not Path("/tmp/escaped").exists()


@pytest.mark.parametrize("name", ["..", ".", "../../etc/passwd", "/etc/passwd", "a/../../b", "\x00", "",
                                  "..\\..\\x", "C:\\x"])
def test_demo_corpus_output_names_are_one_safe_component(name):
    part = _safe_part(name)
    assert "/" not in part and "\\" not in part and "\x00" not in part
    assert part not in ("", ".", "..") and not part.startswith((".", "_"))


# --------------------------------------------------------------------------------------------
# File names inside a shard or tokenizer folder's own metadata stay inside that folder

OUTSIDE = "../elsewhere/train_000000.bin"


def shards_naming_an_outside_shard(tmp_path) -> tuple[Path, dict]:
    """A shard folder whose manifest names a valid shard in the folder beside it."""
    import json

    rng = np.random.default_rng(1)
    folder = write_dataset(tmp_path / "shards", {"train": rng.integers(0, 100, 3000)}, vocab_size=128)
    write_dataset(tmp_path / "elsewhere", {"train": rng.integers(0, 100, 3000)}, vocab_size=128)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["splits"]["train"]["shards"] = [OUTSIDE]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, manifest


def test_trainer_refuses_a_manifest_shard_outside_its_folder(tmp_path):
    from core.errors import UsageError
    from trainer.data import ShardDataset
    folder, _ = shards_naming_an_outside_shard(tmp_path)
    with pytest.raises(UsageError):
        ShardDataset(folder)


def test_tokenizer_decode_refuses_a_manifest_shard_outside_its_folder(tmp_path):
    from core.errors import UsageError
    from tokenizer.decode import check_shards
    folder, manifest = shards_naming_an_outside_shard(tmp_path)
    with pytest.raises(UsageError):
        check_shards(folder, manifest)


@pytest.mark.parametrize("reader", ["check_tokenizer", "read_tokenizer"])
def test_tokenizer_refuses_a_model_name_outside_its_folder(tmp_path, reader):
    import json

    from core.errors import UsageError
    from core.files import file_sha256
    from core.shards import check_tokenizer
    from tokenizer.train import read_tokenizer
    secret = tmp_path / "secret.model"
    secret.write_bytes(b"not yours")
    folder = tmp_path / "tok"
    folder.mkdir()
    entry = {"file": "../secret.model", "sha256": file_sha256(secret)}
    with pytest.raises(UsageError):
        if reader == "check_tokenizer":
            check_tokenizer({"tokenizer": entry}, folder)
        else:
            (folder / "tokenizer.json").write_text(json.dumps({"model": entry["file"], "sha256": entry["sha256"]}))
            read_tokenizer(folder)

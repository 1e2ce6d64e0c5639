"""Checkpoints that resume exactly, and the final weights.

`OUT/ckpt/step_00000100.pt` holds the model, the optimizer, the step (which is also the data
position: trainer/data.py draws a step's windows from (seed, step)), every process's RNG state
and the settings. Each is written under a temporary name, flushed to disk and renamed, so a kill
at any moment leaves either the previous checkpoint or the new one, never half of one. Loading uses
`weights_only=True`: a checkpoint is data, and unpickling arbitrary objects would run code.

Beside each is `step_00000100.pt.sha256` (sha256sum's format: `sha256sum -c` in ckpt/ checks it),
put in place before the checkpoint's rename: a checkpoint file never exists without its checksum.
torch does not check the zip's CRCs, so without it a file with bytes flipped on disk loads and
trains into NaN. A checkpoint that does not match its checksum is never loaded; one without a
checksum file was written before checksums were recorded and loads with a warning.

`OUT/model.safetensors` + `OUT/config.json` are the trained model on its own, for trainer.export
and anyone else.
"""

import json
import os
import re
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core.errors import UsageError
from core.files import atomic_write_text, file_sha256
from trainer.model import GPT, GPTConfig

CKPT_DIR = "ckpt"
_NAME = re.compile(r"^step_(\d+)\.pt$")
_CHECKSUM = re.compile(r"^step_\d+\.pt\.sha256$")


def list_checkpoints(out) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint, oldest first; temporary files are not listed."""
    folder = Path(out) / CKPT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), folder / m.group(0)) for m in map(_NAME.match, os.listdir(folder)) if m]
    return sorted(found)


def _fsync_dir(folder: Path):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checksum_path(path) -> Path:
    path = Path(path)
    return path.with_name(f"{path.name}.sha256")


def save_checkpoint(out, step: int, state: dict, keep: int) -> Path:
    folder = Path(out) / CKPT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    tmp = folder / f".step_{step:08d}.pt.tmp"
    for stale in folder.glob(".step_*.tmp"):  # left by a job killed while saving
        stale.unlink(missing_ok=True)
    for name in filter(_CHECKSUM.match, os.listdir(folder)):  # killed between the two renames
        if not (folder / name.removesuffix(".sha256")).exists():
            (folder / name).unlink(missing_ok=True)
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    # the checksum first, so the checkpoint's name never appears without it
    atomic_write_text(checksum_path(path), f"{file_sha256(tmp)}  {path.name}\n")
    os.replace(tmp, path)
    _fsync_dir(folder)
    for _, old in list_checkpoints(out)[:-keep]:
        old.unlink(missing_ok=True)
        checksum_path(old).unlink(missing_ok=True)
    return path


def checksum_problem(path) -> str | None:
    """Why the checkpoint at path must not be loaded (its bytes differ from its recorded sha256,
    or cannot be read), or None. A missing checksum file is not a problem here: see the module's
    docstring."""
    checksum = checksum_path(path)
    try:
        recorded = checksum.read_text(encoding="ascii").split()[0]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, IndexError) as e:
        return f"its checksum file {checksum.name} is unreadable ({type(e).__name__})"
    try:
        actual = file_sha256(path)
    except OSError as e:
        return f"it cannot be read ({e})"
    if actual != recorded:
        return (f"its sha256 {actual[:12]}... differs from the one recorded at save, {recorded[:12]}... "
                f"(damaged on disk)")
    return None


def resumable_checkpoint(out) -> Path | None:
    """The newest checkpoint that is not damaged (its bytes match its checksum, or it predates
    checksums): the one --resume loads, and the only one the trainer's advice may name."""
    for _, path in reversed(list_checkpoints(out)):
        if checksum_problem(path) is None:
            return path
    return None


def load_latest_checkpoint(out) -> dict | None:
    """The newest checkpoint that verifies and loads; a damaged or unreadable one (bit rot, a
    disk error, a file copied in half) is reported in one line and the one before it is tried."""
    for step, path in reversed(list_checkpoints(out)):
        problem = checksum_problem(path)
        if problem is not None:
            print(f"warning: skipping {path}: {problem}; trying the one before", file=sys.stderr)
            continue
        if not checksum_path(path).exists():
            print(f"warning: {path} has no {checksum_path(path).name} (saved before checkpoints carried "
                  f"a sha256); loading it unverified", file=sys.stderr)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # any failure to read is a reason to fall back, not to stop
            print(f"warning: cannot load {path} ({type(e).__name__}: {e}); trying the one before",
                  file=sys.stderr)
            continue
        state["path"] = str(path)
        return state
    return None


def rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device):
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def weights_for_file(model_state: dict, config: GPTConfig) -> dict:
    """safetensors refuses two names for one tensor, so a tied output layer is stored once,
    under the embedding's name."""
    tensors = {k: v.contiguous() for k, v in model_state.items()}
    if config.tie_embeddings:
        tensors.pop("lm_head.weight", None)
    return tensors


def save_model(out, model_state: dict, config: GPTConfig):
    out = Path(out)
    tmp = out / ".model.safetensors.tmp"
    save_file(weights_for_file(model_state, config), str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / "model.safetensors")


def write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def load_model(out) -> GPT:
    """The model a finished run wrote to OUT (model.safetensors + config.json), on the CPU."""
    out = Path(out)
    try:
        saved = json.loads((out / "config.json").read_text())
        config = GPTConfig(**saved["model"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{out} has no readable config.json from trainer.run ({e})") from None
    if not (out / "model.safetensors").is_file():
        raise UsageError(f"{out} has no model.safetensors (the run has not finished)")
    model = GPT(config)
    tensors = load_file(str(out / "model.safetensors"))
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or set(missing) - ({"lm_head.weight"} if config.tie_embeddings else set()):
        raise UsageError(f"{out}/model.safetensors does not fit config.json "
                           f"(missing {missing}, unexpected {unexpected})")
    return model.eval()

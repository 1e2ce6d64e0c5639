"""Training settings: one dataclass with every key SPEC "Trainer settings" names and its default.

A config file (flat YAML `key: value` lines, or JSON) sets them, then `key=value` arguments on the
command line override the file. The file parser is our own few lines rather than PyYAML because
the trainer has to run on a GPU machine that has only torch, numpy, sentencepiece and safetensors.
"""

import dataclasses
import json
import types
import typing
from dataclasses import dataclass

from core.errors import UsageError
from trainer.model import PRESETS, GPTConfig

# peak learning rates by size: narrow models take higher rates (GPT-3's table 2.1 lowers the rate
# as the width grows; nanoGPT trains the 124M shape at 6e-4)
PRESET_LR = {"tiny": 3e-3, "gpt2-124m": 6e-4, "350m": 3e-4, "1b": 2e-4}

# the model's shape, overriding the preset's when set
MODEL_KEYS = ("n_layer", "n_head", "n_kv_head", "n_embd", "mlp_hidden", "arch", "qk_norm",
              "tie_embeddings", "rope_theta", "dropout")


@dataclass
class TrainConfig:
    # model
    preset: str = "tiny"
    n_layer: int | None = None
    n_head: int | None = None
    n_kv_head: int | None = None
    n_embd: int | None = None
    mlp_hidden: int | None = None
    arch: str | None = None  # "llama" (default) or "gpt2"
    qk_norm: bool | None = None
    tie_embeddings: bool | None = None
    rope_theta: float | None = None
    dropout: float | None = None
    # batch: batch_size sequences of seq_len tokens per process, grad_accum times per step
    seq_len: int | None = None  # None: the preset's context
    batch_size: int = 16
    grad_accum: int = 1
    global_batch_tokens: int = 0  # > 0: tokens per optimizer step over all processes; sets grad_accum
    # optimizer and schedule (AdamW betas and decay as GPT-3 and nanoGPT use them)
    lr: float | None = None  # None: the preset's (PRESET_LR)
    min_lr_ratio: float = 0.1  # the schedule ends at lr * min_lr_ratio (Chinchilla: 10x down)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0 turns clipping off
    warmup_steps: int = 100
    schedule: str = "cosine"  # or "wsd": warmup, stable, then a linear decay (MiniCPM, DeepSeek)
    decay_frac: float = 0.2  # wsd: the last fraction of max_steps spent decaying
    max_steps: int = 1000
    stop_at: int | None = None  # end after this step with a checkpoint; the schedule stays max_steps'
    seed: int = 1337
    # evaluation, checkpoints, logging
    eval_every: int = 100  # 0: only at the end
    eval_iters: int = 20  # validation batches per evaluation
    ckpt_every: int = 500  # 0: only at the end
    keep_ckpts: int = 3
    log_every: int = 10  # progress line and GPU sync every this many steps; metrics.jsonl has every step
    tensorboard: bool = True  # only when the tensorboard package is importable
    # samples.txt, written at the end with the manifest's tokenizer
    num_samples: int = 3
    sample_tokens: int = 128
    sample_prompt: str = ""
    temperature: float = 0.8
    top_k: int = 50
    # hardware
    device: str = "auto"  # auto, cpu, cuda
    compile: bool | None = None  # None: torch.compile on CUDA only
    # torch.compile mode: default, max-autotune, max-autotune-no-cudagraphs (searches matmul
    # kernels: minutes of compiling for a few percent), reduce-overhead (CUDA graphs)
    compile_mode: str = "default"
    # scaled_dot_product_attention's kernel on CUDA: auto (torch's choice), flash, cudnn,
    # efficient, math. Ignored on CPU.
    attention: str = "auto"
    dtype: str = "auto"  # auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16
    threads: int = 0  # CPU threads per process; 0: torch's default. Small models on busy cores run faster on 1
    fsdp: bool = False  # set by --fsdp: shard weights, gradients and optimizer state (FSDP2)

    def model_config(self, vocab_size: int) -> GPTConfig:
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
        shape = dict(PRESETS[self.preset])
        shape.update({k: getattr(self, k) for k in MODEL_KEYS if getattr(self, k) is not None})
        if self.seq_len is not None:
            shape["block_size"] = self.seq_len
        try:
            return GPTConfig(vocab_size=vocab_size, **shape)
        except ValueError as e:
            raise UsageError(str(e)) from None

    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else PRESET_LR.get(self.preset, 6e-4)

    def check(self):
        """Values that are wrong whatever the data: caught before anything is loaded."""
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
        choices = {"schedule": ("cosine", "wsd"), "device": ("auto", "cpu", "cuda"),
                   "dtype": ("auto", "float32", "bfloat16"),
                   "compile_mode": ("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead"),
                   "attention": ("auto", "flash", "cudnn", "efficient", "math")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise UsageError(f"{key} must be one of {', '.join(allowed)}, not {getattr(self, key)!r}")
        for key in ("max_steps", "batch_size", "grad_accum", "eval_iters", "keep_ckpts", "log_every"):
            if getattr(self, key) < 1:
                raise UsageError(f"{key} must be at least 1, not {getattr(self, key)}")
        for key in ("eval_every", "ckpt_every", "global_batch_tokens", "threads", "num_samples", "grad_clip",
                    "weight_decay", "warmup_steps"):
            if getattr(self, key) < 0:
                raise UsageError(f"{key} must not be negative, not {getattr(self, key)}")
        if self.stop_at is not None and not 0 < self.stop_at <= self.max_steps:
            raise UsageError(f"stop_at must be between 1 and max_steps ({self.max_steps}), not {self.stop_at}")


def _parse_value(key: str, text: str, annotation) -> object:
    kinds = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if type(None) in kinds and text.lower() in ("", "none", "null", "auto", "~"):
        return None
    kind = next(k for k in kinds if k is not type(None))
    if kind is bool:
        if text.lower() in ("true", "yes", "on", "1"):
            return True
        if text.lower() in ("false", "no", "off", "0"):
            return False
        raise UsageError(f"{key} must be true or false, not {text!r}")
    try:
        if kind is int and not text.lstrip("-").isdigit() and float(text).is_integer():
            return int(float(text))  # 1e6 steps
        return kind(text)
    except ValueError:
        raise UsageError(f"{key} must be {kind.__name__}, not {text!r}") from None


def _read_file(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UsageError(f"cannot read config {path}: {e.strerror}") from None
    if path.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"config {path} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise UsageError(f"config {path} must hold one JSON object")
        return {k: json.dumps(v) if isinstance(v, bool) else ("" if v is None else str(v)) for k, v in data.items()}
    pairs = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
        if not line or line == "---":
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip() or " " in key.strip():
            raise UsageError(f"config {path} line {n}: expected 'key: value', got {line!r}")
        pairs[key.strip()] = value
    return pairs


def load_config(path: str | None, overrides: list[str], base: TrainConfig | None = None) -> TrainConfig:
    """base (a resumed run's saved settings), then the file, then the key=value overrides."""
    types_ = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    pairs = _read_file(path) if path else {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"expected key=value, got {item!r}")
        pairs[key.strip()] = value
    values = {}
    for key, value in pairs.items():
        if key not in types_:
            raise UsageError(f"unknown setting {key!r} (known: {', '.join(types_)})")
        values[key] = _parse_value(key, value, types_[key])
    cfg = dataclasses.replace(base or TrainConfig(), **values)
    cfg.check()
    return cfg


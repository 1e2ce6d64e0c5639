"""Pre-train the model on token shards.

    python -m trainer.run --data DIR --out DIR [--config FILE] [key=value ...] [--resume] [--fsdp]
    torchrun --nproc_per_node 8 -m trainer.run ...        (data parallel, one process per GPU)

Reads top to bottom like nanoGPT's train.py: settings, devices, data, model, optimizer and
schedule, then the loop. What the hardware needs (DDP, FSDP, compile) is in trainer/parallel.py,
checkpoints in trainer/checkpoint.py, the numbers a run reports in trainer/metrics.py.
"""

import dataclasses
import math
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn.utils import clip_grad_norm_

from core.errors import ArgumentParser, TrainingStopped, UsageError, run_command
from trainer import parallel
from trainer.checkpoint import (
    list_checkpoints,
    load_latest_checkpoint,
    resumable_checkpoint,
    rng_state,
    save_checkpoint,
    save_model,
    set_rng_state,
    write_json,
)
from trainer.config import TrainConfig, load_config
from trainer.data import ShardDataset, WindowSampler, bits_per_byte, val_batches
from trainer.metrics import MetricsLog, peak_flops, progress_line
from trainer.model import GPT


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate for 0-based step: linear warmup, then cosine (or WSD: flat, then a linear
    decay over the last decay_frac of the run) down to lr * min_lr_ratio at max_steps."""
    peak, floor = cfg.peak_lr(), cfg.peak_lr() * cfg.min_lr_ratio
    warmup = min(cfg.warmup_steps, cfg.max_steps - 1)
    if step < warmup:
        return peak * (step + 1) / warmup
    if cfg.schedule == "wsd":
        decay_start = max(warmup, round(cfg.max_steps * (1 - cfg.decay_frac)))
        if step < decay_start:
            return peak
        progress = (step - decay_start) / max(1, cfg.max_steps - 1 - decay_start)
        return peak - (peak - floor) * min(progress, 1.0)
    progress = (step - warmup) / max(1, cfg.max_steps - 1 - warmup)
    return floor + 0.5 * (peak - floor) * (1 + math.cos(math.pi * min(progress, 1.0)))


def build_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    # decay the matrices (matmul weights and embeddings), never gains and biases: shrinking a
    # norm's gain toward 0 only fights the normalisation
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    kwargs = dict(lr=cfg.peak_lr(), betas=(cfg.beta1, cfg.beta2), eps=1e-8)
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)  # one kernel for every tensor
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, **kwargs)


@torch.no_grad()
def evaluate(wrapped, model, data, seq_len, cfg, runtime, autocast) -> tuple[float | None, float | None]:
    model.eval()
    total = torch.zeros(2, device=runtime.device)  # summed batch losses, batches
    for x, y in val_batches(data.val, seq_len, cfg.batch_size, cfg.eval_iters, runtime.rank, runtime.world_size):
        with autocast:
            _, loss = wrapped(x.to(runtime.device), y.to(runtime.device))
        total += torch.stack([loss.float(), torch.ones((), device=runtime.device)])
    model.train()
    loss_sum, batches = parallel.all_reduce_sum(total, runtime).tolist()
    if batches == 0:
        return None, None
    val_loss = loss_sum / batches
    return val_loss, bits_per_byte(val_loss, data.val.bytes_per_token)


def write_samples(model, data, cfg, out: Path, device: torch.device):
    """A few continuations of sample_prompt, decoded with the manifest's tokenizer, so a person
    can read what the model learned."""
    path = out / "samples.txt"
    if cfg.num_samples == 0:
        return
    if data.tokenizer_path is None:
        path.write_text("no samples: the tokenizer named by the manifest is not on this machine, "
                        "so tokens cannot be decoded\n")
        return
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=str(data.tokenizer_path))
    bos = sp.bos_id() if sp.bos_id() >= 0 else data.bos_id
    prompt = ([bos] if bos is not None and bos >= 0 else []) + sp.encode(cfg.sample_prompt)
    if not prompt:
        path.write_text("no samples: the tokenizer has no BOS token and sample_prompt is empty\n")
        return
    idx = torch.tensor([prompt] * cfg.num_samples, device=device)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    out_ids = model.generate(idx, cfg.sample_tokens, temperature=cfg.temperature, top_k=cfg.top_k,
                             vocab_limit=data.vocab_size, generator=gen)
    texts = [sp.decode(row[len(prompt):].tolist()) for row in out_ids]
    body = "".join(f"=== sample {i + 1} (prompt: {cfg.sample_prompt!r}) ===\n{t}\n\n" for i, t in enumerate(texts))
    path.write_text(body)


def train(data_dir, out_dir, cfg: TrainConfig, ckpt: dict | None = None) -> list[dict]:
    """Train; ckpt is a loaded checkpoint to continue from. Returns the metrics rows it logged."""
    out = Path(out_dir)
    runtime = parallel.init_runtime(cfg.device)
    try:
        return _train(data_dir, out, cfg, ckpt, runtime)
    finally:
        parallel.shutdown(runtime)


def _train(data_dir, out: Path, cfg: TrainConfig, ckpt: dict | None, runtime) -> list[dict]:
    device = runtime.device
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    data = ShardDataset(data_dir)
    # a vocabulary padded to a multiple of 64 runs faster matmuls; the extra rows are never sampled
    model_config = cfg.model_config(vocab_size=64 * math.ceil(data.vocab_size / 64))
    seq_len = model_config.block_size
    if ckpt is not None and ckpt["model_config"] != dataclasses.asdict(model_config):
        raise UsageError(f"the model settings differ from the checkpoint's {ckpt['path']}; "
                           f"a resumed run keeps its shape")

    grad_accum = cfg.grad_accum
    if cfg.global_batch_tokens:
        micro_tokens = cfg.batch_size * seq_len * runtime.world_size
        if cfg.global_batch_tokens % micro_tokens:
            raise UsageError(
                f"global_batch_tokens={cfg.global_batch_tokens} does not divide into micro-batches of "
                f"batch_size*seq_len*processes = {cfg.batch_size}*{seq_len}*{runtime.world_size} = {micro_tokens}")
        grad_accum = cfg.global_batch_tokens // micro_tokens
    tokens_per_step = cfg.batch_size * seq_len * grad_accum * runtime.world_size

    use_bf16 = cfg.dtype == "bfloat16" or (
        cfg.dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())
    use_compile = cfg.compile if cfg.compile is not None else device.type == "cuda"
    fsdp = cfg.fsdp and runtime.world_size > 1
    if cfg.fsdp and not fsdp and runtime.is_main:
        print("note: --fsdp in a single process has nothing to shard; training unsharded", flush=True)
    # bf16 matmuls with float32 weights and optimizer; FSDP casts its gathered weights instead
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_bf16 and not fsdp else nullcontext()

    torch.manual_seed(cfg.seed)  # the same initial weights in every process
    model = GPT(model_config).to(device)
    parallel.select_attention(runtime, cfg.attention)
    wrapped = parallel.parallelize(model, runtime, fsdp, use_compile,
                                   param_dtype=torch.bfloat16 if use_bf16 else None,
                                   compile_mode=cfg.compile_mode)
    optimizer = build_optimizer(model, cfg)
    sampler = WindowSampler(data.train, seq_len, cfg.seed, cfg.batch_size, grad_accum,
                            runtime.rank, runtime.world_size)
    start = 0
    if ckpt is not None:
        parallel.load_full_state(model, optimizer, ckpt["model"], ckpt["optimizer"])
        start = ckpt["step"]
        if ckpt["data"] != sampler.state_dict():
            print("warning: the batch settings changed since the checkpoint; the data stream differs "
                  "from an uninterrupted run", flush=True)
        if len(ckpt["rng"]) == runtime.world_size:
            set_rng_state(ckpt["rng"][runtime.rank], device)
        else:
            torch.manual_seed(cfg.seed + runtime.rank + start)
    else:
        torch.manual_seed(cfg.seed + runtime.rank)  # dropout masks differ between processes

    if runtime.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {
            "train": dataclasses.asdict(cfg), "model": dataclasses.asdict(model_config),
            "data": {"folder": str(Path(data_dir).resolve()), "vocab_size": data.vocab_size,
                     "tokenizer": str(data.tokenizer_path.resolve()) if data.tokenizer_path else None,
                     "tokenizer_sha256": data.tokenizer_sha256,  # trainer.export ships only this file
                     "train_tokens": data.train.tokens, "val_tokens": data.val.tokens if data.val else 0},
            "processes": runtime.world_size, "grad_accum": grad_accum, "tokens_per_step": tokens_per_step,
            "params": model.num_params(non_embedding=False), "flops_per_token": model.flops_per_token(seq_len),
        })
        print(f"model: {model.num_params(non_embedding=False) / 1e6:.2f}M parameters, "
              f"{model_config.n_layer} layers, {model_config.n_embd} wide, {model_config.arch}; "
              f"{tokens_per_step} tokens per step ({runtime.world_size} x {grad_accum} x "
              f"{cfg.batch_size} x {seq_len}); {device}, {'bf16' if use_bf16 else 'fp32'}"
              f"{', compiled' if use_compile else ''}"
              f"{f' ({cfg.compile_mode})' if use_compile and cfg.compile_mode != 'default' else ''}"
              f"{f', {cfg.attention} attention' if cfg.attention != 'auto' and device.type == 'cuda' else ''}"
              + (f"; resuming after step {start}" if start else ""),
              flush=True)
    if data.val is None and runtime.is_main:
        print("note: the manifest lists no val split; no evaluation", flush=True)

    log = MetricsLog(out, start, runtime.is_main, cfg.tensorboard)
    peak = peak_flops(device)
    flops_per_token = model.flops_per_token(seq_len)
    end = cfg.stop_at or cfg.max_steps
    rows, pending = [], []
    last_good = ckpt["path"] if ckpt is not None else None
    window_start = time.perf_counter()
    for step in range(start + 1, end + 1):  # step counts optimizer updates from 1
        lr = lr_at(step - 1, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for micro in range(grad_accum):
            x, y = sampler.batch(step, micro)
            if device.type == "cuda":
                x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
            parallel.set_grad_sync(wrapped, model, micro == grad_accum - 1)
            with autocast:
                _, loss = wrapped(x, y)
            (loss / grad_accum).backward()
            loss_sum += loss.detach()
        grad_norm = clip_grad_norm_(model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0 else None
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        pending.append((step, lr, loss_sum / grad_accum, grad_norm))

        do_eval = data.val is not None and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps)
        do_ckpt = (cfg.ckpt_every and step % cfg.ckpt_every == 0) or step == end
        if not (do_eval or do_ckpt or step % cfg.log_every == 0):
            continue
        window = window_rows(pending, time.perf_counter() - window_start, tokens_per_step, flops_per_token,
                             peak, runtime)
        pending = []
        stop_if_diverged(window, log, out, last_good)
        if do_eval:
            window[-1]["val_loss"], window[-1]["val_bpb"] = evaluate(
                wrapped, model, data, seq_len, cfg, runtime, autocast)
        for row in window:
            log.write(row)
        rows += window
        if runtime.is_main:
            print(progress_line(rows[-1], cfg.max_steps), flush=True)
        if do_ckpt:
            if not weights_finite(model, runtime):
                log.close()
                raise TrainingStopped(f"the weights are not finite after step {step}; {_stopped(out, last_good)}")
            last_good = checkpoint(out, step, model, optimizer, sampler, cfg, model_config, runtime)
        window_start = time.perf_counter()  # evaluation and saving are not training throughput
    log.close()

    if start < end or not (out / "model.safetensors").exists():
        full = parallel.full_model_state(model)
        if runtime.is_main:
            save_model(out, full, model_config)
            if end == cfg.max_steps:
                sample_model = GPT(model_config)
                sample_model.load_state_dict(full)
                write_samples(sample_model.to(device).eval(), data, cfg, out, device)
                print(f"done: {out / 'model.safetensors'}" + (f", samples in {out / 'samples.txt'}"
                                                               if cfg.num_samples else ""), flush=True)
            else:
                print(f"stopped after step {end} of {cfg.max_steps}; continue with --resume", flush=True)
    return rows


def window_rows(pending, elapsed, tokens_per_step, flops_per_token, peak, runtime) -> list[dict]:
    """metrics.jsonl rows for the steps since the last log, after the window's one host-device
    sync: losses averaged over processes, gradient norms, and throughput over the window."""
    losses = parallel.all_reduce_sum(torch.stack([p[2] for p in pending]).float(), runtime)
    losses = (losses / runtime.world_size).tolist()
    norms = [None if p[3] is None else float(p[3].full_tensor() if hasattr(p[3], "full_tensor") else p[3])
             for p in pending]
    tokens_per_s = tokens_per_step * len(pending) / elapsed
    mfu = flops_per_token * tokens_per_s / (peak * runtime.world_size) if peak else None
    return [{"step": step, "loss": loss, "lr": lr, "tokens_per_s": tokens_per_s, "mfu": mfu, "grad_norm": norm,
             "step_s": elapsed / len(pending), "tokens": step * tokens_per_step}
            for (step, lr, _, _), loss, norm in zip(pending, losses, norms)]


def _stopped(out: Path, last_good: str | None) -> str:
    """The advice names the checkpoint --resume would load, checked again now: the file saved or
    loaded last may have been damaged on disk since."""
    good = resumable_checkpoint(out) if last_good is not None else None
    return (f"stopped without saving. The last good checkpoint is {good or 'none (no checkpoint yet)'}: "
            f"--resume from it with a lower lr")


def stop_if_diverged(window: list[dict], log: MetricsLog, out: Path, last_good: str | None):
    """A NaN or infinite loss or gradient norm ends the run before anything is saved, keeping
    the rows before it, so the last checkpoint is one taken before the divergence."""
    for i, row in enumerate(window):
        for key in ("loss", "grad_norm"):
            if row[key] is not None and not math.isfinite(row[key]):
                for good in window[:i]:
                    log.write(good)
                log.close()
                name = "loss" if key == "loss" else "gradient norm"
                raise TrainingStopped(f"{name} is {row[key]} at step {row['step']}; {_stopped(out, last_good)}")


def weights_finite(model, runtime) -> bool:
    bad = torch.zeros((), device=runtime.device)
    for p in model.parameters():
        local = p.to_local() if hasattr(p, "to_local") else p  # this process's FSDP shard
        bad += (~torch.isfinite(local)).sum()
    return parallel.all_reduce_sum(bad, runtime).item() == 0


def checkpoint(out, step, model, optimizer, sampler, cfg, model_config, runtime) -> str | None:
    """Gather the full state from every process and save it from the first."""
    state = {
        "model": parallel.full_model_state(model),
        "optimizer": parallel.full_optimizer_state(model, optimizer),
        "step": step,
        "data": sampler.state_dict(),
        "rng": parallel.all_gather_objects(rng_state(runtime.device), runtime),
        "config": dataclasses.asdict(cfg),
        "model_config": dataclasses.asdict(model_config),
    }
    if not runtime.is_main:
        return None
    return str(save_checkpoint(out, step, state, cfg.keep_ckpts))


def parse_args(argv=None):
    defaults = ", ".join(f"{f.name}={'-' if f.default is None else f.default}" for f in dataclasses.fields(TrainConfig))
    parser = ArgumentParser(prog="python -m trainer.run", description="Pre-train a GPT-style model on token shards.",
                            epilog=f"Settings (key=value, applied after the config file; meanings in "
                                   f"trainer/config.py) and their defaults, '-' meaning the preset's or none: {defaults}")
    parser.add_argument("--data", required=True, help="folder with manifest.json and the .bin shards")
    parser.add_argument("--out", required=True, help="folder for checkpoints, metrics and the model")
    parser.add_argument("--config", help="YAML (flat key: value) or JSON file of settings")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in OUT/ckpt")
    parser.add_argument("--fsdp", action="store_true", help="shard the model over processes (FSDP2)")
    parser.add_argument("settings", nargs="*", metavar="key=value")
    return parser.parse_intermixed_args(argv)


def main(argv=None):
    args = parse_args(argv)
    ckpt, base = None, None
    if args.resume:
        ckpt = load_latest_checkpoint(args.out)
        if ckpt is None:
            found = len(list_checkpoints(args.out))
            raise UsageError(f"--resume: no checkpoint in {Path(args.out) / 'ckpt'}"
                               + (f" verifies and loads (all {found} skipped, above)" if found else ""))
        # the saved settings are the base, so `--resume` alone continues the same run; stop_at and
        # fsdp belonged to the job that stopped (the next one may run on other hardware)
        known = {f.name for f in dataclasses.fields(TrainConfig)} - {"stop_at", "fsdp"}
        base = TrainConfig(**{k: v for k, v in ckpt["config"].items() if k in known})
    elif list_checkpoints(args.out):
        raise UsageError(f"{args.out} already holds checkpoints: add --resume to continue, or choose another --out")
    cfg = load_config(args.config, args.settings, base)
    if args.fsdp:
        cfg = dataclasses.replace(cfg, fsdp=True)
    if ckpt is not None and ckpt["step"] >= (cfg.stop_at or cfg.max_steps) and ckpt["step"] < cfg.max_steps:
        raise UsageError(f"the checkpoint is at step {ckpt['step']}, past stop_at={cfg.stop_at}")
    train(args.data, args.out, cfg, ckpt)


if __name__ == "__main__":
    run_command(main)

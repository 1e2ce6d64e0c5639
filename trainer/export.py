"""Hand a trained model to the rest of the ecosystem.

    python -m trainer.export OUT --to hf DIR

writes DIR as a Hugging Face `transformers` Llama model (LlamaForCausalLM): config.json,
model.safetensors, and the run's SentencePiece tokenizer as LlamaTokenizer files. Our default
architecture is Llama's (rotary positions in the same half-split layout, RMSNorm, SwiGLU, no
biases), so this is a renaming of tensors and a split of the fused q/k/v and gate/up matmuls:
the exported model computes the same logits. Needs only torch and safetensors, not transformers.

Nothing is written when DIR overlaps the run (is it, lies inside it, or holds it), or when the
tokenizer file's sha256 is not the one the run trained with (recorded in the run's config.json):
a tokenizer replaced since would ship a vocabulary the weights never saw, and the model would
read as fluent garbage.
"""

import hashlib
import json
from pathlib import Path

from safetensors.torch import save_file

from core.errors import ArgumentParser, UsageError, run_command
from trainer.checkpoint import load_model


def llama_tensors(model) -> dict:
    cfg = model.config
    sd = model.state_dict()
    q_rows, kv_rows = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
    tensors = {"model.embed_tokens.weight": sd["transformer.wte.weight"],
               "model.norm.weight": sd["transformer.ln_f.weight"]}
    for i in range(cfg.n_layer):
        ours, theirs = f"transformer.h.{i}.", f"model.layers.{i}."
        q, k, v = sd[ours + "attn.c_attn.weight"].split([q_rows, kv_rows, kv_rows])
        gate, up = sd[ours + "mlp.c_fc.weight"].chunk(2)  # the model computes silu(gate) * up in this order
        tensors.update({
            theirs + "input_layernorm.weight": sd[ours + "ln_1.weight"],
            theirs + "self_attn.q_proj.weight": q, theirs + "self_attn.k_proj.weight": k,
            theirs + "self_attn.v_proj.weight": v, theirs + "self_attn.o_proj.weight": sd[ours + "attn.c_proj.weight"],
            theirs + "post_attention_layernorm.weight": sd[ours + "ln_2.weight"],
            theirs + "mlp.gate_proj.weight": gate, theirs + "mlp.up_proj.weight": up,
            theirs + "mlp.down_proj.weight": sd[ours + "mlp.c_proj.weight"],
        })
    if not cfg.tie_embeddings:
        tensors["lm_head.weight"] = sd["lm_head.weight"]
    return {k: v.contiguous().clone() for k, v in tensors.items()}


def special_tokens(tokenizer: bytes | None) -> dict:
    """Ids and pieces of <unk>, <s>, </s>, <pad> as the SentencePiece model defines them."""
    if tokenizer is None:
        return {"bos": (1, "<s>"), "eos": (2, "</s>"), "unk": (0, "<unk>"), "pad": (None, None)}
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_proto=tokenizer)
    ids = {"bos": sp.bos_id(), "eos": sp.eos_id(), "unk": sp.unk_id(), "pad": sp.pad_id()}
    return {k: (i, sp.id_to_piece(i)) if i >= 0 else (None, None) for k, i in ids.items()}


def check_apart(out: Path, dest: Path):
    """DIR must not be the run, inside it or above it: export writes config.json and
    model.safetensors, the names of the run's own files."""
    run, target = out.resolve(), dest.resolve()
    if run == target or run in target.parents or target in run.parents:
        raise UsageError(f"the export folder {dest} and the run {out} overlap; choose a folder outside the run")


def trained_tokenizer(out: Path, data: dict) -> bytes | None:
    """The bytes of the tokenizer the run trained with, checked against the sha256 it recorded;
    None when the file is not on this machine."""
    path = data.get("tokenizer")
    if not path or not Path(path).is_file():
        return None
    tokenizer = Path(path).read_bytes()  # read once: what is checked is what is copied
    recorded = data.get("tokenizer_sha256")
    if recorded is None:
        print(f"note: {out}/config.json records no tokenizer sha256 (a run from before it did); "
              f"{path} is copied unverified")
    elif hashlib.sha256(tokenizer).hexdigest() != recorded:
        raise UsageError(f"tokenizer {path} is not the one {out} was trained with (sha256 "
                           f"{hashlib.sha256(tokenizer).hexdigest()[:12]}..., recorded {recorded[:12]}...)")
    return tokenizer


def to_hf(out, dest) -> Path:
    out, dest = Path(out), Path(dest)
    check_apart(out, dest)
    model = load_model(out)
    cfg = model.config
    if cfg.arch != "llama":
        raise UsageError(f"{out} was trained with arch={cfg.arch}; only arch=llama is a Llama model")
    if cfg.qk_norm:
        raise UsageError(f"{out} was trained with qk_norm=true, which the Llama architecture does not have")
    saved = json.loads((out / "config.json").read_text())
    tokenizer = trained_tokenizer(out, saved.get("data", {}))
    special = special_tokens(tokenizer)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(llama_tensors(model), str(dest / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.n_embd, "intermediate_size": cfg.mlp_hidden,
        "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
        "num_key_value_heads": cfg.n_kv_head, "head_dim": cfg.head_dim, "hidden_act": "silu",
        "max_position_embeddings": cfg.block_size, "rms_norm_eps": cfg.norm_eps,
        # transformers 5 reads rope_parameters, 4.x reads rope_theta
        "rope_theta": cfg.rope_theta, "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "tie_word_embeddings": cfg.tie_embeddings, "attention_bias": False, "mlp_bias": False,
        "attention_dropout": 0.0, "initializer_range": cfg.init_std, "use_cache": True,
        "bos_token_id": special["bos"][0], "eos_token_id": special["eos"][0], "pad_token_id": special["pad"][0],
        "torch_dtype": "float32",
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dest / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": special["bos"][0], "eos_token_id": special["eos"][0]}, indent=2) + "\n")
    if tokenizer is None:
        print(f"note: the run's tokenizer is not on this machine; {dest} has the model only")
        return dest
    (dest / "tokenizer.model").write_bytes(tokenizer)
    tokens = {f"{k}_token": piece for k, (_, piece) in special.items() if piece is not None}
    (dest / "special_tokens_map.json").write_text(json.dumps(tokens, indent=2) + "\n")
    (dest / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", **tokens, "add_bos_token": True, "add_eos_token": False,
        "model_max_length": cfg.block_size, "clean_up_tokenization_spaces": False, "legacy": False,
        "sp_model_kwargs": {},
    }, indent=2) + "\n")
    return dest


def main(argv=None):
    parser = ArgumentParser(prog="python -m trainer.export", description="Export a trained model (OUT of trainer.run).")
    parser.add_argument("out", help="a finished trainer.run folder (model.safetensors + config.json)")
    parser.add_argument("--to", required=True, choices=["hf"], help="hf: a transformers Llama folder")
    parser.add_argument("dest", help="folder to write")
    args = parser.parse_args(argv)
    print(f"wrote {to_hf(args.out, args.dest)}")


if __name__ == "__main__":
    run_command(main)

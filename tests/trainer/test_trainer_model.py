"""trainer/model.py: shapes, causality, the recipes, parameter and FLOP counts."""

import math

import pytest
import torch

from trainer.model import GPT, PRESETS, GPTConfig


def small(**kw) -> GPTConfig:
    return GPTConfig(**{**dict(vocab_size=96, block_size=16, n_layer=2, n_head=4, n_embd=32), **kw})


@pytest.mark.parametrize("kw", [{}, {"arch": "gpt2"}, {"qk_norm": True}, {"n_kv_head": 2},
                                {"tie_embeddings": False}])
def test_forward_shapes_loss_and_causality(kw):
    torch.manual_seed(0)
    model = GPT(small(**kw)).eval()
    idx, targets = torch.randint(0, 96, (2, 16)), torch.randint(0, 96, (2, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 16, 96)
    # an untrained model is close to uniform over the vocabulary
    assert abs(loss.item() - math.log(96)) < 0.5
    # changing the future must not change the past
    changed = idx.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 96
    assert torch.equal(model(changed)[0][:, :10], logits[:, :10])
    assert not torch.equal(model(changed)[0][:, 10:], logits[:, 10:])


def test_rotary_positions_matter_and_gpt2_has_learned_positions():
    model = GPT(small())
    assert not any("wpe" in n for n, _ in model.named_parameters())
    # the same tokens in another order give another output at the last position: without
    # positions, causal attention over the set {5, 9, 7} could not tell the orders apart (a
    # sequence of one repeated token cannot show it: attention over equal values is equal)
    logits, _ = model(torch.tensor([[5, 9, 7], [9, 5, 7]]))
    assert not torch.allclose(logits[0, 2], logits[1, 2])
    gpt2 = GPT(small(arch="gpt2"))
    assert isinstance(gpt2.transformer.ln_f, torch.nn.LayerNorm)
    assert gpt2.transformer.wpe.weight.shape == (16, 32)
    assert gpt2.transformer.h[0].attn.c_attn.bias is not None
    assert GPT(small()).transformer.h[0].attn.c_attn.bias is None


def test_tied_embeddings_share_one_matrix():
    model = GPT(small())
    assert model.lm_head.weight is model.transformer.wte.weight
    untied = GPT(small(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.transformer.wte.weight


def test_scaled_residual_init():
    torch.manual_seed(0)
    model = GPT(small(n_layer=8, n_embd=128, n_head=4))
    proj = model.transformer.h[0].attn.c_proj.weight.std().item()
    fc = model.transformer.h[0].mlp.c_fc.weight.std().item()
    assert fc == pytest.approx(0.02, rel=0.1)
    assert proj == pytest.approx(0.02 / math.sqrt(16), rel=0.1)


def test_swiglu_keeps_the_weight_count_of_a_4x_gelu_mlp():
    assert GPTConfig().mlp_hidden == 2048  # 8/3 of 768
    assert GPTConfig(arch="gpt2").mlp_hidden == 3072
    assert GPTConfig(n_embd=128, n_head=4).mlp_hidden % 32 == 0


def test_presets_and_nanogpt_flop_count():
    with torch.device("meta"):
        model = GPT(GPTConfig(vocab_size=50304, **PRESETS["gpt2-124m"]))
    cfg = model.config
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.block_size) == (12, 768, 12, 1024)
    # per layer: qkv + out (4 d^2), SwiGLU (3 d 2048), two RMSNorm gains; tied embedding once
    per_layer = 4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768
    assert model.num_params() == 12 * per_layer + 50304 * 768 + 768
    assert 123e6 < model.num_params() < 125e6
    assert model.flops_per_token(1024) == 6 * model.num_params() + 12 * 12 * 12 * 64 * 1024
    for name in ("350m", "1b"):
        with torch.device("meta"):
            n = GPT(GPTConfig(vocab_size=32768, **PRESETS[name])).num_params()
        assert {"350m": 0.3e9 < n < 0.4e9, "1b": 0.9e9 < n < 1.2e9}[name], (name, n)


def test_learned_positions_and_untied_input_table_do_no_flops():
    tied, untied = GPT(small()), GPT(small(tie_embeddings=False))
    assert untied.num_params(non_embedding=False) - tied.num_params(non_embedding=False) == 96 * 32
    assert untied.num_params() == tied.num_params()
    gpt2 = GPT(small(arch="gpt2"))
    assert gpt2.num_params() == gpt2.num_params(non_embedding=False) - 16 * 32


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="divide"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ValueError, match="arch"):
        GPTConfig(arch="mamba")
    with pytest.raises(ValueError, match="block_size"):
        GPT(small())(torch.zeros(1, 17, dtype=torch.long))


def test_generate_is_seeded_and_stays_inside_the_vocabulary():
    model = GPT(small()).eval()
    start = torch.zeros(2, 1, dtype=torch.long)
    a = model.generate(start, 20, top_k=10, vocab_limit=50, generator=torch.Generator().manual_seed(1))
    b = model.generate(start, 20, top_k=10, vocab_limit=50, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 21) and torch.equal(a, b)
    assert int(a.max()) < 50

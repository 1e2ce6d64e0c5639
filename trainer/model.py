"""A decoder-only transformer in one file, in the order data flows through it.

Two recipes share the file. `arch="llama"` (the default) is what current models use: rotary
positions, RMSNorm, a SwiGLU MLP and no biases, laid out so that `trainer.export` can hand the
weights to `transformers` as a Llama model without changing a single number. `arch="gpt2"` is the
2019 recipe (learned positions, LayerNorm, GELU, biases), kept so that bench/trainer_quality can
show what the modern recipe buys at the same size.

The file knows nothing about devices, data parallelism, compilation or mixed precision: those are
applied from outside (trainer/parallel.py), so what is read here is all there is to the model.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64: faster matmuls
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_kv_head: int | None = None  # fewer key/value heads than query heads = grouped-query attention
    n_embd: int = 768
    mlp_hidden: int | None = None  # None: 8/3 of n_embd (SwiGLU) or 4x (GELU), same weights either way
    arch: str = "llama"  # "llama" or "gpt2"
    qk_norm: bool = False  # RMSNorm on queries and keys per head: steadier logits at high learning rates
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    dropout: float = 0.0
    init_std: float = 0.02

    def __post_init__(self):
        if self.arch not in ("llama", "gpt2"):
            raise ValueError(f"arch must be 'llama' or 'gpt2', not {self.arch!r}")
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.n_embd % self.n_head or self.n_head % self.n_kv_head:
            raise ValueError(
                f"n_embd ({self.n_embd}) must divide by n_head ({self.n_head}) "
                f"and n_head by n_kv_head ({self.n_kv_head})")
        if self.arch == "llama" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head size, not {self.head_dim}")
        if self.mlp_hidden is None:
            # SwiGLU has three matrices where GELU has two; 8/3 keeps the weight count of a 4x
            # GELU MLP (exactly so for 768 wide), rounded up to a multiple of 32 for the kernels
            self.mlp_hidden = 4 * self.n_embd if self.arch == "gpt2" else 32 * math.ceil(8 * self.n_embd / 3 / 32)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


PRESETS = {
    # small enough to train for a few minutes on two CPU cores
    "tiny": dict(n_layer=4, n_head=4, n_embd=128, block_size=256),
    # the shape of GPT-2 small, the one nanoGPT and llm.c benchmark
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),
    # GPT-2 medium's shape
    "350m": dict(n_layer=24, n_head=16, n_embd=1024, block_size=1024),
    "1b": dict(n_layer=20, n_head=16, n_embd=2048, block_size=2048),
}


def norm(config: GPTConfig, dim: int) -> nn.Module:
    if config.arch == "gpt2":
        return nn.LayerNorm(dim, eps=config.norm_eps)
    return nn.RMSNorm(dim, eps=config.norm_eps)


def rotary_tables(config: GPTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every (position, frequency) pair, computed in float32 the way Hugging Face's
    Llama computes them, so exported models give the same logits."""
    dim = config.head_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    freqs = torch.outer(torch.arange(config.block_size, dtype=torch.float32), inv_freq)
    return freqs.cos(), freqs.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # rotate the first half of each head against the second half (Llama's layout, not GPT-J's
    # interleaved pairs): what transformers' LlamaForCausalLM expects of the weights
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class CausalSelfAttention(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        bias = config.arch == "gpt2"
        # queries, keys and values in one matmul: one large kernel beats three small ones
        self.c_attn = nn.Linear(config.n_embd, (config.n_head + 2 * config.n_kv_head) * self.head_dim, bias=bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=bias)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=config.norm_eps) if config.qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim, eps=config.norm_eps) if config.qk_norm else None
        self.rotary = config.arch == "llama"
        self.dropout = config.dropout

    def forward(self, x, cos, sin):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(
            [self.n_head * self.head_dim, self.n_kv_head * self.head_dim, self.n_kv_head * self.head_dim], dim=2)
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.rotary:
            q, k = apply_rotary(q, cos[:T], sin[:T]), apply_rotary(k, cos[:T], sin[:T])
        if self.n_kv_head != self.n_head:
            # query head j reads key/value head j // group, as transformers' repeat_kv does
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        # flash attention on GPU, a fused kernel on CPU; never the T x T matrix in Python
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.swiglu = config.arch == "llama"
        width = 2 * config.mlp_hidden if self.swiglu else config.mlp_hidden  # SwiGLU: gate and up in one matmul
        self.c_fc = nn.Linear(config.n_embd, width, bias=not self.swiglu)
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=not self.swiglu)

    def forward(self, x):
        if self.swiglu:
            gate, up = self.c_fc(x).chunk(2, dim=-1)
            return self.c_proj(F.silu(gate) * up)
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = norm(config, config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = norm(config, config.n_embd)
        self.mlp = MLP(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, cos, sin):
        x = x + self.dropout(self.attn(self.ln_1(x), cos, sin))
        x = x + self.dropout(self.mlp(self.ln_2(x)))
        return x


class GPT(nn.Module):

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=norm(config, config.n_embd),
        ))
        if config.arch == "gpt2":
            self.transformer.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            # one matrix reads tokens in and scores them out (Press & Wolf 2017): fewer weights,
            # and at small sizes no worse
            self.transformer.wte.weight = self.lm_head.weight
        # not saved with the weights: they are a function of the config
        cos, sin = rotary_tables(config)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        # GPT-2's scaled residual init: each block adds two projections to the residual stream,
        # so their variance is shrunk by the depth to keep the stream's variance in check
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=config.init_std / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = True) -> int:
        """Weights that take part in matmuls. Lookup tables do no arithmetic, so non_embedding
        leaves out learned positions and, when untied, the input embedding (a tied one is also
        the output layer, which is a matmul): nanoGPT's count, for MFU."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            if self.config.arch == "gpt2":
                n -= self.transformer.wpe.weight.numel()
            if not self.config.tie_embeddings:
                n -= self.transformer.wte.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token as nanoGPT and the PaLM paper count them: 6 per weight
        (forward and backward) plus attention's 12 * layers * heads * head size * context."""
        cfg = self.config
        T = seq_len or cfg.block_size
        return 6 * self.num_params() + 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * T

    def forward(self, idx, targets=None):
        B, T = idx.size()
        if T > self.config.block_size:
            raise ValueError(f"sequence of {T} tokens is longer than block_size {self.config.block_size}")
        x = self.transformer.wte(idx)
        if self.config.arch == "gpt2":
            x = x + self.transformer.wpe(torch.arange(T, device=idx.device))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, self.rope_cos, self.rope_sin)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            # the softmax in float32 even under bf16 autocast: 50k-way sums lose digits in bf16
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, vocab_limit=None, generator=None):
        """Sample max_new_tokens after idx (B, T). vocab_limit keeps the padding rows of a padded
        vocabulary from ever being drawn."""
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -self.config.block_size:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :vocab_limit].float() / temperature
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")
            probs = F.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

"""A character-level GPT, trained on gpugrad's own documentation.

The model is a small decoder-only transformer: token + position embeddings, pre-LayerNorm blocks
of causal self-attention and a GELU MLP, and an output layer that shares its weights with the
token embedding. Training uses AdamW with weight decay on the matrices only, a linear warmup
followed by a cosine decay of the learning rate, gradient accumulation over micro-batches and
gradient-norm clipping. At the end it samples text with temperature and top-k.

Attention is computed either by `F.scaled_dot_product_attention(..., is_causal=True)` or written
out (`q @ kᵀ`, `masked_fill` with a `tril` mask, softmax, `@ v`); `--attention manual` picks the
second. Both give the same numbers.

    python examples/char_gpt.py                     # a few hundred steps on the cpu
    python examples/char_gpt.py --steps 20 --device cuda
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
import gpugrad.optim as optim

REPO = Path(__file__).resolve().parent.parent


@dataclass
class GPTConfig:
    """The model's sizes."""

    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    attention: str = "sdpa"  # or "manual": masked_fill on a tril mask


class CausalSelfAttention(nn.Module):
    """Each position attends to itself and the positions before it, in n_head heads."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"n_embd {cfg.n_embd} is not a multiple of n_head {cfg.n_head}")
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_drop = nn.Dropout(cfg.dropout)
        self.resid_drop = nn.Dropout(cfg.dropout)
        self.n_head, self.n_embd, self.dropout = cfg.n_head, cfg.n_embd, cfg.dropout
        self.manual = cfg.attention == "manual"
        if self.manual:  # 1 where a query may look at a key: on and below the diagonal
            causal = gg.tril(gg.ones(cfg.block_size, cfg.block_size))
            self.register_buffer("causal", causal.view(1, 1, cfg.block_size, cfg.block_size))

    def forward(self, x: gg.Tensor) -> gg.Tensor:
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(self.n_embd, axis=2)
        # (B, T, C) -> (B, heads, T, C / heads): every head attends on its own slice
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.manual:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.causal[:, :, :T, :T] == 0, float("-inf"))
            att = self.attn_drop(F.softmax(att, axis=-1))
            y = att @ v
        else:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_drop(self.proj(y))


class FeedForward(nn.Module):
    """Position-wise MLP: widen 4x, GELU, narrow back."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: gg.Tensor) -> gg.Tensor:
        return self.drop(self.proj(self.gelu(self.fc(x))))


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x)): the residual stream stays unnormalised."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = FeedForward(cfg)

    def forward(self, x: gg.Tensor) -> gg.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Embeddings, blocks, a final LayerNorm and a head tied to the token embedding."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
                wpe=nn.Embedding(cfg.block_size, cfg.n_embd),
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)]),
                ln_f=nn.LayerNorm(cfg.n_embd),
            )
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # one matrix, two uses
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # residual branches start small (GPT-2)
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(
        self, idx: gg.Tensor, targets: gg.Tensor | None = None
    ) -> tuple[gg.Tensor, gg.Tensor | None]:
        """Logits for every position, and the cross-entropy loss when targets are given."""
        _, t = idx.size()
        if t > self.cfg.block_size:
            raise ValueError(f"sequence of {t} tokens; the block size is {self.cfg.block_size}")
        pos = gg.arange(0, t, dtype=gg.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

    def configure_optimizer(
        self, weight_decay: float, lr: float, betas: tuple[float, float]
    ) -> optim.AdamW:
        """AdamW that decays the matrices (weights, embeddings) but not biases and norms."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        return optim.AdamW(groups, lr=lr, betas=betas)

    @gg.no_grad()
    def generate(
        self,
        idx: gg.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: gg.Generator | None = None,
    ) -> gg.Tensor:
        """Extend each row of idx by sampling one token at a time."""
        for _ in range(max_new_tokens):
            context = idx if idx.size(1) <= self.cfg.block_size else idx[:, -self.cfg.block_size :]
            logits, _ = self(context)
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = gg.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("inf")  # keep the k most likely
            probs = F.softmax(logits, axis=-1)
            idx_next = gg.multinomial(probs, num_samples=1, generator=generator)
            idx = gg.cat((idx, idx_next), axis=1)
        return idx


def lr_factor(step: int, warmup: int, total: int, floor: float = 0.1) -> float:
    """Linear warmup to 1 over `warmup` steps, then a cosine decay to `floor` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + 0.5 * (1.0 - floor) * (1.0 + math.cos(math.pi * progress))


class CharData:
    """Characters of a text as integers, and random (input, next-character) windows of it."""

    def __init__(self, text: str, block_size: int, device: str) -> None:
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        data = gg.tensor([self.index[c] for c in text], dtype=gg.long)
        split = int(0.9 * len(data))
        self.train, self.val = data[:split], data[split:]
        self.block_size, self.device = block_size, device

    def batch(self, split: str, batch_size: int, generator: gg.Generator) -> tuple:
        """batch_size windows of block_size characters, and the same windows shifted by one."""
        data = self.train if split == "train" else self.val
        starts = gg.randint(0, len(data) - self.block_size, (batch_size,), generator=generator)
        x = gg.stack([data[i : i + self.block_size] for i in starts.tolist()])
        y = gg.stack([data[i + 1 : i + 1 + self.block_size] for i in starts.tolist()])
        return x.to(self.device), y.to(self.device)

    def decode(self, ids: list[int]) -> str:
        """The text of a list of character ids."""
        return "".join(self.chars[i] for i in ids)


def corpus() -> str:
    """gpugrad's own prose: the backprop walkthrough and the README."""
    return (REPO / "docs" / "backprop.md").read_text() + (REPO / "README.md").read_text()


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Train, report the losses, print a sample; returns the final losses."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16, help="windows per micro-batch")
    parser.add_argument("--accum", type=int, default=2, help="micro-batches per step")
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--attention", choices=["sdpa", "manual"], default="sdpa")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--sample-tokens", type=int, default=200)
    args = parser.parse_args(argv)

    gg.manual_seed(args.seed)
    g = gg.Generator().manual_seed(args.seed)  # draws the batches, which start on the cpu
    data = CharData(corpus(), args.block_size, args.device)
    cfg = GPTConfig(
        vocab_size=len(data.chars),
        block_size=args.block_size,
        n_layer=args.layers,
        n_head=args.heads,
        n_embd=args.width,
        dropout=args.dropout,
        attention=args.attention,
    )
    model = GPT(cfg).to(args.device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f}M parameters, {len(data.chars)} characters")
    opt = model.configure_optimizer(weight_decay=0.1, lr=args.lr, betas=(0.9, 0.95))
    warmup = max(1, args.steps // 10)
    schedule = optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, warmup, args.steps))

    start = time.perf_counter()
    for step in range(args.steps):
        model.train()
        opt.zero_grad(set_to_none=True)
        for _ in range(args.accum):  # gradients add up over the micro-batches
            x, y = data.batch("train", args.batch_size, g)
            _, loss = model(x, y)
            (loss / args.accum).backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        if step % 50 == 0 or step == args.steps - 1:
            print(
                f"step {step:4d}  loss {loss.item():.4f}  grad norm {norm.item():.3f}  "
                f"lr {opt.param_groups[0]['lr']:.2e}  {time.perf_counter() - start:.1f}s"
            )
    losses = {}
    model.eval()
    with gg.no_grad():
        for split in ("train", "val"):
            x, y = data.batch(split, 4 * args.batch_size, g)
            losses[split] = model(x, y)[1].item()
    print(f"train loss {losses['train']:.4f}  val loss {losses['val']:.4f}")
    if args.sample_tokens:
        prompt = gg.tensor([[data.index["T"]]], dtype=gg.long, device=args.device)
        sampler = gg.Generator(device=args.device).manual_seed(args.seed)
        out = model.generate(
            prompt, args.sample_tokens, temperature=0.8, top_k=10, generator=sampler
        )
        print(data.decode(out[0].tolist()))
    return losses


if __name__ == "__main__":
    main()

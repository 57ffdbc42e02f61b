"""
Pretrain a small GPT for a fixed time budget (wall seconds on h100, CPU seconds on cpu and tiny: prepare.budget_clock), then report val_bpb.

This is the one file the research agent edits: model, optimizer, training loop
and hyper-parameters all live here. The fixed harness (data, tokenizer,
dataloader, the val_bpb metric, MAX_SEQ_LEN and TIME_BUDGET) is prepare.py,
which must not be edited.

Run:  python -u train.py      (after `python prepare.py` has prepared the data)

Output: an `attention: <backend>` line (the attention backends below), one
progress line per step, separated by carriage returns, then a `---` summary
block whose `val_bpb:` line is the result (lower is better) and whose
`attention:` line names the backend. Exit status 1 after a `FAIL: <reason>`
line if the loss becomes NaN or exceeds 100, or at once if the profile needs
CUDA (h100) and this machine has none.

On CUDA (and only there), as upstream: bf16 autocast, bf16 embeddings,
torch.compile of the model and of the optimizer steps, the expandable-segments
allocator, FlashAttention-3 from the Hub when it loads and passes a smoke call.
"""

import time

T_START = time.time()  # start of the run, for total_seconds (includes imports)

import contextlib
import ctypes
import gc
import math
import os
import resource
import sys
from dataclasses import dataclass

# Upstream's settings, before torch is imported: the CUDA caching allocator grows segments in
# place instead of fragmenting (read by the CUDA allocator only; no effect on CPU or MPS), and
# `kernels` prints no download bars into the run's log.
os.environ.setdefault("PYTORCH_ALLOC_CONF", "expandable_segments:True")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
# OpenMP threads sleep at a barrier instead of spinning (read when torch loads libgomp): on a
# CPU budget counted in CPU seconds (prepare.budget_clock) spinning would count as training.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare import (PROFILE, MAX_SEQ_LEN, TIME_BUDGET, BUDGET_CLOCK, budget_clock, CACHE_DIR, NEEDS_CUDA, FA3_KERNELS, Tokenizer,
                     make_dataloader, evaluate_bpb, cuda_problem)

# =============================================================================
# Hyper-parameters
# =============================================================================
# Model
DEPTH = 8                      # number of transformer layers
ASPECT_RATIO = 64              # model width = DEPTH * ASPECT_RATIO, rounded up to a multiple of HEAD_DIM
HEAD_DIM = 128                 # channels per attention head (heads = width / HEAD_DIM); search: off
N_KV_HEAD = 0                  # key/value heads for grouped-query attention; 0 = one per query head
WINDOW_PATTERN = "SSSL"        # attention window per layer, cycled: S = half context, L = full; last layer L
# Batch
TOTAL_BATCH_SIZE = 524288      # tokens per optimizer step (sum of DEVICE_BATCH_SIZE x MAX_SEQ_LEN passes)
DEVICE_BATCH_SIZE = 128        # sequences per forward/backward pass; lower it if memory runs out
# Optimizer
MATRIX_LR = 0.04               # Muon learning rate for the 2-D matrices of the blocks; search: log 0.005..0.2
EMBEDDING_LR = 0.6             # AdamW learning rate, token + value embeddings (x (width/768)**-0.5); search: log 0.05..3
UNEMBEDDING_LR = 0.004         # AdamW learning rate, LM head (x (width/768)**-0.5); search: log 0.0005..0.03
SCALAR_LR = 0.5                # AdamW learning rate, x0 scalars; residual scalars get SCALAR_LR * 0.01; search: log 0.05..3
ADAM_BETA1 = 0.8               # AdamW first-moment decay; search: beta 0.5..0.95
ADAM_BETA2 = 0.95              # AdamW second-moment decay; search: beta 0.8..0.999
WEIGHT_DECAY = 0.2             # Muon cautious weight decay at the start; decays linearly to 0 over the budget; search: float 0..0.5
MUON_MOMENTUM_START = 0.85     # Muon Nesterov momentum at step 0; search: float 0.6..0.95
MUON_MOMENTUM_END = 0.95       # Muon Nesterov momentum after the ramp; search: beta 0.85..0.99
MUON_MOMENTUM_STEPS = 300      # optimizer steps over which the momentum ramps up
MUON_BETA2 = 0.95              # decay of Muon's per-row/column second moment (NorMuon rescale); search: beta 0.8..0.99
# Schedule (fractions of the training-time budget)
WARMUP_RATIO = 0.0             # fraction of the budget with a linear learning-rate warm-up; search: float 0..0.2
WARMDOWN_RATIO = 0.5           # fraction of the budget, at the end, with a linear warm-down; search: float 0.1..0.9
FINAL_LR_FRAC = 0.0            # learning-rate multiplier reached at the end of the warm-down; search: float 0..0.3

# =============================================================================
# Model
# =============================================================================

@dataclass
class GPTConfig:
    sequence_len: int = 2048
    vocab_size: int = 8192
    n_layer: int = 8
    n_head: int = 4
    n_kv_head: int = 4
    n_embd: int = 512
    window_pattern: str = "SSSL"
    softcap: float = 15.0          # logits = softcap * tanh(logits / softcap)
    ve_gate_channels: int = 32     # input channels of the value-embedding gate


def norm(x):
    """RMSNorm without learnable weights."""
    return F.rms_norm(x, (x.size(-1),))


def has_value_embedding(layer, n_layer):
    """Value embeddings on alternating layers, the last one always included."""
    return layer % 2 == (n_layer - 1) % 2


def layer_windows(pattern, n_layer, seq_len):
    """Left window (tokens back, besides the current one) per layer: S = seq_len // 2, L = seq_len."""
    pattern = pattern.upper()
    if not pattern or set(pattern) - {"S", "L"}:
        raise ValueError(f"WINDOW_PATTERN must use only 'S' and 'L', got {pattern!r}")
    size = {"S": seq_len // 2, "L": seq_len}
    windows = [size[pattern[i % len(pattern)]] for i in range(n_layer)]
    windows[-1] = seq_len
    return windows


def rotary_tables(seq_len, head_dim, base=10000.0):
    """cos/sin tables for rotary embeddings, shaped [1, T, 1, head_dim / 2]."""
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]


def apply_rotary(x, cos, sin):
    """Rotate channel pairs (i, i + D/2) of x [B, T, H, D] by position-dependent angles."""
    d = x.size(-1) // 2
    x1, x2 = x[..., :d], x[..., d:]
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


# --- attention backends ------------------------------------------------------
# One backend per run, chosen once by choose_attention() and named in the summary block
# (`attention:`), because runs on different backends train different numbers of steps in
# the same wall-clock budget and their val_bpb are not comparable:
#   fa3:<repo>   FlashAttention-3 from the Hub through `kernels` (CUDA; upstream's choice)
#   flex         PyTorch flex_attention with block masks for the sliding windows (CUDA
#                without FA3): only the blocks inside each window are computed
#   sdpa         PyTorch scaled_dot_product_attention, every layer full-causal (no mask)
#   sdpa-masked  SDPA with a dense [T, T] boolean band mask for the sliding-window layers
#                (CPU and MPS, where flex_attention has no fused kernel)
ATTENTION = "sdpa"   # the backend in use, set by choose_attention()
FLASH_ATTN = None    # the FA3 interface module when ATTENTION starts with "fa3:"
BLOCK_MASKS = {}     # (T, window) -> flex_attention BlockMask, built before training


def fa3_smoke_test(module, device):
    """Call a loaded FA3 kernel once on a tiny bf16 input (B=1, T=256, 2 heads of 64, a
    64-token window) and compare it with SDPA: a kernel can import and then fail, or
    compute garbage, on a GPU it was not built for (karpathy/autoresearch issue #3).
    Raises RuntimeError (or the kernel's own error) when it fails or differs."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 256, 2, 64, device=device, dtype=torch.bfloat16) for _ in range(3))
    out = module.flash_attn_func(q, k, v, causal=True, window_size=(64, 0))
    out = out[0] if isinstance(out, tuple) else out
    mask = banded_causal_mask(256, 64, device)
    ref = F.scaled_dot_product_attention(*(t.transpose(1, 2).float() for t in (q, k, v)), attn_mask=mask)
    err = (out.float() - ref.transpose(1, 2)).abs().max().item()
    if not err < 0.05:  # bf16 inputs: measured ~1e-2 at most for a correct kernel
        raise RuntimeError(f"smoke call differs from SDPA by {err:.3g}")


def load_flash_attention(device, kernels=None, get_kernel=None):
    """(FA3 module, "fa3:<repo>") from the first of prepare.FA3_KERNELS that loads for this GPU
    and passes fa3_smoke_test, else (None, reasons): one "<repo>: <why>" per candidate tried.
    Never raises. kernels/get_kernel: the candidate list and the loader (tests pass fakes).
    With HF_HUB_OFFLINE=1 (the cockpit sets it for training runs) `kernels` reads only the
    local cache that `python prepare.py` filled, so a timed run makes no Hub calls."""
    if get_kernel is None:
        try:
            from kernels import get_kernel
        except Exception as e:  # kernels missing or broken
            return None, [f"kernels: {type(e).__name__}: {e}"]
    capability = tuple(torch.cuda.get_device_capability(device))  # (9, 0) on an H100
    reasons = []
    for repo, version, capabilities, trust in (FA3_KERNELS if kernels is None else kernels):
        if capabilities is not None and capability not in capabilities:
            reasons.append(f"{repo}: no build for sm_{capability[0]}{capability[1]}")
            continue
        try:
            module = get_kernel(repo, version=version, trust_remote_code=trust)
            module = getattr(module, "flash_attn_interface", module)
            fa3_smoke_test(module, device)
        except Exception as e:  # offline and not cached, no build for this torch, API change, bad kernel
            reasons.append(f"{repo}: {' '.join(str(e).split())[:160] or type(e).__name__}")
            continue
        return module, f"fa3:{repo}"
    return None, reasons


def flex_block_masks(T, windows, device):
    """{(T, window): BlockMask} for each sliding window (< T - 1) in `windows`: the causal band
    i - window <= j <= i as a flex_attention block mask (torch.nn.attention.flex_attention,
    PyTorch >= 2.5). Raises what create_block_mask raises."""
    from torch.nn.attention.flex_attention import create_block_mask
    masks = {}
    for window in sorted(set(w for w in windows if w < T - 1)):
        def band(b, h, q_idx, kv_idx, window=window):
            return (kv_idx <= q_idx) & (q_idx - kv_idx <= window)
        masks[(T, window)] = create_block_mask(band, B=None, H=None, Q_LEN=T, KV_LEN=T, device=device)
    return masks


def flex_ready(T, windows, device):
    """flex_block_masks(T, windows, device), after one compiled flex_attention call on a tiny
    bf16 input with the first of them (Triton must compile it: fail here, not mid-run).
    Raises what building or compiling raises."""
    masks = flex_block_masks(T, windows, device)
    q = torch.zeros(1, 1, T, 64, device=device, dtype=torch.bfloat16)
    compiled_flex()(q, q, q, block_mask=next(iter(masks.values())))
    return masks


def choose_attention(device, T, windows, load=load_flash_attention):
    """Pick and install the run's attention backend (module comment above); returns
    (backend name, reason: "" or why a faster one was not used) and prints one line
    `attention: <backend>` (with the reason in brackets) for the log and the cockpit.
    CUDA: FA3, else flex block masks (checked by one call), else sdpa-masked. Elsewhere:
    sdpa when every layer is full-causal, else sdpa-masked."""
    global ATTENTION, FLASH_ATTN, BLOCK_MASKS
    FLASH_ATTN, BLOCK_MASKS, reason = None, {}, ""
    windowed = any(w < T - 1 for w in windows)
    if device.type == "cuda":
        FLASH_ATTN, found = load(device)
        if FLASH_ATTN is not None:
            ATTENTION = found
            print(f"attention: {ATTENTION}")
            return ATTENTION, ""
        reason = "FlashAttention-3 unavailable: " + "; ".join(found)
    else:
        reason = f"device {device.type}"
    ATTENTION = "sdpa-masked" if windowed else "sdpa"
    if windowed and device.type == "cuda":
        try:
            BLOCK_MASKS, ATTENTION = flex_ready(T, windows, device), "flex"
        except Exception as e:
            BLOCK_MASKS, ATTENTION = {}, "sdpa-masked"
            reason += f"; flex_attention unavailable: {' '.join(str(e).split())[:160] or type(e).__name__}"
    print(f"attention: {ATTENTION} ({reason})")
    return ATTENTION, reason


_COMPILED_FLEX = None


def compiled_flex():
    """torch.compile(flex_attention), made once: eager flex_attention materialises the whole
    [T, T] score matrix (PyTorch's documented fallback); compiled, it skips masked blocks."""
    global _COMPILED_FLEX
    if _COMPILED_FLEX is None:
        from torch.nn.attention.flex_attention import flex_attention
        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=False)
    return _COMPILED_FLEX


def banded_causal_mask(T, window, device):
    """Boolean [T, T] mask, True where query i may attend key j: i - window <= j <= i."""
    i = torch.arange(T, device=device)[:, None]
    j = torch.arange(T, device=device)[None, :]
    return (j <= i) & (j >= i - window)


def attention(q, k, v, window):
    """Causal attention on [B, T, H, D] tensors (k, v may have fewer heads), `window` keys
    back, on the backend ATTENTION; returns [B, T, H, D]."""
    T = q.size(1)
    if FLASH_ATTN is not None:
        out = FLASH_ATTN.flash_attn_func(q, k, v, causal=True, window_size=(window if window < T else -1, 0))
        return out[0] if isinstance(out, tuple) else out
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # SDPA layout: B, H, T, D
    gqa = q.size(1) != k.size(1)
    if window >= T - 1:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    elif (T, window) in BLOCK_MASKS:
        y = compiled_flex()(q, k, v, block_mask=BLOCK_MASKS[(T, window)], enable_gqa=gqa)
    else:
        mask = banded_causal_mask(T, window, q.device)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    return y.transpose(1, 2)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim = config.n_embd // config.n_head
        kv_dim = self.n_kv_head * self.head_dim
        self.c_q = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_k = nn.Linear(config.n_embd, kv_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, kv_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.ve_gate_channels = config.ve_gate_channels
        self.ve_gate = None
        if has_value_embedding(layer, config.n_layer):
            self.ve_gate = nn.Linear(config.ve_gate_channels, self.n_kv_head, bias=False)

    def forward(self, x, ve, cos, sin, window):
        B, T, C = x.shape
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        dtype = q.dtype  # bf16 under autocast
        if ve is not None:  # value embedding, mixed in through a per-head gate in (0, 2); 1 at init
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        q, k = norm(apply_rotary(q, cos, sin)), norm(apply_rotary(k, cos, sin))  # QK-norm
        y = attention(q.to(dtype), k.to(dtype), v.to(dtype), window)
        return self.c_proj(y.reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())  # ReLU^2


class Block(nn.Module):
    def __init__(self, config, layer, window):
        super().__init__()
        self.window = window
        self.attn = CausalSelfAttention(config, layer)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos, sin):
        x = x + self.attn(norm(x), ve, cos, sin, self.window)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        kv_dim = config.n_kv_head * (config.n_embd // config.n_head)
        windows = layer_windows(config.window_pattern, config.n_layer, config.sequence_len)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config, i, w) for i, w in enumerate(windows)])
        self.value_embeds = nn.ModuleDict({
            str(i): nn.Embedding(config.vocab_size, kv_dim)
            for i in range(config.n_layer) if has_value_embedding(i, config.n_layer)})
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))  # scale of the residual stream per layer
        self.x0_lambdas = nn.Parameter(torch.full((config.n_layer,), 0.1))  # skip from the embedding per layer
        cos, sin = rotary_tables(config.sequence_len, config.n_embd // config.n_head)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self):
        bound = 3 ** 0.5 * self.config.n_embd ** -0.5  # uniform with std n_embd ** -0.5
        nn.init.normal_(self.wte.weight, std=1.0)
        nn.init.normal_(self.lm_head.weight, std=0.001)
        for ve in self.value_embeds.values():
            nn.init.uniform_(ve.weight, -bound, bound)
        for block in self.blocks:
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(lin.weight, -bound, bound)
            nn.init.zeros_(block.attn.c_proj.weight)  # each block starts as the identity
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)  # gate 2*sigmoid(0) = 1: neutral
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)

    def to_bf16_embeddings(self):
        """Hold the token and value embeddings and the rotary tables in bf16, as upstream
        does on CUDA (half their memory; no fp32 -> bf16 casts under autocast)."""
        self.wte.to(dtype=torch.bfloat16)
        for ve in self.value_embeds.values():
            ve.to(dtype=torch.bfloat16)
        self.cos, self.sin = self.cos.bfloat16(), self.sin.bfloat16()
        return self

    def forward(self, idx, targets=None, reduction="mean"):
        """Logits [B, T, V] without targets; with targets, the loss in nats
        (mean, or per token [B, T] with reduction="none")."""
        B, T = idx.shape
        cos, sin = self.cos[:, :T], self.sin[:, :T]
        x = x0 = norm(self.wte(idx))
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos, sin)
        logits = self.lm_head(norm(x)).float()
        logits = self.config.softcap * torch.tanh(logits / self.config.softcap)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.view(B * T, -1), targets.reshape(B * T),
                               ignore_index=-1, reduction=reduction)
        return loss.view(B, T) if reduction == "none" else loss

    def num_flops_per_token(self):
        """6 x (non-embedding parameters) + attention (12 x heads x head_dim x window, per layer)."""
        embedding = self.wte.weight.numel() + sum(p.numel() for p in self.value_embeds.parameters())
        scalars = self.resid_lambdas.numel() + self.x0_lambdas.numel()
        matmul_params = sum(p.numel() for p in self.parameters()) - embedding - scalars
        c, T = self.config, self.config.sequence_len
        attn = sum(12 * c.n_head * (c.n_embd // c.n_head) * min(b.window, T) for b in self.blocks)
        return 6 * matmul_params + attn

    def param_groups(self, matrix_lr, embedding_lr, unembedding_lr, scalar_lr, betas, weight_decay):
        """Muon for the 2-D block matrices (one group per shape), AdamW for the rest."""
        scale = (self.config.n_embd / 768) ** -0.5  # AdamW lrs were tuned at width 768
        adamw = dict(kind="adamw", betas=betas, eps=1e-10, weight_decay=0.0)
        groups = [
            dict(adamw, params=[self.lm_head.weight], lr=unembedding_lr * scale),
            dict(adamw, params=[self.wte.weight, *self.value_embeds.parameters()], lr=embedding_lr * scale),
            dict(adamw, params=[self.resid_lambdas], lr=scalar_lr * 0.01),
            dict(adamw, params=[self.x0_lambdas], lr=scalar_lr, betas=(0.96, 0.95)),
        ]
        by_shape = {}
        for p in self.blocks.parameters():
            by_shape.setdefault(tuple(p.shape), []).append(p)
        for shape in sorted(by_shape):
            groups.append(dict(kind="muon", params=by_shape[shape], lr=matrix_lr,
                               momentum=MUON_MOMENTUM_START, beta2=MUON_BETA2, weight_decay=weight_decay))
        assert sum(len(g["params"]) for g in groups) == len(list(self.parameters()))
        return groups

# =============================================================================
# Optimizer: Muon (block matrices) + AdamW (everything else)
# =============================================================================

# (a, b, c) per iteration of X <- a X + (b A + c A^2) X, A = X X^T ("polar express")
POLAR_EXPRESS_COEFFS = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
]


def polar_express(G):
    """Approximately orthogonalise G [..., rows, cols]: singular values pushed towards 1."""
    X = G.bfloat16() if G.is_cuda else G.float()  # bf16 on GPU; fp32 elsewhere (no fast bf16)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    tall = X.size(-2) > X.size(-1)
    if tall:  # iterate on the wide orientation so that A = X X^T is the smaller square
        X = X.mT
    for a, b, c in POLAR_EXPRESS_COEFFS:
        A = X @ X.mT
        X = a * X + (b * A + c * (A @ A)) @ X
    return X.mT if tall else X


def normuon_rescale(U, second_moment, beta2):
    """Equalise the update's per-row (or per-column, for wide matrices) RMS with a running
    second moment, keeping the update's overall Frobenius norm."""
    dim = -1 if U.size(-2) >= U.size(-1) else -2
    n = U.size(dim)
    v = U.float().square().mean(dim=dim, keepdim=True)
    second_moment.lerp_(v, 1 - beta2)
    scale = second_moment.clamp_min(1e-10).rsqrt()
    norm_before = (v * n).sum(dim=(-2, -1), keepdim=True).sqrt()
    norm_after = (v * n * scale.square()).sum(dim=(-2, -1), keepdim=True).sqrt()
    return U.float() * (scale * norm_before / norm_after.clamp_min(1e-10))


def adamw_update(p, grad, m, v, step, lr, beta1, beta2, eps, wd):
    """One AdamW step on p in place (Loshchilov & Hutter 2019: bias-corrected moments,
    decoupled weight decay); m, v: p's first and second moments, same shape, updated in place.
    step, lr, beta1, beta2, eps, wd: Python floats, or 0-D float32 CPU tensors for the
    compiled version (a changed value then needs no recompile: upstream's design)."""
    m.lerp_(grad, 1 - beta1)
    v.lerp_(grad.square(), 1 - beta2)
    m_hat = m / (1 - beta1 ** step)
    v_hat = v / (1 - beta2 ** step)
    p.mul_(1 - lr * wd)
    p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


def muon_update(grads, weights, momentum_buffer, second_moment, momentum, lr, wd, beta2):
    """One Muon step on a stack of same-shaped matrices, in place: Nesterov momentum,
    polar_express orthogonalisation, normuon_rescale, cautious weight decay (applied only
    where update and weight agree in sign). grads, weights, momentum_buffer: float32
    [n, rows, cols]; second_moment: [n, rows, 1] or [n, 1, cols]. Scalars as in adamw_update."""
    momentum_buffer.lerp_(grads, 1 - momentum)
    grads = grads.lerp_(momentum_buffer, momentum)  # Nesterov
    update = normuon_rescale(polar_express(grads), second_moment, beta2)
    agree = (update * weights) > 0
    weights.sub_(lr * update + lr * wd * weights * agree)


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer; each param group says whether it is updated by Muon or AdamW.
    compiled=True (CUDA): adamw_update and muon_update run through torch.compile(fullgraph)
    with their scalars as 0-D CPU tensors, as upstream does; eager elsewhere."""

    def __init__(self, param_groups, compiled=False):
        super().__init__(param_groups, defaults={})
        for group in self.param_groups:
            group["initial_lr"] = group["lr"]
        self._adamw, self._muon = adamw_update, muon_update
        self._scalars = None
        if compiled:
            self._adamw = torch.compile(adamw_update, dynamic=False, fullgraph=True)
            self._muon = torch.compile(muon_update, dynamic=False, fullgraph=True)
            self._scalars = [torch.tensor(0.0, dtype=torch.float32) for _ in range(6)]

    def _args(self, *values):
        """The scalars as given (eager) or written into the 0-D tensors (compiled)."""
        if self._scalars is None:
            return values
        for tensor, value in zip(self._scalars, values):
            tensor.fill_(value)
        return self._scalars[:len(values)]

    def add_param_group(self, param_group):
        """torch.optim.Optimizer.add_param_group, called past its torch._disable_dynamo wrapper:
        the wrapper's first call imports torch._dynamo (about 1 s of start-up on a 2-core CPU),
        which nothing needs unless the model is compiled (then torch.compile imports it anyway)."""
        base = torch.optim.Optimizer.add_param_group
        getattr(base, "__wrapped__", base)(self, param_group)

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            if group["kind"] == "muon":
                self._muon_step(group)
            else:
                self._adamw_step(group)

    def _adamw_step(self, group):
        beta1, beta2 = group["betas"]
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["m"] = torch.zeros_like(p)
                state["v"] = torch.zeros_like(p)
            state["step"] += 1
            self._adamw(p, p.grad, state["m"], state["v"],
                        *self._args(state["step"], group["lr"], beta1, beta2, group["eps"], group["weight_decay"]))

    def _muon_step(self, group):
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        rows, cols = params[0].shape
        state = self.state[params[0]]  # the group's state lives on its first parameter
        if not state:
            state["momentum"] = torch.zeros(len(params), rows, cols, device=params[0].device)
            moment_shape = (len(params), rows, 1) if rows >= cols else (len(params), 1, cols)
            state["second_moment"] = torch.zeros(moment_shape, device=params[0].device)
        grads = torch.stack([p.grad.float() for p in params])
        weights = torch.stack(params).float()
        lr = group["lr"] * max(1.0, rows / cols) ** 0.5
        self._muon(grads, weights, state["momentum"], state["second_moment"],
                   *self._args(group["momentum"], lr, group["weight_decay"], group["beta2"]))
        for p, w in zip(params, weights.unbind(0)):
            p.copy_(w)

# =============================================================================
# Schedules (progress = training time / TIME_BUDGET, in [0, 1])
# =============================================================================

def lr_multiplier(progress):
    if progress < WARMUP_RATIO:
        return (progress + 1e-8) / WARMUP_RATIO
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    cooldown = max(0.0, 1.0 - progress) / WARMDOWN_RATIO  # 1 -> 0 over the warm-down
    return cooldown + (1.0 - cooldown) * FINAL_LR_FRAC


def muon_momentum(step):
    frac = min(step / MUON_MOMENTUM_STEPS, 1.0)
    return (1 - frac) * MUON_MOMENTUM_START + frac * MUON_MOMENTUM_END


def weight_decay(progress):
    return WEIGHT_DECAY * (1.0 - progress)

# =============================================================================
# Training
# =============================================================================

def tune_cpu_allocator():
    """glibc malloc (Linux): serve large blocks from the heap and keep freed memory, instead of a
    fresh mmap, zeroed page by page on first touch, for every block over the mmap threshold (at
    most 32 MiB: each [B, T, V] fp32 logits tensor at the cpu profile is 32 MiB). Measured on a
    2-core CPU: a forward pass at the cpu profile takes ~40% less CPU time; results are
    bit-identical; freed memory stays with the process (peak RSS can be higher).
    mallopt(3): M_MMAP_MAX (-4) = 0, M_TRIM_THRESHOLD (-1) = 1 GiB. Returns what was done."""
    if not sys.platform.startswith("linux"):
        return "allocator unchanged (not Linux)"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return "allocator unchanged (no glibc mallopt)"
    if mallopt(-4, 0) == 1 and mallopt(-1, 1 << 30) == 1:
        return "glibc malloc: no mmap for large blocks, trim threshold 1 GiB"
    return "allocator unchanged (mallopt refused)"


H100_BF16_PEAK_FLOPS = 989.5e12  # dense bf16, H100 SXM
# Nominal (not measured) fp32 peaks for MFU off CUDA. CPU: per core 2.5 GHz x 64 FLOP/cycle
# (two 512-bit FMA units: 2 x 16 lanes x 2); times the threads torch uses. MPS: a round
# figure for an Apple GPU. Compare MFU only between runs on the same device.
CPU_PEAK_FLOPS_PER_CORE = 2.5e9 * 64
MPS_PEAK_FLOPS = 10e12


def main():
    torch.manual_seed(42)
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    if NEEDS_CUDA and device.type != "cuda":  # at h100 sizes the CPU would run to the hard limit
        print(f"FAIL: profile {PROFILE} needs CUDA: {cuda_problem()}", flush=True)
        sys.exit(1)
    if device.type == "cuda":
        # torch.compile's caches (FX graph, AOTAutograd, Triton) under the cockpit cache, so that
        # they outlive /tmp (the default): a run whose model graph is unchanged (e.g. only the
        # optimizer's hyper-parameters were edited) skips most of the compile.
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(CACHE_DIR / "torchinductor"))
        torch.set_float32_matmul_precision("high")
        autocast = torch.autocast("cuda", dtype=torch.bfloat16)
        peak_flops = H100_BF16_PEAK_FLOPS
    else:  # fp32 on CPU (faster than emulated bf16) and MPS
        autocast = contextlib.nullcontext()
        peak_flops = MPS_PEAK_FLOPS if device.type == "mps" else CPU_PEAK_FLOPS_PER_CORE * torch.get_num_threads()
    sync = {"cuda": torch.cuda.synchronize, "mps": torch.mps.synchronize}.get(device.type, lambda: None)
    excluded_steps = 10 if device.type == "cuda" else 2  # start-up/compilation steps not timed

    tokenizer = Tokenizer.from_directory()
    n_embd = math.ceil(DEPTH * ASPECT_RATIO / HEAD_DIM) * HEAD_DIM  # rounded up to a multiple of HEAD_DIM
    n_head = n_embd // HEAD_DIM
    n_kv_head = N_KV_HEAD or n_head
    assert n_head % n_kv_head == 0, f"N_KV_HEAD={n_kv_head} must divide the {n_head} query heads"
    config = GPTConfig(sequence_len=MAX_SEQ_LEN, vocab_size=tokenizer.get_vocab_size(), n_layer=DEPTH,
                       n_head=n_head, n_kv_head=n_kv_head, n_embd=n_embd, window_pattern=WINDOW_PATTERN)
    model = GPT(config).to(device)
    if device.type == "cuda":  # upstream: embeddings and rotary tables held in bf16
        model.to_bf16_embeddings()
    windows = [b.window for b in model.blocks]
    backend, _ = choose_attention(device, MAX_SEQ_LEN, windows)
    num_params = sum(p.numel() for p in model.parameters())
    flops_per_token = model.num_flops_per_token()
    optimizer = MuonAdamW(model.param_groups(MATRIX_LR, EMBEDDING_LR, UNEMBEDDING_LR, SCALAR_LR,
                                             (ADAM_BETA1, ADAM_BETA2), WEIGHT_DECAY),
                          compiled=device.type == "cuda")  # upstream compiles the steps on CUDA
    tokens_per_pass = DEVICE_BATCH_SIZE * MAX_SEQ_LEN
    assert TOTAL_BATCH_SIZE % tokens_per_pass == 0, \
        f"TOTAL_BATCH_SIZE {TOTAL_BATCH_SIZE} must be a multiple of DEVICE_BATCH_SIZE * MAX_SEQ_LEN = {tokens_per_pass}"
    grad_accum_steps = TOTAL_BATCH_SIZE // tokens_per_pass
    print(f"model: depth {DEPTH}, width {n_embd}, heads {n_head} (kv {n_kv_head}), vocab {config.vocab_size}, "
          f"windows {windows}, {num_params / 1e6:.1f}M parameters")
    print(f"batch: {TOTAL_BATCH_SIZE:,} tokens per step = {grad_accum_steps} x {DEVICE_BATCH_SIZE} x {MAX_SEQ_LEN}; "
          f"device {device.type}; profile {PROFILE}, time budget {TIME_BUDGET:g}s ({BUDGET_CLOCK} clock)")
    train_model = torch.compile(model, dynamic=False) if device.type == "cuda" else model
    train_loader = make_dataloader(tokenizer, DEVICE_BATCH_SIZE, MAX_SEQ_LEN, "train", device=device)
    x, y, epoch = next(train_loader)

    # --- the loop: stop once the timed steps have used TIME_BUDGET seconds ---
    # training_time is on the harness's budget clock (wall or CPU seconds); MFU and tok/sec on the wall
    training_time, wall_time, step, smooth_loss = 0.0, 0.0, 0, 0.0
    while True:
        sync()
        t0, c0 = time.perf_counter(), budget_clock()
        for _ in range(grad_accum_steps):
            with autocast:
                loss = train_model(x, y)
            train_loss = loss.detach()
            (loss / grad_accum_steps).backward()
            x, y, epoch = next(train_loader)
        progress = min(training_time / TIME_BUDGET, 1.0)
        lrm = lr_multiplier(progress)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * lrm
            if group["kind"] == "muon":
                group["momentum"] = muon_momentum(step)
                group["weight_decay"] = weight_decay(progress)
        optimizer.step()
        model.zero_grad(set_to_none=True)
        loss_value = train_loss.item()
        if math.isnan(loss_value) or loss_value > 100:
            print(f"\nFAIL: training loss is {loss_value} at step {step}; stopping (exit status 1)", flush=True)
            sys.exit(1)
        sync()
        dt = time.perf_counter() - t0
        if step >= excluded_steps:
            training_time += budget_clock() - c0
            wall_time += dt
        smooth_loss = 0.9 * smooth_loss + 0.1 * loss_value
        debiased_loss = smooth_loss / (1 - 0.9 ** (step + 1))
        mfu = 100 * flops_per_token * TOTAL_BATCH_SIZE / dt / peak_flops
        remaining = max(0.0, TIME_BUDGET - training_time)
        print(f"\rstep {step:05d} ({100 * progress:.1f}%) | loss: {debiased_loss:.6f} | lrm: {lrm:.2f} | "
              f"dt: {dt * 1000:.0f}ms | tok/sec: {int(TOTAL_BATCH_SIZE / dt):,} | mfu: {mfu:.1f}% | "
              f"epoch: {epoch} | remaining: {remaining:.0f}s", end="", flush=True)
        if step == 0:  # nothing is freed by the collector later on; avoid its pauses
            gc.collect()
            gc.freeze()
            gc.disable()
        step += 1
        if step > excluded_steps and training_time >= TIME_BUDGET:
            break
    print()

    # --- evaluation and summary ---
    if device.type == "cpu":
        tune_cpu_allocator()  # here, not before training: it would change the steps per budget
    model.eval()
    with autocast:
        val_bpb = evaluate_bpb(train_model, tokenizer, DEVICE_BATCH_SIZE)
    if device.type == "cuda":
        peak_memory_mb = torch.cuda.max_memory_allocated() / 1024 ** 2
    else:  # CPU and MPS: peak resident set size of the process (ru_maxrss: KiB on Linux, bytes on macOS)
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak_memory_mb = max_rss / (1024 ** 2 if sys.platform == "darwin" else 1024)
    timed_steps = step - excluded_steps
    mfu_percent = 100 * flops_per_token * TOTAL_BATCH_SIZE * timed_steps / wall_time / peak_flops
    summary = {
        "val_bpb": f"{val_bpb:.6f}",
        "training_seconds": f"{training_time:.1f}",
        "total_seconds": f"{time.time() - T_START:.1f}",
        "peak_vram_mb": f"{peak_memory_mb:.1f}",
        "mfu_percent": f"{mfu_percent:.2f}",
        "total_tokens_M": f"{step * TOTAL_BATCH_SIZE / 1e6:.1f}",
        "num_steps": f"{step}",
        "num_params_M": f"{num_params / 1e6:.1f}",
        "depth": f"{DEPTH}",
        "attention": backend,
        "budget_clock": BUDGET_CLOCK,
    }
    print("---")
    for key, value in summary.items():
        print(f"{key + ':':<18}{value}")


if __name__ == "__main__":
    main()

"""Training throughput of the substrate's own model and optimizer against a plain reference
of the same size, side by side in one process, on CPU.

The substrate is substrate/train.py rendered for a profile (default "cpu": depth 4, width 128,
head dim 64, MAX_SEQ_LEN 256, DEVICE_BATCH_SIZE 8, vocab 4096; substrate/hparams.py and
substrate/prepare.py) and loaded as a module (its training runs only under __main__, so
nothing trains on import; no prepared data is needed). Its step is the one main() runs: a
forward with the loss, backward, MuonAdamW.step (Muon with polar-express Newton-Schulz for
the block matrices, AdamW for the rest), zero_grad.

The reference is written here in straightforward PyTorch at the same depth, width, heads,
sequence length, vocabulary and MLP hidden size (4 x width): token + learned position
embeddings, pre-norm blocks (LayerNorm, one fused qkv Linear, F.scaled_dot_product_attention
with is_causal=True, GELU MLP), final LayerNorm, an untied LM head as the substrate has,
cross-entropy, and torch.optim.AdamW over every parameter.

Both models train on the same random token batches (inputs int64 [B, T], targets the same
rows shifted by one), alternating which goes first each step so that load drift on a shared
machine hits both alike. After --warmup steps each, --steps timed steps each are measured
with time.perf_counter() around the forward, backward, optimizer step and zero_grad (CPU ops
are synchronous, so the wall time of each phase is its cost). The substrate's optimizer step
is split further into Muon groups (and within them the polar-express iterations) and AdamW
groups, by timing wrappers around its functions.

Output: tokens/s of each (B * T tokens per step / mean step seconds), the ratio
substrate / reference, a per-step breakdown in ms, what differs between the two models,
and one line that explains the ratio from the measured breakdown.

    .venv/bin/python bench/substrate_speed.py [--steps 20] [--warmup 3] [--threads N]
                                              [--profile cpu] [--malloc retain]

``--malloc retain`` applies train.py's glibc allocator setting (tune_cpu_allocator: big
tensors from the heap, freed memory kept) before anything is built, to show what it does
to both models' step time; the default leaves the allocator as it is (as in training).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
SUBSTRATE = ROOT / "substrate"


# --- the substrate --------------------------------------------------------------

def load_substrate(profile: str) -> types.ModuleType:
    """substrate/train.py with `profile`'s hyper-parameters, as a module named
    "substrate_train_<profile>" (main() is not run). COCKPIT_PROFILE is set to `profile`
    first so that its `from prepare import ...` computes that profile's constants."""
    os.environ["COCKPIT_PROFILE"] = profile
    if str(SUBSTRATE) not in sys.path:
        sys.path.insert(0, str(SUBSTRATE))
    import hparams  # substrate/hparams.py
    name = f"substrate_train_{profile}"
    module = types.ModuleType(name)
    module.__file__ = str(SUBSTRATE / "train.py")
    sys.modules[name] = module  # dataclasses look their module up here
    exec(compile(hparams.render_train_py(profile), module.__file__, "exec"), module.__dict__)
    return module


def substrate_sizes(mod: types.ModuleType) -> dict:
    """The sizes train.py's main() derives: n_embd (DEPTH * ASPECT_RATIO rounded up to a multiple
    of HEAD_DIM), heads, kv heads, T = MAX_SEQ_LEN, V = VOCAB_SIZE (the tokenizer's n_vocab,
    specials included), B = DEVICE_BATCH_SIZE, grad_accum = TOTAL_BATCH_SIZE / (B * T)."""
    prepare = sys.modules["prepare"]
    n_embd = math.ceil(mod.DEPTH * mod.ASPECT_RATIO / mod.HEAD_DIM) * mod.HEAD_DIM
    n_head = n_embd // mod.HEAD_DIM
    T, B = prepare.MAX_SEQ_LEN, mod.DEVICE_BATCH_SIZE
    return dict(n_layer=mod.DEPTH, n_embd=n_embd, n_head=n_head, n_kv_head=mod.N_KV_HEAD or n_head,
                T=T, V=prepare.VOCAB_SIZE, B=B, grad_accum=mod.TOTAL_BATCH_SIZE // (B * T),
                window_pattern=mod.WINDOW_PATTERN)


def forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, grad_accum: int) -> dict:
    """``grad_accum`` forward + backward passes of ``model`` on inputs/targets int64
    [B, T], gradients accumulated; {"forward": s, "backward": s} summed, "loss": the last."""
    t = {"forward": 0.0, "backward": 0.0}
    for _ in range(grad_accum):
        t0 = time.perf_counter()
        loss = model(x, y)
        t1 = time.perf_counter()
        (loss / grad_accum).backward()
        t["forward"] += t1 - t0
        t["backward"] += time.perf_counter() - t1
    t["loss"] = loss.item()  # the last micro-batch's
    return t


class SubstrateRunner:
    """The substrate's GPT + MuonAdamW; step(x, y) runs one optimizer step like train.py's
    main() (learning-rate multiplier 1, momentum and weight decay of step 0) and returns the
    seconds of each phase."""

    def __init__(self, mod: types.ModuleType, sizes: dict):
        self.mod = mod
        config = mod.GPTConfig(sequence_len=sizes["T"], vocab_size=sizes["V"], n_layer=sizes["n_layer"],
                               n_head=sizes["n_head"], n_kv_head=sizes["n_kv_head"], n_embd=sizes["n_embd"],
                               window_pattern=sizes["window_pattern"])
        self.model = mod.GPT(config)
        self.optimizer = mod.MuonAdamW(self.model.param_groups(
            mod.MATRIX_LR, mod.EMBEDDING_LR, mod.UNEMBEDDING_LR, mod.SCALAR_LR,
            (mod.ADAM_BETA1, mod.ADAM_BETA2), mod.WEIGHT_DECAY))
        for group in self.optimizer.param_groups:
            if group["kind"] == "muon":
                group["momentum"] = mod.muon_momentum(0)
                group["weight_decay"] = mod.weight_decay(0.0)
        self.grad_accum = sizes["grad_accum"]
        self._inner = {"newton_schulz": 0.0, "normuon": 0.0}
        for fn in ("polar_express", "normuon_rescale"):  # _muon_step looks these up in the module
            setattr(mod, fn, self._timed(getattr(mod, fn), "newton_schulz" if fn == "polar_express" else "normuon"))

    def _timed(self, fn, key):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self._inner[key] += time.perf_counter() - t0
            return out
        return wrapper

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """One step on inputs/targets int64 [B, T]; {phase: seconds}."""
        t = forward_backward(self.model, x, y, self.grad_accum)
        self._inner.update(newton_schulz=0.0, normuon=0.0)
        muon = adamw = 0.0
        with torch.no_grad():  # MuonAdamW.step, one group at a time
            for group in self.optimizer.param_groups:
                t0 = time.perf_counter()
                if group["kind"] == "muon":
                    self.optimizer._muon_step(group)
                    muon += time.perf_counter() - t0
                else:
                    self.optimizer._adamw_step(group)
                    adamw += time.perf_counter() - t0
        t0 = time.perf_counter()
        self.model.zero_grad(set_to_none=True)
        t["zero_grad"] = time.perf_counter() - t0
        t["optimizer"] = muon + adamw
        t["  muon"] = muon
        t["    newton-schulz"] = self._inner["newton_schulz"]
        t["    normuon rescale"] = self._inner["normuon"]
        t["    rest of muon"] = muon - self._inner["newton_schulz"] - self._inner["normuon"]
        t["  adamw"] = adamw
        return t


# --- the reference ---------------------------------------------------------------

class RefBlock(nn.Module):
    """Pre-norm transformer block: x + attn(LN(x)), then x + MLP(LN(x)). x: float32 [B, T, C]."""

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd, bias=False)
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=False)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)
        self.ln_2 = nn.LayerNorm(n_embd, bias=False)
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
        self.out = nn.Linear(4 * n_embd, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, D]
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln_2(x))))


class RefGPT(nn.Module):
    """GPT-2-style reference: token + learned position embeddings, RefBlocks, final LayerNorm,
    untied LM head. forward(idx int64 [B, T], targets int64 [B, T]) -> mean cross-entropy (nats)."""

    def __init__(self, n_layer: int, n_embd: int, n_head: int, T: int, V: int):
        super().__init__()
        self.wte = nn.Embedding(V, n_embd)
        self.wpe = nn.Embedding(T, n_embd)
        self.blocks = nn.ModuleList([RefBlock(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd, bias=False)
        self.lm_head = nn.Linear(n_embd, V, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1), device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


class ReferenceRunner:
    """RefGPT + torch.optim.AdamW (lr 3e-4, betas 0.9/0.95, weight decay 0.1, PyTorch's
    default implementation on CPU); step(x, y) -> {phase: seconds}."""

    def __init__(self, sizes: dict):
        self.model = RefGPT(sizes["n_layer"], sizes["n_embd"], sizes["n_head"], sizes["T"], sizes["V"])
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
        self.grad_accum = sizes["grad_accum"]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        t = forward_backward(self.model, x, y, self.grad_accum)
        t0 = time.perf_counter()
        self.optimizer.step()
        t1 = time.perf_counter()
        self.model.zero_grad(set_to_none=True)
        t["zero_grad"] = time.perf_counter() - t1
        t["optimizer"] = t1 - t0
        t["  adamw"] = t1 - t0
        return t


# --- the substrate's extra pieces, each timed alone ----------------------------------

def _fwd_bwd_seconds(build, reps: int) -> float:
    """Mean seconds of forward + backward of build() -> (output, grad_output) over reps runs
    (after one untimed run)."""
    total = 0.0
    for i in range(reps + 1):
        t0 = time.perf_counter()
        out, grad = build()
        out.backward(grad)
        if i:
            total += time.perf_counter() - t0
    return total / reps


def piece_costs(mod: types.ModuleType, sizes: dict, reps: int) -> dict:
    """Forward + backward seconds per training step of the substrate's pieces that the
    reference lacks, each run alone at the model's shapes with train.py's own functions
    (norm, apply_rotary, rotary_tables), fp32 on CPU:
    logit soft-cap (config.softcap * tanh(logits / softcap) over [B, T, V]), rotary + QK-norm
    (q and k [B, T, H, D], every layer), value embeddings (lookup [B, T, kv_dim], gate
    2 * sigmoid(Linear(x[..., :32])) and the mix into v, on the layers that have them),
    residual scalars (resid_lambdas[i] * x + x0_lambdas[i] * x0, every layer)."""
    B, T, V, C, L = sizes["B"], sizes["T"], sizes["V"], sizes["n_embd"], sizes["n_layer"]
    H, KV = sizes["n_head"], sizes["n_kv_head"]
    D = C // H
    config = mod.GPTConfig()
    cap = config.softcap
    cos, sin = mod.rotary_tables(T, D)
    ve_layers = [i for i in range(L) if mod.has_value_embedding(i, L)]
    gen = torch.Generator().manual_seed(1)

    def leaf(*shape):
        return torch.randn(*shape, generator=gen).requires_grad_()

    logits, g_logits = leaf(B, T, V), torch.randn(B, T, V, generator=gen)

    def softcap():
        return cap * torch.tanh(logits / cap), g_logits

    q, k = leaf(B, T, H, D), leaf(B, T, KV, D)

    def rotary_qk_norm():
        outs = [torch.cat([mod.norm(mod.apply_rotary(q, cos, sin)).flatten(),
                           mod.norm(mod.apply_rotary(k, cos, sin)).flatten()]) for _ in range(L)]
        out = torch.stack(outs)
        return out, torch.ones_like(out)

    idx = torch.randint(0, V, (B, T), generator=gen)
    embeds = [nn.Embedding(V, KV * D) for _ in ve_layers]
    gates = [nn.Linear(config.ve_gate_channels, KV, bias=False) for _ in ve_layers]
    x, v = leaf(B, T, C), leaf(B, T, KV, D)

    def value_embeddings():
        outs = []
        for emb, gate in zip(embeds, gates):
            g = 2 * torch.sigmoid(gate(x[..., :config.ve_gate_channels]))
            outs.append(v + g.unsqueeze(-1) * emb(idx).view(B, T, KV, D))
        out = torch.stack(outs)
        return out, torch.ones_like(out)

    lam, lam0, x0 = leaf(L), leaf(L), leaf(B, T, C)

    def residual_scalars():
        h = x
        for i in range(L):
            h = lam[i] * h + lam0[i] * x0
        return h, torch.ones_like(h)

    return {name: _fwd_bwd_seconds(fn, reps) for name, fn in (
        ("logit soft-cap", softcap), ("rotary + QK-norm", rotary_qk_norm),
        ("value embeddings", value_embeddings), ("residual scalars", residual_scalars))}


# --- reporting -------------------------------------------------------------------

def differences(mod: types.ModuleType, sub: SubstrateRunner, ref: ReferenceRunner) -> list[str]:
    """What differs between the two models and optimizers, read off the built objects."""
    m, c = sub.model, sub.model.config
    muon = [p for g in sub.optimizer.param_groups if g["kind"] == "muon" for p in g["params"]]
    adamw = [p for g in sub.optimizer.param_groups if g["kind"] != "muon" for p in g["params"]]
    ve = sum(p.numel() for p in m.value_embeds.parameters())
    n_sub = sum(p.numel() for p in m.parameters())
    n_ref = sum(p.numel() for p in ref.model.parameters())
    shapes = sorted({tuple(p.shape) for p in muon})
    return [
        f"parameters: substrate {n_sub / 1e6:.2f}M, reference {n_ref / 1e6:.2f}M "
        f"(the substrate's value embeddings are {ve / 1e6:.2f}M of its count)",
        f"optimizer: substrate Muon on {len(muon)} block matrices ({sum(p.numel() for p in muon) / 1e6:.2f}M, "
        f"{len(shapes)} shape groups {shapes}: {len(mod.POLAR_EXPRESS_COEFFS)} polar-express iterations each, "
        f"fp32 on CPU, + NorMuon rescale + cautious weight decay) and its own AdamW on {len(adamw)} tensors "
        f"({sum(p.numel() for p in adamw) / 1e6:.2f}M); reference torch.optim.AdamW on all "
        f"{len(list(ref.model.parameters()))} tensors",
        f"value embeddings on layers {sorted(int(k) for k in m.value_embeds)} (an embedding lookup of "
        f"[B, T, {c.n_kv_head * (c.n_embd // c.n_head)}] and a gate Linear({c.ve_gate_channels}, {c.n_kv_head}) each)",
        f"logit soft-cap {c.softcap:g} * tanh(logits / {c.softcap:g}) over [B, T, V] in the forward and backward",
        "rotary embeddings + QK RMSNorm on q and k in every layer (reference: a learned position embedding, added once)",
        "RMSNorm without weights (reference: LayerNorm without bias)",
        "per-layer residual and skip-to-embedding scalars (resid_lambdas, x0_lambdas): 2 extra mul + add per layer",
        "ReLU^2 MLP (reference: GELU), same hidden size 4 x width",
        f"separate q, k, v Linears (reference: one fused qkv Linear); windows {[b.window for b in m.blocks]} "
        "(all full here: plain causal SDPA in both)",
    ]


def summarise(times: list[dict]) -> dict:
    """Mean seconds per phase over the timed steps, plus the median step time."""
    keys = [k for k in times[0] if k != "loss"]
    out = {k: statistics.fmean(t[k] for t in times) for k in keys}
    totals = [t["forward"] + t["backward"] + t["optimizer"] + t["zero_grad"] for t in times]
    out["step"] = statistics.fmean(totals)
    out["step (median)"] = statistics.median(totals)
    return out


def explain(s: dict, r: dict, pieces: dict) -> str:
    """One plain-English line from the measured means: the step-time gap between substrate (s)
    and reference (r) by phase, and the substrate's costliest extra piece (pieces timed alone,
    Muon's Newton-Schulz and the rest of Muon from the step itself) with its share of the gap."""
    gap = s["step"] - r["step"]
    parts = {k: s[k] - r[k] for k in ("forward", "backward", "optimizer")}
    line = (f"substrate runs at {r['step'] / s['step']:.2f}x the reference's tokens/s: step "
            f"{s['step'] * 1e3:.0f} ms vs {r['step'] * 1e3:.0f} ms, the gap {gap * 1e3:+.0f} ms = forward "
            f"{parts['forward'] * 1e3:+.0f}, backward {parts['backward'] * 1e3:+.0f}, optimizer "
            f"{parts['optimizer'] * 1e3:+.0f} ms; the optimizer step is {s['optimizer'] * 1e3:.0f} ms of "
            f"{s['step'] * 1e3:.0f} ms (Newton-Schulz {s['    newton-schulz'] * 1e3:.0f} ms)")
    if gap <= 0:
        return line + "; the substrate is not slower here."
    items = {**pieces, "Muon's Newton-Schulz": s["    newton-schulz"],
             "the rest of Muon": s["  muon"] - s["    newton-schulz"]}
    ranked = sorted(items, key=items.get, reverse=True)
    top = ranked[0]
    line += (f". Of the extra pieces, {top} costs the most: {items[top] * 1e3:.0f} ms a step, "
             f"{100 * items[top] / gap:.0f}% of the gap (then "
             + ", ".join(f"{k} {items[k] * 1e3:.0f} ms" for k in ranked[1:]) + ")")
    share = items[top] / gap
    if share >= 0.5:
        return line + f": {'' if top.startswith('Muon') else 'the '}{top} accounts for most of the gap."
    return line + (f": {'' if top.startswith('Muon') else 'the '}{top} is the largest single piece, "
                   f"but no one piece makes up half of the gap.")


def main(argv=None) -> int:
    """Parse flags, build both models, time them side by side, print the report; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per model first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    parser.add_argument("--profile", default="cpu", help="substrate profile whose sizes are used")
    parser.add_argument("--malloc", choices=("default", "retain"), default="default",
                        help="'retain': train.py's tune_cpu_allocator() first (see the module docstring)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    mod = load_substrate(args.profile)
    if args.malloc == "retain":
        if not hasattr(mod, "tune_cpu_allocator"):
            parser.error("this train.py has no tune_cpu_allocator()")
        print(f"allocator: {mod.tune_cpu_allocator()}")
    sizes = substrate_sizes(mod)
    torch.manual_seed(args.seed)
    sub = SubstrateRunner(mod, sizes)
    ref = ReferenceRunner(sizes)
    gen = torch.Generator().manual_seed(args.seed)
    B, T, V = sizes["B"], sizes["T"], sizes["V"]
    rows = [torch.randint(0, V, (B, T + 1), generator=gen) for _ in range(args.warmup + args.steps)]
    batches = [(r[:, :-1].contiguous(), r[:, 1:].contiguous()) for r in rows]
    tokens = B * T * sizes["grad_accum"]
    print(f"profile {args.profile}: depth {sizes['n_layer']}, width {sizes['n_embd']}, heads {sizes['n_head']} "
          f"(kv {sizes['n_kv_head']}), T {T}, vocab {V}, {tokens:,} tokens/step "
          f"({sizes['grad_accum']} x {B} x {T}); CPU, fp32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{args.warmup} warm-up + {args.steps} timed steps each, same random batches, alternating order\n")

    timed = {"substrate": [], "reference": []}
    runners = {"substrate": sub, "reference": ref}
    for i, (x, y) in enumerate(batches):
        order = ["substrate", "reference"] if i % 2 == 0 else ["reference", "substrate"]
        for name in order:
            t = runners[name].step(x, y)
            if i >= args.warmup:
                timed[name].append(t)
    s, r = summarise(timed["substrate"]), summarise(timed["reference"])
    tps_s, tps_r = tokens / s["step"], tokens / r["step"]
    print(f"tokens/s   substrate {tps_s:10,.0f}   reference {tps_r:10,.0f}   ratio substrate/reference {tps_s / tps_r:.3f}")
    print(f"           (from median steps: {tokens / s['step (median)']:,.0f} vs {tokens / r['step (median)']:,.0f}, "
          f"ratio {r['step (median)'] / s['step (median)']:.3f})\n")
    print(f"{'ms per step (mean)':<24}{'substrate':>10}{'reference':>11}")
    for key in ("forward", "backward", "optimizer", "  muon", "    newton-schulz", "    normuon rescale",
                "    rest of muon", "  adamw", "zero_grad", "step", "step (median)"):
        sv, rv = s.get(key), r.get(key)
        shown = [f"{v * 1e3:10.1f}" if v is not None else f"{'-':>10}" for v in (sv, rv)]
        print(f"{key:<24}{shown[0]}{' ' + shown[1]}")
    pieces = piece_costs(mod, sizes, reps=max(1, min(args.steps, 10)))
    print("\nthe substrate's extra pieces, each timed alone (forward + backward, ms per step):")
    for name, seconds in pieces.items():
        print(f"  {name:<22}{seconds * 1e3:8.1f}")
    print("\nwhat differs (substrate vs reference):")
    for line in differences(mod, sub, ref):
        print(f"  - {line}")
    print(f"\n{explain(s, r, pieces)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())

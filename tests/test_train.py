"""Tests of the substrate's editable file: substrate/train.py and substrate/hparams.py.

train.py is imported as a module (its training runs only under __main__), with
substrate/ on sys.path so that its `from prepare import ...` finds the harness.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SUBSTRATE = Path(__file__).resolve().parent.parent / "substrate"
sys.path.insert(0, str(SUBSTRATE))

import hparams  # noqa: E402
import train  # noqa: E402

STEP_LINE = re.compile(
    r"^step (\d{5}) \((\d+\.\d)%\) \| loss: (\d+\.\d{6}) \| lrm: (\d+\.\d{2}) \| dt: (\d+)ms \| "
    r"tok/sec: (\d{1,3}(?:,\d{3})*) \| mfu: (\d+\.\d)% \| epoch: (\d+) \| remaining: (\d+)s$")
SUMMARY_KEYS = ["val_bpb", "training_seconds", "total_seconds", "peak_vram_mb", "mfu_percent",
                "total_tokens_M", "num_steps", "num_params_M", "depth", "attention",
                "budget_clock"]


def small_model(n_layer=3, n_head=2, n_kv_head=2, n_embd=64, T=32, vocab=97, pattern="SL"):
    torch.manual_seed(0)
    config = train.GPTConfig(sequence_len=T, vocab_size=vocab, n_layer=n_layer, n_head=n_head,
                             n_kv_head=n_kv_head, n_embd=n_embd, window_pattern=pattern)
    return train.GPT(config)


# --- optimizer ------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(256, 64), (64, 256), (3, 128, 48)])
def test_polar_express_singular_values_near_one(shape):
    # Measured on random Gaussian matrices (fp32): singular values in [0.86, 1.14] for
    # these aspect ratios. (Square Gaussian matrices have singular values near 0 that
    # five iterations cannot lift, so they are not used here.)
    torch.manual_seed(0)
    X = train.polar_express(torch.randn(shape))
    assert X.shape == torch.Size(shape)
    s = torch.linalg.svdvals(X)
    assert s.min() > 0.7 and s.max() < 1.2, (s.min().item(), s.max().item())


def test_optimizer_groups_and_a_step_lowers_the_loss():
    model = small_model()
    optimizer = train.MuonAdamW(model.param_groups(0.04, 0.6, 0.004, 0.5, (0.8, 0.95), 0.2))
    kinds = [g["kind"] for g in optimizer.param_groups]
    assert kinds.count("adamw") == 4
    for group in optimizer.param_groups:
        if group["kind"] == "muon":
            assert all(p.ndim == 2 for p in group["params"])
            assert len({p.shape for p in group["params"]}) == 1
    idx = torch.randint(0, 97, (4, 32))
    losses = []
    for _ in range(5):
        loss = model(idx, idx)
        loss.backward()
        optimizer.step()
        model.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_optimizer_is_built_without_importing_dynamo():
    # torch.optim.Optimizer.add_param_group's wrapper imports torch._dynamo (~1 s of start-up
    # on a 2-core CPU); MuonAdamW calls the wrapped method, keeping its checks.
    code = ("import sys, torch, train\n"
            "config = train.GPTConfig(sequence_len=32, vocab_size=97, n_layer=2, n_head=2, n_kv_head=2, n_embd=64)\n"
            "model = train.GPT(config)\n"
            "opt = train.MuonAdamW(model.param_groups(0.04, 0.6, 0.004, 0.5, (0.8, 0.95), 0.2))\n"
            "assert len(opt.param_groups) > 4 and all(isinstance(g['params'], list) for g in opt.param_groups)\n"
            "print('torch._dynamo' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=SUBSTRATE, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    with pytest.raises(ValueError, match="non-leaf"):
        train.MuonAdamW([dict(kind="adamw", params=[torch.ones(2, requires_grad=True) * 2], lr=0.1)])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_cpu_allocator_keeps_results_bit_identical():
    # Process-wide, so in a child process: the same model and batch give the same loss bits
    # before and after the allocator setting.
    code = ("import torch, train\n"
            "torch.manual_seed(0)\n"
            "config = train.GPTConfig(sequence_len=64, vocab_size=512, n_layer=2, n_head=2, n_kv_head=2, n_embd=64)\n"
            "model = train.GPT(config)\n"
            "x = torch.randint(0, 512, (4, 64))\n"
            "with torch.no_grad():\n"
            "    before = model(x, x, reduction='none')\n"
            "    print(train.tune_cpu_allocator())\n"
            "    after = [model(x, x, reduction='none') for _ in range(3)]\n"
            "assert all(torch.equal(before, a) for a in after)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=SUBSTRATE, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in ("glibc malloc: no mmap for large blocks, trim threshold 1 GiB",
                                "allocator unchanged (no glibc mallopt)")


def test_schedules():
    assert train.lr_multiplier(0.0) == 1.0
    assert train.lr_multiplier(0.49) == 1.0
    assert train.lr_multiplier(0.75) == pytest.approx(0.5)
    assert train.lr_multiplier(1.0) == pytest.approx(0.0)
    assert train.muon_momentum(0) == pytest.approx(0.85)
    assert train.muon_momentum(150) == pytest.approx(0.90)
    assert train.muon_momentum(1000) == pytest.approx(0.95)
    assert train.weight_decay(0.0) == pytest.approx(0.2)
    assert train.weight_decay(1.0) == pytest.approx(0.0)


# --- model -----------------------------------------------------------------------

def test_forward_shapes_and_reductions():
    model = small_model(n_kv_head=1)  # grouped-query attention: 2 query heads share 1 kv head
    idx = torch.randint(0, 97, (2, 32))
    assert model(idx).shape == (2, 32, 97)
    loss = model(idx, idx)
    per_token = model(idx, idx, reduction="none")
    assert loss.ndim == 0 and per_token.shape == (2, 32)
    assert per_token.mean().item() == pytest.approx(loss.item(), rel=1e-5)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(97.0)).item(), rel=0.05)  # ~uniform at init


def test_value_embeddings_on_alternating_layers_last_included():
    assert [train.has_value_embedding(i, 4) for i in range(4)] == [False, True, False, True]
    assert [train.has_value_embedding(i, 3) for i in range(3)] == [True, False, True]
    model = small_model(n_layer=3)
    assert sorted(model.value_embeds) == ["0", "2"]
    assert model.blocks[1].attn.ve_gate is None


def test_value_embedding_gate_is_neutral_at_init():
    model = small_model()
    with torch.no_grad():  # let attention reach the output (its projection starts at zero)
        for block in model.blocks:
            block.attn.c_proj.weight.normal_(std=0.1)
    idx = torch.randint(0, 97, (2, 32))
    x = torch.randn(2, 32, 64)
    gate = model.blocks[0].attn.ve_gate
    assert torch.equal(2 * torch.sigmoid(gate(x[..., :32])), torch.ones(2, 32, 2))
    at_init = model(idx)

    class GateOne(torch.nn.Module):  # 2 * sigmoid(0) = 1 exactly: V + value embedding
        def forward(self, inp):
            return torch.zeros(*inp.shape[:-1], 2)

    gates = [block.attn.ve_gate for block in model.blocks]
    for block in model.blocks:
        if block.attn.ve_gate is not None:
            block.attn.ve_gate = GateOne()
    assert torch.equal(model(idx), at_init)
    for block, g in zip(model.blocks, gates):  # and the gate is live once trained away from zero
        block.attn.ve_gate = g
    with torch.no_grad():
        gates[0].weight.normal_()
    assert not torch.allclose(model(idx), at_init)


def test_layer_windows():
    assert train.layer_windows("SSSL", 8, 2048) == [1024, 1024, 1024, 2048] * 2
    assert train.layer_windows("S", 3, 256) == [128, 128, 256]  # last layer always full
    assert train.layer_windows("l", 2, 64) == [64, 64]
    with pytest.raises(ValueError):
        train.layer_windows("SXL", 4, 64)


def test_banded_mask_is_causal_and_banded():
    T, window = 10, 3
    mask = train.banded_causal_mask(T, window, torch.device("cpu"))
    assert mask.shape == (T, T) and mask.dtype == torch.bool
    for i in range(T):
        for j in range(T):
            assert mask[i, j].item() == (i - window <= j <= i)
    assert mask.sum(dim=1).tolist() == [min(i + 1, window + 1) for i in range(T)]


def test_sdpa_windowed_attention_matches_reference():
    torch.manual_seed(0)
    B, T, H, D, window = 2, 12, 2, 8, 4
    q, k, v = (torch.randn(B, T, H, D) for _ in range(3))
    scores = torch.einsum("bthd,bshd->bhts", q, k) / D ** 0.5
    allowed = train.banded_causal_mask(T, window, q.device)
    reference = torch.einsum("bhts,bshd->bthd", scores.masked_fill(~allowed, float("-inf")).softmax(-1), v)
    assert torch.allclose(train.attention(q, k, v, window), reference, atol=1e-5)
    full = train.attention(q, k, v, T)  # full window = plain causal attention
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    reference = torch.einsum("bhts,bshd->bthd", scores.masked_fill(~causal, float("-inf")).softmax(-1), v)
    assert torch.allclose(full, reference, atol=1e-5)


def test_flops_per_token_counts_matmuls_and_attention():
    model = small_model(n_layer=2, T=32, pattern="SL")
    d = 64
    matmuls = 2 * (4 * d * d + 8 * d * d) + 1 * (2 * 32) + d * 97  # blocks, one ve gate, lm head
    attention = 12 * d * (16 + 32)
    assert model.num_flops_per_token() == 6 * matmuls + attention


# --- hyper-parameters and rendering ----------------------------------------------

def _hyperparameter_lines(text):
    """Module-level `NAME = literal` assignments of UPPER_CASE names, in order, with line numbers."""
    out = []
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name.isupper():
                try:
                    out.append((name, ast.literal_eval(node.value), node.lineno))
                except ValueError:
                    pass
    return out


def test_train_py_carries_the_h100_values_in_one_section():
    text = (SUBSTRATE / "train.py").read_text()
    assert hparams.render_train_py("h100") == text
    found = {name: (value, line) for name, value, line in _hyperparameter_lines(text)}
    lines = sorted(found[name][1] for name in hparams.HPARAMS["h100"])
    section = text.splitlines()[lines[0] - 1:lines[-1]]
    assert all(not s.strip() or s.startswith("#") or re.match(r"[A-Z0-9_]+ = ", s) for s in section)
    for name, value in hparams.HPARAMS["h100"].items():
        assert found[name][0] == value, name
        assert "#" in text.splitlines()[found[name][1] - 1], f"{name} needs a comment"


@pytest.mark.parametrize("profile", ["cpu", "tiny"])
def test_render_substitutes_values_and_stays_valid_python(profile):
    text = hparams.render_train_py(profile)
    found = {name: value for name, value, _ in _hyperparameter_lines(text)}
    for name, value in hparams.HPARAMS[profile].items():
        assert found[name] == value, name
    assert 'WINDOW_PATTERN = "' in text
    assert text.count("\n") == (SUBSTRATE / "train.py").read_text().count("\n")


def test_render_errors_are_clear():
    with pytest.raises(ValueError, match="unknown profile"):
        hparams.render_train_py("a100")
    with pytest.raises(ValueError, match="NOT_A_NAME"):
        hparams.substitute("DEPTH = 8  # layers\n", {"NOT_A_NAME": 1})
    assert hparams.substitute("DEPTH = 8      # layers\n", {"DEPTH": 12}) == "DEPTH = 12     # layers\n"


# --- end to end ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_workspace(tmp_path_factory):
    """A directory with prepare.py and the tiny train.py, its data prepared; and the env to run in."""
    work = tmp_path_factory.mktemp("tiny")
    shutil.copy(SUBSTRATE / "prepare.py", work / "prepare.py")
    (work / "train.py").write_text(hparams.render_train_py("tiny"))
    env = dict(os.environ, COCKPIT_PROFILE="tiny", COCKPIT_TIME_BUDGET="5",
               COCKPIT_CACHE_DIR=str(work / "cache"), PYTHONUNBUFFERED="1")
    prep = subprocess.run([sys.executable, "prepare.py"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    return work, env


@pytest.mark.slow
def test_tiny_training_run_end_to_end(tiny_workspace):
    work, env = tiny_workspace
    run = subprocess.run([sys.executable, "-u", "train.py"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    chunks = [c for c in re.split(r"\r|\n", run.stdout) if c]
    steps = [STEP_LINE.match(c) for c in chunks if c.startswith("step ")]
    assert steps and all(steps), [c for c in chunks if c.startswith("step ")][:3]
    assert [int(m.group(1)) for m in steps] == list(range(len(steps)))
    assert float(steps[-1].group(3)) < float(steps[0].group(3))
    block = run.stdout[run.stdout.rindex("\n---\n") + 5:].splitlines()
    summary = dict(re.match(r"^(\w+):\s+(\S+)$", line).groups() for line in block)
    assert list(summary) == SUMMARY_KEYS
    assert float(summary["val_bpb"]) > 0
    assert float(summary["training_seconds"]) >= 5
    assert int(summary["num_steps"]) == len(steps)
    assert int(summary["depth"]) == hparams.HPARAMS["tiny"]["DEPTH"]
    assert summary["attention"] == "sdpa-masked"  # tiny's "SL" windows on the CPU: the dense band mask
    assert summary["budget_clock"] == "cpu"  # tiny counts CPU seconds (prepare.budget_clock)
    assert "attention: sdpa-masked (device cpu)" in chunks


@pytest.mark.slow
def test_nan_loss_fails_fast_with_status_1(tiny_workspace):
    work, env = tiny_workspace
    text = (work / "train.py").read_text()
    assert text.count("loss_value = train_loss.item()") == 1
    (work / "train_nan.py").write_text(text.replace("loss_value = train_loss.item()", "loss_value = float('nan')"))
    run = subprocess.run([sys.executable, "-u", "train_nan.py"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert "FAIL: training loss is nan at step 0" in run.stdout
    assert "\n---\n" not in run.stdout


# --- attention backends (the kernel loader faked: there is no GPU here) -------------------

class FakeFA3:
    """A stand-in FA3 interface: flash_attn_func computed by the dense reference, or broken."""

    def __init__(self, broken=False):
        self.broken, self.calls = broken, 0

    def flash_attn_func(self, q, k, v, causal, window_size):
        self.calls += 1
        if self.broken:
            raise RuntimeError("no kernel image is available for execution on the device")
        T, left = q.size(1), window_size[0]
        mask = train.banded_causal_mask(T, left if left >= 0 else T, q.device)
        y = torch.nn.functional.scaled_dot_product_attention(
            *(t.transpose(1, 2).float() for t in (q, k, v)), attn_mask=mask)
        return y.transpose(1, 2).to(q.dtype), None  # FA3 returns (out, lse)


class FakeHub:
    """get_kernel with per-repo outcomes; records each call's arguments."""

    def __init__(self, outcomes):
        self.outcomes, self.calls = outcomes, []

    def __call__(self, repo, version=None, trust_remote_code=False):
        self.calls.append((repo, version, trust_remote_code))
        outcome = self.outcomes[repo]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def hopper(monkeypatch):
    """A CPU standing in for an sm_90 CUDA device (device.type is what the loader checks)."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    return torch.device("cpu")


def test_fa3_loader_tries_varunneal_then_kernels_community_with_their_published_versions(hopper):
    good = FakeFA3()
    hub = FakeHub({"varunneal/flash-attention-3": FileNotFoundError("Version 1 of 'varunneal/flash-attention-3' "
                                                                    "is not available in the local cache"),
                   "kernels-community/flash-attn3": good})
    module, found = train.load_flash_attention(hopper, get_kernel=hub)
    assert module is good and found == "fa3:kernels-community/flash-attn3"
    assert hub.calls == [("varunneal/flash-attention-3", 1, True), ("kernels-community/flash-attn3", 1, False)]
    assert good.calls == 1  # the smoke call ran before the kernel was trusted


def test_fa3_loader_takes_varunneal_first_on_hopper_and_skips_it_elsewhere(hopper, monkeypatch):
    hub = FakeHub({"varunneal/flash-attention-3": FakeFA3(), "kernels-community/flash-attn3": FakeFA3()})
    assert train.load_flash_attention(hopper, get_kernel=hub)[1] == "fa3:varunneal/flash-attention-3"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    hub.calls.clear()
    assert train.load_flash_attention(hopper, get_kernel=hub)[1] == "fa3:kernels-community/flash-attn3"
    assert [c[0] for c in hub.calls] == ["kernels-community/flash-attn3"]  # varunneal is Hopper-only


def test_a_kernel_that_loads_but_fails_its_smoke_call_is_not_used(hopper):
    hub = FakeHub({"varunneal/flash-attention-3": FakeFA3(broken=True),
                   "kernels-community/flash-attn3": FakeFA3(broken=True)})
    module, reasons = train.load_flash_attention(hopper, get_kernel=hub)
    assert module is None
    assert reasons == ["varunneal/flash-attention-3: no kernel image is available for execution on the device",
                       "kernels-community/flash-attn3: no kernel image is available for execution on the device"]


def test_a_kernel_that_computes_garbage_fails_the_smoke_call(hopper):
    class Garbage(FakeFA3):
        def flash_attn_func(self, q, k, v, causal, window_size):
            return torch.zeros_like(q), None
    hub = FakeHub({"varunneal/flash-attention-3": Garbage(), "kernels-community/flash-attn3": FakeFA3()})
    module, found = train.load_flash_attention(hopper, get_kernel=hub)
    assert found == "fa3:kernels-community/flash-attn3"


def test_choose_attention_names_the_backend_and_the_reasons(hopper, capsys, monkeypatch):
    cuda = torch.device("cuda")  # never touched: the loader and flex are faked
    fa3 = FakeFA3()
    assert train.choose_attention(cuda, 64, [32, 64], load=lambda d: (fa3, "fa3:x/y")) == ("fa3:x/y", "")
    assert train.FLASH_ATTN is fa3 and capsys.readouterr().out == "attention: fa3:x/y\n"
    # no FA3: flex block masks when they build and compile; the reasons say why not FA3
    monkeypatch.setattr(train, "flex_ready", lambda T, windows, device: {(T, 32): "mask"})
    backend, reason = train.choose_attention(cuda, 64, [32, 64], load=lambda d: (None, ["a/b: offline"]))
    assert (backend, reason) == ("flex", "FlashAttention-3 unavailable: a/b: offline")
    assert train.FLASH_ATTN is None and train.BLOCK_MASKS == {(64, 32): "mask"}
    assert capsys.readouterr().out == "attention: flex (FlashAttention-3 unavailable: a/b: offline)\n"
    # flex failing too: the dense band mask, and both reasons
    def no_flex(T, windows, device):
        raise RuntimeError("flex_attention needs Triton")
    monkeypatch.setattr(train, "flex_ready", no_flex)
    backend, reason = train.choose_attention(cuda, 64, [32, 64], load=lambda d: (None, ["a/b: offline"]))
    assert backend == "sdpa-masked" and train.BLOCK_MASKS == {}
    assert reason.endswith("; flex_attention unavailable: flex_attention needs Triton")
    # every layer full-causal: plain SDPA needs no mask
    assert train.choose_attention(cuda, 64, [64, 64], load=lambda d: (None, ["a/b: offline"]))[0] == "sdpa"
    # off CUDA: no loader call at all
    def never(device):
        raise AssertionError("the FA3 loader ran off CUDA")
    assert train.choose_attention(torch.device("cpu"), 64, [32, 64], load=never) == ("sdpa-masked", "device cpu")


def test_flex_block_masks_give_the_same_attention_as_the_dense_band(monkeypatch):
    from torch.nn.attention.flex_attention import flex_attention
    torch.manual_seed(0)
    B, T, H, D, window = 2, 256, 2, 16, 100
    q, k, v = (torch.randn(B, T, H, D) for _ in range(3))
    dense = train.attention(q, k, v, window)
    masks = train.flex_block_masks(T, [window, T], torch.device("cpu"))
    assert list(masks) == [(T, window)]  # full-causal layers need no block mask
    monkeypatch.setattr(train, "BLOCK_MASKS", masks)
    monkeypatch.setattr(train, "_COMPILED_FLEX", flex_attention)  # eager flex: CPU has no fused kernel
    assert torch.allclose(train.attention(q, k, v, window), dense, atol=1e-5)
    # grouped-query attention through flex too
    k2, v2 = k[:, :, :1], v[:, :, :1]
    monkeypatch.setattr(train, "BLOCK_MASKS", {})
    dense_gqa = train.attention(q, k2, v2, window)
    monkeypatch.setattr(train, "BLOCK_MASKS", masks)
    assert torch.allclose(train.attention(q, k2, v2, window), dense_gqa, atol=1e-5)


def test_compiled_optimizer_arguments_are_0d_tensors_and_match_the_eager_step():
    model_a, model_b = small_model(), small_model()
    groups = lambda m: m.param_groups(0.04, 0.6, 0.004, 0.5, (0.8, 0.95), 0.2)  # noqa: E731
    eager = train.MuonAdamW(groups(model_a))
    tensors = train.MuonAdamW(groups(model_b))
    tensors._scalars = [torch.tensor(0.0) for _ in range(6)]  # the compiled path's arguments, run eagerly
    x = torch.randint(0, 97, (2, 32))
    for model, opt in ((model_a, eager), (model_b, tensors)):
        model(x, x).backward()
        opt.step()
    # fp32 0-D tensors instead of Python floats: the same step up to fp32 rounding (measured <= 5e-7)
    assert max((a - b).abs().max().item() for a, b in zip(model_a.parameters(), model_b.parameters())) < 2e-6
    assert tensors._scalars[1].item() > 0  # the scalars really went through the tensors


def test_bf16_embeddings_keep_the_blocks_fp32():
    model = small_model().to_bf16_embeddings()
    assert model.wte.weight.dtype == torch.bfloat16 and model.cos.dtype == torch.bfloat16
    assert all(ve.weight.dtype == torch.bfloat16 for ve in model.value_embeds.values())
    assert model.blocks[0].attn.c_q.weight.dtype == torch.float32 and model.lm_head.weight.dtype == torch.float32


def test_train_py_sets_upstreams_allocator_config_before_importing_torch():
    text = (SUBSTRATE / "train.py").read_text()
    tree = ast.parse(text)
    first_torch = next(n.lineno for n in tree.body if isinstance(n, ast.Import) and n.names[0].name == "torch")
    assert text.index('"PYTORCH_ALLOC_CONF", "expandable_segments:True"') < text.index("\nimport torch")
    assert any(isinstance(n, ast.Expr) and "PYTORCH_ALLOC_CONF" in ast.unparse(n) and n.lineno < first_torch
               for n in tree.body)


@pytest.mark.slow
def test_a_profile_that_needs_cuda_stops_at_once_without_it(tiny_workspace):
    work, env = tiny_workspace
    run = subprocess.run([sys.executable, "-u", "train.py"], cwd=work, env={**env, "COCKPIT_PROFILE": "h100"},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("FAIL: profile h100 needs CUDA: torch ") and "CPU-only build" in last, last
    assert "step 0" not in run.stdout  # it never trained

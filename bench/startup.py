"""Where one training run's wall time goes: start-up (process start to the first counted
training step) and the final evaluation, for the real substrate.

For each variant (the working tree's substrate, and with ``--rev REV`` also the substrate
files of a git revision, for a before/after comparison) the script makes a temporary
workspace as ``cockpit init`` would (prepare.py copied, train.py rendered for the profile
by substrate/hparams.py), prepares the data into a temporary cache (COCKPIT_CACHE_DIR),
then runs ``python -u train.py`` with COCKPIT_TIME_BUDGET shortened and timestamps every
output line (split on ``\\r`` and ``\\n``) from outside, on ``time.monotonic()``, from
just before the process is started. train.py's output is not changed for this: the
phases are read off lines it prints anyway (docs/CONTRACTS.md, "Run output"):

    start -> "attention: ..."       interpreter, imports (torch, prepare's dependencies), device pick
    "attention" -> "model: ..."     tokenizer load, model build, optimizer build
    "model" -> "step 00000"         (torch.compile set-up on CUDA), data loader warm-up (first
                                    batch), step 0 (on CUDA: its compilation)
    "step 00000" -> first counted   the other start-up steps not counted in training_seconds
                                    (train.py: 2 on CPU, 10 on CUDA)
    last step line -> "---"         the final evaluation (evaluate_bpb) and the peak-memory read
    "---" -> exit                   summary print and interpreter shut-down

Separately it times the imports alone (``python -c pass``, ``-c "import torch"``,
``-c "import prepare"`` in the workspace), once per run, so the first phase can be split.

``--eval-check`` also loads prepare.py of each variant in this process and scores the same
seeded model (train.py's GPT at the profile's sizes, trained ``--eval-check-steps`` steps
on the train loader with the substrate's optimizer) with each variant's evaluate_bpb, at
the batch size train.py passes (DEVICE_BATCH_SIZE), printing val_bpb, the difference and
the seconds each took: a deterministic check that the evaluation gives the same number.

Run (2 runs each, working tree against the last commit):

    .venv/bin/python bench/startup.py --runs 2 --rev HEAD --eval-check

Flags: --profile (cpu), --budget (training seconds, default 5), --runs, --rev, --eval-check,
--eval-check-steps, --threads (OMP_NUM_THREADS for the runs: 1 is steadier on a shared
machine), --keep (leave the temporary folder and print its path).
All times are wall-clock seconds on this machine; other load on the machine shows up in them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBSTRATE = ROOT / "substrate"
sys.path.insert(0, str(SUBSTRATE))

import hparams  # noqa: E402  (substrate/hparams.py: renders train.py for a profile)

STEP = re.compile(r"^step (\d+) ")
DEVICE = re.compile(r"\bdevice (\w+)")
DT = re.compile(r"\| dt: (\d+)ms")
EXCLUDED_STEPS = {"cuda": 10}  # steps train.py leaves out of training_seconds; 2 elsewhere


def substrate_sources(rev: str | None) -> tuple[str, str]:
    """(prepare.py text, train.py text) of the working tree (rev None) or of git revision rev."""
    if rev is None:
        return (SUBSTRATE / "prepare.py").read_text(encoding="utf-8"), (SUBSTRATE / "train.py").read_text(encoding="utf-8")

    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
    return show("substrate/prepare.py"), show("substrate/train.py")


def make_workspace(folder: Path, rev: str | None, profile: str) -> Path:
    """A workspace in `folder` with prepare.py and the profile's train.py of `rev`; returns folder."""
    prepare_text, train_text = substrate_sources(rev)
    folder.mkdir(parents=True)
    (folder / "prepare.py").write_text(prepare_text, encoding="utf-8")
    (folder / "train.py").write_text(hparams.render_train_py(profile, source=train_text), encoding="utf-8")
    return folder


THREADS: dict = {}  # {"OMP_NUM_THREADS": "N"} when --threads is given


def run_env(folder: Path, profile: str, budget: float) -> dict:
    """The environment a run gets: the profile, the workspace's own cache, the budget, unbuffered
    output, and OMP_NUM_THREADS (torch's intra-op threads) when --threads is given."""
    return {**os.environ, "COCKPIT_PROFILE": profile, "COCKPIT_CACHE_DIR": str(folder / "cache"),
            "COCKPIT_TIME_BUDGET": f"{budget:g}", "PYTHONUNBUFFERED": "1", **THREADS}


def timed_lines(argv: list[str], cwd: Path, env: dict) -> tuple[list[tuple[float, str]], float, int]:
    """Run argv; return ([(seconds since start, line)], seconds to exit, exit status). Lines are
    split on \\r and \\n and stamped when their terminator arrives (the last one at exit)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, pending = [], b""
    while True:
        chunk = os.read(proc.stdout.fileno(), 65536)
        now = time.monotonic() - t0
        if not chunk:
            break
        pending += chunk
        parts = re.split(rb"\r|\n", pending)
        pending = parts.pop()
        lines += [(now, p.decode("utf-8", "replace")) for p in parts if p.strip()]
    status = proc.wait()
    end = time.monotonic() - t0
    if pending.strip():
        lines.append((end, pending.decode("utf-8", "replace")))
    return lines, end, status


def first(lines, predicate):
    """Time of the first line for which predicate(text) holds, else None."""
    return next((t for t, text in lines if predicate(text)), None)


def phases(lines: list[tuple[float, str]], end: float) -> dict:
    """Seconds per phase (see the module docstring) from a run's timestamped lines, plus
    (keys starting with "_") train.py's dt of the first steps and figures of its summary."""
    steps = [(t, int(STEP.match(text).group(1))) for t, text in lines if STEP.match(text)]
    dts = [m.group(1) for m in (DT.search(text) for _, text in lines if STEP.match(text)) if m]
    batch = next(((t, text) for t, text in lines if text.startswith("batch:")), (None, ""))
    device = (DEVICE.search(batch[1]) or [None, "cpu"])[1]
    excluded = EXCLUDED_STEPS.get(device, 2)
    t_attention = first(lines, lambda s: s.startswith("attention:"))
    t_model = first(lines, lambda s: s.startswith("model:"))
    t_summary = first(lines, lambda s: s.strip() == "---")
    t_step0 = steps[0][0] if steps else None
    t_counted = next((t for t, k in steps if k == excluded - 1), None)  # the first counted step starts here
    summary = {}
    if t_summary is not None:
        after = [text for t, text in lines if t >= t_summary]
        summary = dict(m.groups() for m in (re.match(r"^(\w+):\s+(\S+)$", s) for s in after) if m)

    def span(a, b):
        return None if a is None or b is None else b - a
    return {
        "imports + device": t_attention,
        "tokenizer + model + optimizer": span(t_attention, t_model),
        "loader warm-up + step 0": span(t_model, t_step0),
        f"steps 1..{excluded - 1} (not counted)": span(t_step0, t_counted),
        "START-UP: to the first counted step": t_counted,
        "training (counted steps)": span(t_counted, steps[-1][0] if steps else None),
        "EVAL: last step -> ---": span(steps[-1][0] if steps else None, t_summary),
        "summary + exit": span(t_summary, end),
        "total wall": end,
        "_step_dt_ms": "/".join(dts[:excluded + 1]),  # train.py's dt of steps 0..excluded
        "_peak_vram_mb": summary.get("peak_vram_mb"),
        "_val_bpb": summary.get("val_bpb"),
        "_num_steps": summary.get("num_steps"),
        "_total_seconds": summary.get("total_seconds"),
    }


def import_probes(folder: Path, env: dict) -> dict:
    """Wall seconds of `python -c pass`, `-c "import torch"` and `-c "import prepare"` in folder."""
    out = {}
    for name, code in (("python -c pass", "pass"), ("import torch", "import torch"),
                       ("import prepare (torch included)", "import prepare")):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, check=True)
        out[name] = time.monotonic() - t0
    return out


def load_prepare(folder: Path, env: dict, name: str):
    """prepare.py of a workspace as a fresh module, its constants computed under env."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        spec = importlib.util.spec_from_file_location(name, folder / "prepare.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


def load_train(folder: Path, env: dict, prepare_module, name: str):
    """train.py of a workspace as a module (main() not run), importing the given prepare module."""
    sys.modules["prepare"] = prepare_module  # train.py does `from prepare import ...`
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        spec = importlib.util.spec_from_file_location(name, folder / "train.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


def eval_check(workspaces: dict, profile: str, steps: int) -> None:
    """Score one seeded, briefly trained model with each variant's evaluate_bpb (as its train.py
    would call it: at DEVICE_BATCH_SIZE, after its tune_cpu_allocator() if it has one), all on
    the first variant's prepared data and tokenizer (so that only the code differs); print
    val_bpb, the difference to the first variant scored, and seconds (2 tries each).
    Variants without the allocator setting run first: it is process-wide and cannot be undone."""
    import torch
    if THREADS:
        torch.set_num_threads(int(THREADS["OMP_NUM_THREADS"]))
    names = list(workspaces)
    env = run_env(workspaces[names[0]], profile, 5)  # one data cache (tokenizer, val shard) for all
    envs = {n: env for n in names}
    preps = {n: load_prepare(workspaces[n], envs[n], f"prepare_{i}") for i, n in enumerate(names)}
    trains = {n: load_train(workspaces[n], envs[n], preps[n], f"train_{i}") for i, n in enumerate(names)}
    order = sorted(names, key=lambda n: hasattr(trains[n], "tune_cpu_allocator"))
    train, prep = trains[names[0]], preps[names[0]]  # the model: the working tree's
    tok = prep.Tokenizer.from_directory()
    torch.manual_seed(42)
    n_embd = -(-train.DEPTH * train.ASPECT_RATIO // train.HEAD_DIM) * train.HEAD_DIM
    n_head = n_embd // train.HEAD_DIM
    config = train.GPTConfig(sequence_len=prep.MAX_SEQ_LEN, vocab_size=tok.get_vocab_size(), n_layer=train.DEPTH,
                             n_head=n_head, n_kv_head=train.N_KV_HEAD or n_head, n_embd=n_embd,
                             window_pattern=train.WINDOW_PATTERN)
    model = train.GPT(config)
    opt = train.MuonAdamW(model.param_groups(train.MATRIX_LR, train.EMBEDDING_LR, train.UNEMBEDDING_LR,
                                             train.SCALAR_LR, (train.ADAM_BETA1, train.ADAM_BETA2),
                                             train.WEIGHT_DECAY))
    loader = prep.make_dataloader(tok, train.DEVICE_BATCH_SIZE, prep.MAX_SEQ_LEN, "train")
    for _ in range(steps):
        x, y, _ = next(loader)
        model(x, y).backward()
        opt.step()
        model.zero_grad(set_to_none=True)
    model.eval()
    print(f"\neval check: one model (seed 42, {steps} training steps), each variant's evaluate_bpb "
          f"at batch size {train.DEVICE_BATCH_SIZE}, {prep.EVAL_TOKENS:,} tokens, {torch.get_num_threads()} threads")
    base = None
    for n in order:
        tune = getattr(trains[n], "tune_cpu_allocator", None)
        setting = tune() if tune else "allocator as it is"
        for attempt in (1, 2):
            t0, c0 = time.perf_counter(), time.process_time()
            bpb = preps[n].evaluate_bpb(model, preps[n].Tokenizer.from_directory(), train.DEVICE_BATCH_SIZE)
            seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
            base = bpb if base is None else base
            print(f"  {n:<14} val_bpb {bpb:.12f}  (diff {bpb - base:+.1e})  {seconds:6.2f} s wall, "
                  f"{cpu:6.2f} s CPU  [try {attempt}; {setting}]", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", choices=sorted(hparams.HPARAMS))
    parser.add_argument("--budget", type=float, default=5.0, help="COCKPIT_TIME_BUDGET for the runs (s)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each variant (interleaved)")
    parser.add_argument("--rev", help="also run the substrate of this git revision (e.g. HEAD)")
    parser.add_argument("--eval-check", action="store_true", help="score one seeded model with each variant")
    parser.add_argument("--eval-check-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for the runs (and this process's "
                        "eval check); default: torch's own choice (one per core)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    if args.threads:
        THREADS["OMP_NUM_THREADS"] = str(args.threads)

    tmp = Path(tempfile.mkdtemp(prefix="cockpit-startup-"))
    variants = {"working tree": None}
    if args.rev:
        variants[f"rev {args.rev}"] = args.rev
    try:
        workspaces = {}
        for i, (name, rev) in enumerate(variants.items()):
            ws = make_workspace(tmp / f"ws{i}", rev, args.profile)
            t0 = time.monotonic()
            prep = subprocess.run([sys.executable, "prepare.py"], cwd=ws, env=run_env(ws, args.profile, args.budget),
                                  capture_output=True, text=True)
            if prep.returncode != 0:
                print(prep.stdout + prep.stderr)
                return 1
            print(f"{name}: workspace {ws}, prepare.py {time.monotonic() - t0:.1f} s")
            workspaces[name] = ws
        results = {name: [] for name in variants}
        probes = {name: [] for name in variants}
        for r in range(args.runs):
            for name, ws in workspaces.items():
                env = run_env(ws, args.profile, args.budget)
                probes[name].append(import_probes(ws, env))
                lines, end, status = timed_lines([sys.executable, "-u", "train.py"], ws, env)
                if status != 0:
                    print("\n".join(text for _, text in lines[-20:]))
                    print(f"{name}: train.py exited with status {status}")
                    return 1
                results[name].append(phases(lines, end))
                print(f"{name}: run {r + 1} done ({end:.1f} s)", flush=True)

        if args.runs:
            report(results, probes, args)
        if args.eval_check:
            eval_check(workspaces, args.profile, args.eval_check_steps)
    finally:
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict, probes: dict, args) -> None:
    """Print each variant's phases (one column per run, the median last when there are several),
    the import probes, and val_bpb / num_steps / total_seconds of each run's summary."""
    print(f"\nprofile {args.profile}, budget {args.budget:g} s, {args.runs} run(s) per variant; "
          f"seconds, each run shown (median last)\n")
    first_run = results[next(iter(results))][0]
    width = max(len(k) for k in first_run) + 2
    for name, runs in results.items():
        print(f"== {name}")
        for key in [k for k in first_run if not k.startswith("_")]:
            values = [res[key] for res in runs]
            shown = "  ".join("   -  " if v is None else f"{v:6.2f}" for v in values)
            known = [v for v in values if v is not None]
            median = f"   | {statistics.median(known):6.2f}" if len(values) > 1 and known else ""
            print(f"  {key:<{width}}{shown}{median}")
        for key in probes[name][0]:
            values = [p[key] for p in probes[name]]
            print(f"  {'(probe) ' + key:<{width}}" + "  ".join(f"{v:6.2f}" for v in values))
        for key in ("_val_bpb", "_num_steps", "_total_seconds", "_peak_vram_mb", "_step_dt_ms"):
            print(f"  {key[1:]:<{width}}" + "  ".join(f"{str(res[key]):>6}" for res in runs))


if __name__ == "__main__":
    sys.exit(main())

"""Fake train.py for engine tests: prints the real output contract in well under a second.

val_bpb = 1.0 + |log2(MATRIX_LR / 0.08)| / 10 (best at MATRIX_LR = 0.08), so
keep/discard are predictable. MODE picks a behaviour: "ok", "crash" (exit 1
with a traceback), "hang" (never ends), "hang_child" (hangs with a grandchild
in its process group), "nan" (prints val_bpb: nan and exits 0), "oom" (a CUDA
out-of-memory traceback, then killed by SIGKILL as the kernel's OOM killer
would: exit -9), "silent" (hangs before printing anything), "ignore_term"
(ignores SIGTERM and hangs: only SIGKILL ends it), "grandkids" (forks two
grandchildren that ignore SIGTERM and outlive it, then exits 1 mid-run),
"setsid_grandkid" (forks a grandchild that calls os.setsid(), leaving the
process group, and sleeps; then exits 1 mid-run), "escapee" (a double fork:
the grandchild calls os.setsid() and execs a sleeper with an empty
environment, so it carries no COCKPIT_RUN_ID and is nobody's child once its
parent exits; then exits 1 mid-run).
"grandkids", "setsid_grandkid" and "escapee" pass their command-line arguments (a test's marker) on to its
grandchildren, so a test can find leftovers by their command line.
FAKE_SLOW_FILE (env): while that file exists each step takes 15 s instead of
0.01 s (the fault tests kill the engine in the middle of such a run).
FAKE_STEP_S (env): seconds per step otherwise (default 0.01), for a run of a
fixed length (the pipelining and early-abort tests).
The training loss is 4.0 - 0.1 x step + 5 x (val_bpb - 1): a worse MATRIX_LR
trains visibly worse (the early-abort tests).
FAKE_OFFSETS (env): a file of val_bpb offsets, one per line; each run takes
(and removes) the first line and adds it to its val_bpb (the noise-floor tests).
Holdout, as the real harness scores it (cockpit.rules.holdout): when COCKPIT_HOLDOUT_OUT
is set and val_bpb is below COCKPIT_BEST_VAL_BPB (or none is given), it writes
holdout_bpb = 1.2 + FAKE_HOLDOUT_SLOPE (env, default 1) x (val_bpb - 1 - offset)
+ offset there: slope 0 makes a holdout that does not follow val_bpb.
"""

import math
import os
import signal
import subprocess
import sys
import time

MATRIX_LR = 0.04  # Muon learning rate (the fake's val_bpb depends on it)
DEPTH = 4  # number of layers (unused by the fake)
MODE = "ok"  # ok | crash | hang | hang_child | nan | oom | silent | ignore_term | grandkids | setsid_grandkid | escapee
STEPS = 5  # progress lines printed

budget = float(os.environ.get("COCKPIT_TIME_BUDGET", "1.0"))
SLEEPER = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
ESCAPER = "import os, time; os.setsid(); time.sleep(600)"
if MODE == "hang_child":
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
if MODE == "silent":
    time.sleep(600)
if MODE == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if MODE == "grandkids":
    for _ in range(2):
        subprocess.Popen([sys.executable, "-c", SLEEPER, *sys.argv[1:]])  # they hold the output pipe too
if MODE == "setsid_grandkid":
    subprocess.Popen([sys.executable, "-c", ESCAPER, *sys.argv[1:]])  # out of the group, on the pipe
if MODE == "escapee" and os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)  # off the pipe too: nothing ties it to the run
        os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", *sys.argv[1:]], {})
    os._exit(0)
lr_penalty = abs(math.log2(MATRIX_LR / 0.08)) / 10
for step in range(STEPS):
    pct = 100.0 * (step + 1) / STEPS
    print(f"step {step:05d} ({pct:.1f}%) | loss: {4.0 - step * 0.1 + 5 * lr_penalty:.6f} | lrm: 1.00 | dt: 10ms | "
          f"tok/sec: 1,680,000 | mfu: 39.8% | epoch: 1 | remaining: {budget * (1 - pct / 100):.0f}s",
          end="\r", flush=True)
    slow = os.path.exists(os.environ.get("FAKE_SLOW_FILE", "/nonexistent"))
    time.sleep(15.0 if slow else float(os.environ.get("FAKE_STEP_S", "0.01")))
    if MODE == "crash" and step == 2:
        raise RuntimeError("fake CUDA out of memory")
    if MODE == "oom" and step == 2:
        print("\nTraceback (most recent call last):\n  File \"train.py\", line 1, in <module>\n"
              "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
              "capacity of 79.10 GiB of which 1.06 GiB is free.", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    if MODE in ("grandkids", "setsid_grandkid", "escapee") and step == 2:
        sys.exit(1)
print()
if MODE in ("hang", "hang_child", "ignore_term"):
    time.sleep(600)
offset = 0.0
offsets_file = os.environ.get("FAKE_OFFSETS")
if offsets_file and os.path.exists(offsets_file):
    with open(offsets_file) as handle:
        offsets = handle.read().split()
    if offsets:
        offset = float(offsets[0])
        with open(offsets_file, "w") as handle:
            handle.write("\n".join(offsets[1:]))
val_bpb = float("nan") if MODE == "nan" else 1.0 + lr_penalty + offset
holdout_out, best = os.environ.get("COCKPIT_HOLDOUT_OUT"), os.environ.get("COCKPIT_BEST_VAL_BPB")
if holdout_out and val_bpb == val_bpb and (best is None or val_bpb < float(best)):
    slope = float(os.environ.get("FAKE_HOLDOUT_SLOPE", "1"))
    with open(holdout_out, "w") as handle:
        handle.write('{"holdout_bpb": %r, "tokens": 100, "seconds": 0.01}' % (1.2 + slope * lr_penalty + offset))
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {budget:.1f}")
print(f"total_seconds:    {budget + 0.2:.1f}")
print("peak_vram_mb:     1536.0")
print("mfu_percent:      39.80")
print("total_tokens_M:   0.1")
print(f"num_steps:        {STEPS}")
print("num_params_M:     0.5")
print(f"depth:            {DEPTH}")

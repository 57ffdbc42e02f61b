"""A training run of fixed length for the benches: the real output contract, no GPU.

Stands in for substrate/train.py where a bench measures the cockpit, not the
model: it "trains" for exactly COCKPIT_TIME_BUDGET seconds (default 45),
printing a step line every 0.5 s in the format of docs/CONTRACTS.md, then the
``---`` summary. Start-up is the interpreter's (~30 ms: no torch), "eval"
0.2 s. val_bpb depends on the hyper-parameters below
(best at MATRIX_LR = 0.08, DEPTH = 6; some constants change nothing), so an
agent's moves are kept or discarded as in a real session; none of them changes
the run's length.
"""

import math
import os
import time

MATRIX_LR = 0.04  # Muon learning rate
EMBEDDING_LR = 0.3  # AdamW learning rate of the embeddings
WEIGHT_DECAY = 0.2  # AdamW weight decay
DEPTH = 4  # number of layers
WARMUP_RATIO = 0.1  # share of the budget spent warming up
UNEMBEDDING_LR = 0.004  # AdamW learning rate of the output head
SCALAR_LR = 0.5  # AdamW learning rate of the scalars
ADAM_BETA1 = 0.8  # AdamW beta1
ADAM_BETA2 = 0.95  # AdamW beta2
HEAD_DIM = 64  # attention head size
DEVICE_BATCH_SIZE = 32  # rows per step

budget = float(os.environ.get("COCKPIT_TIME_BUDGET", "45"))
steps = max(1, int(budget / 0.5))
start = time.monotonic()
for step in range(steps + 1):  # a line at 0 s, then every budget / steps: first to last line = the budget
    time.sleep(max(0.0, start + step * budget / steps - time.monotonic()))
    pct = 100.0 * step / steps
    dt_ms = 0 if step == 0 else round(1000 * budget / steps)
    print(f"step {step:05d} ({pct:.1f}%) | loss: {4.0 - 2.0 * pct / 100:.6f} | lrm: 1.00 | dt: {dt_ms}ms | "
          f"tok/sec: 16,384 | mfu: 1.0% | epoch: 1 | remaining: {budget * (1 - pct / 100):.0f}s",
          end="\r", flush=True)
print()
time.sleep(0.2)
score = abs(math.log2(MATRIX_LR / 0.08)) + abs(DEPTH - 6) / 4 + abs(math.log2(EMBEDDING_LR / 0.3)) / 2
val_bpb = 1.0 + score / 10 + abs(WEIGHT_DECAY - 0.1) / 20 + abs(WARMUP_RATIO - 0.05) / 20
print("---")
print(f"val_bpb:          {val_bpb:.6f}")
print(f"training_seconds: {budget:.1f}")
print(f"total_seconds:    {time.monotonic() - start:.1f}")
print("peak_vram_mb:     0.0")
print("mfu_percent:      1.00")
print("total_tokens_M:   0.1")
print(f"num_steps:        {steps + 1}")
print("num_params_M:     0.1")
print(f"depth:            {DEPTH}")

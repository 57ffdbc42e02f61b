#!/usr/bin/env bash
# The GPU check: one script, offline, that shows whether the H100 path works on this machine
# and what it measures. It installs nothing: it uses the project's .venv (make install).
#
#   bench/gpu_check.sh                      # on a GPU box: the h100 profile (under 8 minutes on one H100)
#   PROFILE=tiny BUDGET=3 EXP_BUDGET=3 bench/gpu_check.sh   # the same steps on a CPU, in a minute
#
# Steps: (1) the machine: device, driver, torch and CUDA versions (cockpit doctor); (2) a local
# corpus (the embedded KJV written as climbmix-named shards: no download) and prepare.py for
# PROFILE (data, tokenizer, and the attention kernel if the machine can load one); (3) one
# train.py run of BUDGET seconds with HF_HUB_OFFLINE=1: attention backend, compile time
# (steps 0-1, which the budget does not count), tokens/s, MFU, peak memory, val_bpb; (4) a
# headless cockpit session of EXPERIMENTS experiments of EXP_BUDGET seconds after the baseline
# (offline agent, no noise runs) and each experiment's time accounting from records.jsonl.
# Everything lands in OUT (default: a new temporary directory), printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-h100}
BUDGET=${BUDGET:-60}
EXP_BUDGET=${EXP_BUDGET:-25}
EXPERIMENTS=${EXPERIMENTS:-3}
VENV=${VENV:-.venv}
OUT=${OUT:-$(mktemp -d -t gpu-check.XXXXXX)}
PY="$VENV/bin/python"
if [ ! -x "$PY" ] || [ ! -x "$VENV/bin/cockpit" ]; then
    echo "gpu_check: no $VENV with cockpit installed here: run make install first" >&2
    exit 2
fi
mkdir -p "$OUT"
VENV=$(cd "$VENV" && pwd); PY="$VENV/bin/python"
export COCKPIT_CACHE_DIR="$OUT/cache" COCKPIT_DATA_URL="file://$OUT/climbmix" PYTHONUNBUFFERED=1
T0=$(date +%s)
say() { echo "gpu_check: $*"; }

say "profile $PROFILE, run budget ${BUDGET}s, $EXPERIMENTS experiments of ${EXP_BUDGET}s, files in $OUT"
"$PY" - <<'EOF'
import platform, torch, subprocess, shutil
print(f"gpu_check: python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"gpu_check: device {p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB")
else:
    print("gpu_check: device cpu (torch sees no CUDA device)")
smi = shutil.which("nvidia-smi")
if smi:
    out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True)
    print(f"gpu_check: driver {out.stdout.strip() or out.stderr.strip()}")
EOF
"$VENV/bin/cockpit" doctor --profile "$PROFILE" | sed 's/^/gpu_check: doctor: /' || true

# (2) local corpus + prepare
"$PY" bench/local_climbmix.py "$OUT/climbmix" | sed 's/^/gpu_check: /'
rm -rf "$OUT/ws"
T1=$(date +%s)
"$VENV/bin/cockpit" init "$OUT/ws" --profile "$PROFILE" > "$OUT/init.log" 2>&1 || { cat "$OUT/init.log"; exit 1; }
grep -E "^(attention kernel|tokenizer: vocab|data):" "$OUT/init.log" | sed 's/^/gpu_check: prepare: /' || true
say "prepare: $(( $(date +%s) - T1 ))s"

# (3) one train.py run, as the cockpit runs it (HF_HUB_OFFLINE=1: no Hub call in a timed run)
(cd "$OUT/ws" && COCKPIT_TIME_BUDGET="$BUDGET" HF_HUB_OFFLINE=1 "$PY" -u train.py > "$OUT/run.log" 2>&1) \
    || { tail -c 3000 "$OUT/run.log"; say "train.py failed (exit status above)"; exit 1; }
"$PY" - "$OUT/run.log" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
lines = [l for l in re.split(r"[\r\n]", text) if l]
attention = next((l for l in lines if l.startswith("attention: ")), "attention: (no line)")
steps = [l for l in lines if l.startswith("step ")]
dt = [float(re.search(r"dt: (\d+)ms", l).group(1)) / 1000 for l in steps]
summary = dict(re.match(r"^(\w+):\s+(.*)$", l).groups() for l in text[text.rindex("\n---\n") + 5:].splitlines() if ":" in l)
timed = [float(re.search(r"tok/sec: ([\d,]+)", l).group(1).replace(",", "")) for l in steps[2:]] or [0.0]
tok_s = sorted(timed)[len(timed) // 2]  # median over the timed steps (the summary's token count is rounded)
print(f"gpu_check: run: {attention}")
print(f"gpu_check: run: compile/warm-up {sum(dt[:2]):.1f}s (steps 0-1), then {len(steps)} steps, "
      f"median step {sorted(dt[2:] or dt)[len(dt[2:] or dt) // 2] * 1000:.0f}ms")
print(f"gpu_check: run: {tok_s:,.0f} tokens/s (median step), MFU {summary['mfu_percent']}%, peak memory "
      f"{float(summary['peak_vram_mb']) / 1024:.1f} GiB, val_bpb {summary['val_bpb']}, "
      f"training {summary['training_seconds']}s of {summary['total_seconds']}s")
EOF

# (4) the cockpit, headless: baseline + EXPERIMENTS experiments
"$VENV/bin/cockpit" --workspace "$OUT/ws" --headless --budget "$EXP_BUDGET" --noise-runs 0 \
    --max-experiments $((EXPERIMENTS + 1)) --tag gpucheck > "$OUT/session.log" 2>&1 \
    || { tail -n 30 "$OUT/session.log"; say "the headless session failed"; exit 1; }
"$PY" - "$OUT/ws/records.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
rows = [r for r in rows if r.get("kind") == "experiment"]
print("gpu_check: session:  #  status   val_bpb   attention          wall_s  startup_s  training_s  eval_s  gap_s")
for r in rows:
    t = r.get("timings", {})
    val = f"{r['val_bpb']:.6f}" if r.get("val_bpb") is not None else "-"
    print(f"gpu_check: session: {r['experiment']:2d}  {r['status']:<7}  {val:>8}  {r.get('attention') or '-':<17} "
          + "  ".join(f"{t.get(k, 0):{w}.1f}" for k, w in
                      (("wall_s", 6), ("startup_s", 9), ("training_s", 10), ("eval_s", 6), ("gap_s", 5))))
if rows:
    s = rows[-1].get("session", {})
    print(f"gpu_check: session: {len(rows)} runs, idle share {100 * s.get('idle_share', 0):.1f}%, "
          f"{s.get('experiments_per_hour', 0):.1f} experiments/hour")
EOF
say "total $(( $(date +%s) - T0 ))s; logs in $OUT (run.log, session.log, ws/records.jsonl)"

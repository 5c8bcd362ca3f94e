#!/usr/bin/env bash
# The GPU path in one call, on one CUDA GPU (written for an H100/H200-class card: about 4-5
# minutes, at most GPU_CHECK_BUDGET=345 s in all). Run from anywhere; it works in the repo root:
#
#   bash scripts/gpu_check.sh                  # summary on stdout, JSON in $OUT/gpu_check.json or ./gpu_check.json
#   GPU_CHECK_DRY=1 bash scripts/gpu_check.sh  # print the commands only (any machine)
#
# Steps, each with its own timeout; a failed step does not stop the next ones:
#   setup          the python on PATH; `pip install -e .` only if raypose's imports fail (never the
#                  CPU torch pin of constraints-cpu.txt); torch must see CUDA
#   pytest_cuda    python -m pytest -q -m cuda (tests/test_cuda.py)
#   train_crash    2 members on the GPU, member 1 crashes once at iteration 2, the run completes
#   evaluate       raypose evaluate --run <that run> --device cuda
#   bench_train    scripts/bench_train.py --device cuda --channels 128 512 1024
#   train_packed8  8 members of 128 channels, --gpus-per-member auto: packed on the one GPU
# Ends with one summary block (pass/fail, seconds, key figures) and exits non-zero if any step
# failed. Logs of every step go to gpu_check_logs/ beside the JSON.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

DRY=${GPU_CHECK_DRY:-0}
BUDGET=${GPU_CHECK_BUDGET:-345}
if [[ -n "${OUT:-}" && "$OUT" == *.json ]]; then JSON=$OUT; DIR=$(dirname "$OUT")
elif [[ -n "${OUT:-}" ]]; then JSON=$OUT/gpu_check.json; DIR=$OUT
else JSON=./gpu_check.json; DIR=.
fi
LOGS=$DIR/gpu_check_logs
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
mkdir -p "$LOGS"
: > "$LOGS/steps.jsonl"
START=$(date +%s)

PY=$(command -v python || command -v python3 || echo python)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}   # this checkout, for the driver and Ray's workers
RAYPOSE=("$PY" -m raypose.cli)

# Judges a step from its exit status, log and outputs: prints one JSON line {status, why, figures}.
cat > "$WORK/judge.py" <<'PYEOF'
import glob, json, os, re, sys

name, rc, log, work = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
text = open(log, errors="replace").read() if os.path.exists(log) else ""
figures, why = {}, []


def records(run):
    out = []
    for path in sorted(glob.glob(os.path.join(run, "checkpoints", "iter*.json")),
                       key=lambda p: int(re.sub(r"\D", "", os.path.basename(p)) or 0)):
        try:
            out.append(json.load(open(path)))
        except (OSError, ValueError):
            pass
    return out


def run_figures(run):
    recs = records(run)
    if not recs:
        why.append(f"no committed iteration in {run}")
        return recs
    last = recs[-1]
    devs = [d for d in last.get("member_devices") or [] if d]
    figures.update(iterations=[r["iteration"] for r in recs],
                   ensemble_p_mpjpe_mm=round(last["ensemble"]["p_mpjpe_mm"], 2),
                   devices=sorted({d["device"] for d in devs}),
                   peak_mem_mib=round(max((d["peak_mem_mib"] for d in devs), default=0), 1))
    times = [r["time"] for r in recs if "time" in r]
    if len(times) > 1:
        figures["s_per_iteration"] = round((times[-1] - times[0]) / (len(times) - 1), 2)
    if not devs or not all(d["device"].startswith("cuda") for d in devs):
        why.append(f"members did not train on CUDA: {figures['devices']}")
    return recs


if name == "setup":
    m = re.search(r"^MACHINE (\{.*\})$", text, re.M)
    if m:
        figures.update(json.loads(m.group(1)))
        if not figures.get("cuda_available"):
            why.append("torch sees no CUDA device")
    else:
        why.append("could not import raypose, torch and ray")
elif name == "pytest_cuda":
    m = re.findall(r"^=*\s*(.*\b(?:passed|failed|skipped|error|errors|deselected)\b.*?)\s*=*$", text, re.M)
    if m:
        figures["result"] = m[-1]
        passed = re.search(r"(\d+) passed", m[-1])
        figures["passed"] = int(passed.group(1)) if passed else 0
        if not figures["passed"]:
            why.append("no CUDA test passed (all skipped?)")
elif name == "train_crash":
    recs = run_figures(os.path.join(work, "crash"))
    if [r["iteration"] for r in recs] != [1, 2, 3]:
        why.append("the run did not complete iterations 1-3")
    figures["crash_injected"] = os.path.exists(os.path.join(work, "crash", "debug", "fault-1-2"))
    if not figures["crash_injected"]:
        why.append("the crash was not injected")
    figures["plan"] = next(iter(re.findall(r"\d+ worker\(s\) \([^)]*\) on [^\n;,]*", text)), None)
elif name == "evaluate":
    try:
        ev = json.load(open(os.path.join(work, "crash", "metrics.json")))["evaluation"]
        figures.update(p_mpjpe_mm=round(ev["summary"]["p_mpjpe"], 2), mpjpe_mm=round(ev["summary"]["mpjpe"], 2),
                       frames=ev["frames"])
    except (OSError, ValueError, KeyError) as e:
        why.append(f"no evaluation in metrics.json ({type(e).__name__}: {e})")
elif name == "bench_train":
    figures["lines"] = [line.strip() for line in text.splitlines() if "samples/s" in line][-6:]
    try:
        res = json.load(open(os.path.join(os.path.dirname(log), "bench_train.json")))
        figures["models"] = {k: {f: v.get(f) for f in ("channels", "samples_per_s", "mfu", "precision") if f in v}
                             for k, v in (res.get("models") or {}).items()}
        for key in ("peak_gflops", "device", "samples_per_s", "mfu"):
            if key in res:
                figures[key] = res[key]
    except (OSError, ValueError) as e:
        why.append(f"no bench JSON ({type(e).__name__})")
elif name == "train_packed8":
    recs = run_figures(os.path.join(work, "packed8"))
    if len(recs) != 2:
        why.append("the run did not complete 2 iterations")
    figures["plan"] = next(iter(re.findall(r"\d+ worker\(s\) \([^)]*\) on [^\n;,]*", text)), None)
    if figures["plan"] and "8 members each" not in figures["plan"]:
        why.append("8 members were not packed into one worker")

if rc == 124 or rc == 137:
    why.insert(0, "timed out")
elif rc != 0:
    why.insert(0, f"exit status {rc}")
tail = [line for line in text.splitlines() if line.strip()][-3:]
print(json.dumps({"status": "fail" if why else "pass", "why": "; ".join(why), "figures": figures,
                  **({"log_tail": tail} if why else {})}))
PYEOF

# step NAME TIMEOUT_S COMMAND...: runs it under `timeout` (capped by what is left of the budget),
# logs it, judges it and appends the result to steps.jsonl.
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((BUDGET - ($(date +%s) - START) - 5))
    ((limit > left)) && limit=$left
    local cmd
    cmd=$(printf '%q ' "$@")
    if [[ "$DRY" == 1 ]]; then
        echo "[$name] timeout ${limit}s: $cmd"
        printf '{"name": "%s", "status": "dry", "seconds": 0, "timeout_s": %d, "rc": null, "command": %s}\n' \
            "$name" "$limit" "$("$PY" -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$cmd" 2>/dev/null || echo '""')" \
            >> "$LOGS/steps.jsonl"
        return 0
    fi
    local log=$LOGS/$name.log t0 t1 rc verdict
    if ((limit < 10)); then   # counted as a failure: the check is incomplete
        echo "== $name: skipped, the ${BUDGET}s budget is spent"
        printf '{"name": "%s", "status": "skipped", "why": "the %ss budget (GPU_CHECK_BUDGET) was spent", "seconds": 0, "rc": null, "figures": {}}\n' \
            "$name" "$BUDGET" >> "$LOGS/steps.jsonl"
        return 1
    fi
    echo "== $name (timeout ${limit}s): $cmd"
    t0=$(date +%s.%N)
    timeout -k 10 "$limit" "$@" > "$log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    tail -n 3 "$log" | sed 's/^/   | /'
    verdict=$("$PY" "$WORK/judge.py" "$name" "$rc" "$log" "$WORK" 2>>"$log") ||
        verdict='{"status": "fail", "why": "could not judge the step (see its log)", "figures": {}}'
    "$PY" - "$name" "$rc" "$t0" "$t1" "$limit" "$cmd" "$log" "$verdict" >> "$LOGS/steps.jsonl" <<'PYEOF'
import json, sys
name, rc, t0, t1, limit, cmd, log, verdict = sys.argv[1:]
print(json.dumps({"name": name, **json.loads(verdict), "seconds": round(float(t1) - float(t0), 1),
                  "timeout_s": int(limit), "rc": int(rc), "command": cmd.strip(), "log": log}))
PYEOF
}

# --- setup: the machine's python and CUDA torch; raypose installed only where its imports fail
cat > "$WORK/setup.sh" <<'SHEOF'
set -uo pipefail
PY=$1
imports='import raypose.cli, torch, ray'
if ! "$PY" -c "$imports" 2>/dev/null; then
    echo "raypose's imports fail here: pip install -e . (the machine's torch stays; no constraints file)"
    "$PY" -m pip install -q -e . || "$PY" -m pip install -q --no-build-isolation -e . || exit 3
fi
if ! "$PY" -c 'import pytest, hypothesis' 2>/dev/null; then   # test collection imports hypothesis
    "$PY" -m pip install -q pytest hypothesis || echo "warning: could not install pytest/hypothesis"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -2
"$PY" - <<'EOF'
import json, platform, torch, ray, raypose
ok = torch.cuda.is_available()
print("MACHINE " + json.dumps({
    "python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
    "ray": ray.__version__, "raypose": raypose.__version__, "cuda_available": ok,
    "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if ok else [],
    "cudnn": torch.backends.cudnn.version() if ok else None}))
EOF
SHEOF
step setup 150 bash "$WORK/setup.sh" "$PY"

# --- the CUDA-marked tests
step pytest_cuda 120 "$PY" -m pytest -q -m cuda -p no:cacheprovider

# --- 2 members on the GPU, an injected crash of member 1 at iteration 2, resumed by Ray Train
step train_crash 150 "${RAYPOSE[@]}" train --data synthetic --members 2 --iterations 3 --epochs 1 \
    --channels 128 --max-failures 2 --set debug.fail_member_at=1:2 --out "$WORK/crash"
step evaluate 90 "${RAYPOSE[@]}" evaluate --run "$WORK/crash" --device cuda

# --- member throughput on the GPU (short measurements; the JSON stays out of benchmarks/)
step bench_train 150 "$PY" scripts/bench_train.py --device cuda --channels 128 512 1024 \
    --seconds 4 --no-compile --json "$LOGS/bench_train.json"

# --- 8 small members packed on the one GPU
step train_packed8 120 "${RAYPOSE[@]}" train --data synthetic --members 8 --gpus-per-member auto \
    --channels 128 --iterations 2 --epochs 2 --out "$WORK/packed8"

# --- one summary block, and the JSON
"$PY" - "$LOGS/steps.jsonl" "$JSON" "$START" "$DRY" <<'PYEOF'
import json, sys, time
steps_path, out, start, dry = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] == "1"
steps = [json.loads(line) for line in open(steps_path) if line.strip()]
ok = all(s["status"] in ("pass", "dry") for s in steps)
summary = {"ok": ok, "dry": dry, "total_s": round(time.time() - start, 1), "steps": steps}
setup = next((s for s in steps if s["name"] == "setup"), {})
summary["machine"] = setup.get("figures", {})
with open(out, "w") as f:
    json.dump(summary, f, indent=1)
print("\n===== gpu_check summary =====")
if summary["machine"]:
    m = summary["machine"]
    print(f"machine: {', '.join(m.get('gpus') or ['no GPU'])}; torch {m.get('torch')} (CUDA {m.get('torch_cuda')}), "
          f"ray {m.get('ray')}, python {m.get('python')}")
for s in steps:
    figs = {k: v for k, v in s.get("figures", {}).items() if k not in ("lines",) and s["name"] != "setup"}
    print(f"{s['status'].upper():5} {s['name']:14} {s['seconds']:7.1f}s  " + (s.get("why") or "")
          + (f"  {json.dumps(figs)}" if figs else ""))
    for line in s.get("figures", {}).get("lines", []):
        print(f"      {line}")
verdict = "DRY RUN: nothing ran" if dry else "ALL PASS" if ok else "FAILED: " + ", ".join(
    s["name"] for s in steps if s["status"] != "pass")
print(f"{verdict} ({summary['total_s']:.0f}s); JSON: {out}")
print("===== end =====")
sys.exit(0 if ok else 1)
PYEOF
status=$?
rm -rf "$WORK"
exit $status

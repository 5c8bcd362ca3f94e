#!/usr/bin/env bash
# VideoPose3D's HumanEva-I recipe on real data, on this machine's GPU(s), timed:
# 5 members x 1024 channels, 20 iterations x 10 epochs (raypose/configs/humaneva.toml), then
# `raypose evaluate` on Validate/*; prints the wall time and the ensemble's P-MPJPE.
#
#   bash scripts/gpu_recipe.sh [extra raypose train flags, e.g. --iterations 5 or --precision bf16]
#
#   DATA=../shared/data/humaneva    VideoPose3D's data_2d_humaneva15_gt.npz + data_3d_humaneva15.npz
#   RUN=runs/humaneva_gpu           the run directory; an existing one is resumed, not restarted
#   RECIPE_TIMEOUT=3000             seconds for training before it is stopped (it resumes next time)
#   DEVICE=cuda                     where `raypose evaluate` runs the members (cpu for a trial run)
#   OUT=DIR                         also writes DIR/gpu_recipe.json
# With one GPU, --gpus-per-member auto packs the 5 members into one worker on it; with 5 or more
# GPUs each member gets its own. Python, torch and raypose as for scripts/gpu_check.sh.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

DATA=${DATA:-../shared/data/humaneva}
RUN=${RUN:-runs/humaneva_gpu}
PY=$(command -v python || command -v python3 || echo python)
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

if [[ ! -f "$DATA/data_3d_humaneva15.npz" || ! -f "$DATA/data_2d_humaneva15_gt.npz" ]]; then
    echo "gpu_recipe: HumanEva-I (licensed) not found in $DATA: expected data_2d_humaneva15_gt.npz and" \
         "data_3d_humaneva15.npz (VideoPose3D's prepare_data_humaneva.py); set DATA=" >&2
    exit 2
fi
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    echo "gpu_recipe: warning: torch sees no CUDA device; the members will train on CPU (hours)" >&2

t0=$(date +%s.%N)
timeout -k 30 "${RECIPE_TIMEOUT:-3000}" "$PY" -m raypose.cli train --config raypose/configs/humaneva.toml \
    --data "$DATA" --out "$RUN" "$@"
train_rc=$?
t1=$(date +%s.%N)
eval_rc=1
if ((train_rc == 0)); then
    "$PY" -m raypose.cli evaluate --run "$RUN" --device "${DEVICE:-cuda}"
    eval_rc=$?
fi
t2=$(date +%s.%N)

"$PY" - "$RUN" "$t0" "$t1" "$t2" "$train_rc" "$eval_rc" "${OUT:-}" <<'PYEOF'
import json, os, sys
run, t0, t1, t2, train_rc, eval_rc, out = sys.argv[1:]
res = {"run": run, "train_s": round(float(t1) - float(t0), 1), "evaluate_s": round(float(t2) - float(t1), 1),
       "train_rc": int(train_rc), "evaluate_rc": int(eval_rc)}
try:
    metrics = json.load(open(os.path.join(run, "metrics.json")))
    ev = metrics["evaluation"]
    res.update(iteration=ev["iteration"], members=ev["members"], frames=ev["frames"], aggregate=ev["aggregate"],
               p_mpjpe_mm=ev["summary"]["p_mpjpe"], mpjpe_mm=ev["summary"]["mpjpe"],
               member_p_mpjpe_mm=[m["p_mpjpe"] for m in ev["member_summaries"]])
    if "fit_2d" in ev:
        res["fit_2d_p_mpjpe_mm"] = ev["fit_2d"]["summary"]["p_mpjpe"]
except (OSError, ValueError, KeyError) as e:
    res["error"] = f"no evaluation in {run}/metrics.json ({type(e).__name__}: {e})"
try:   # where the members ran, from the last committed iteration
    ckpt = os.path.join(run, "checkpoints")
    last = max(int(f[4:-5]) for f in os.listdir(ckpt) if f.startswith("iter") and f.endswith(".json"))
    rec = json.load(open(os.path.join(ckpt, f"iter{last}.json")))
    devs = [d for d in rec.get("member_devices") or [] if d]
    res.update(devices=sorted({d["device"] for d in devs}),
               peak_mem_mib=max((d["peak_mem_mib"] for d in devs), default=None))
except (OSError, ValueError):
    pass
print("\n===== gpu_recipe (HumanEva-I, 5 x 1024) =====")
print(f"wall time: training {res['train_s']:.0f} s (exit {train_rc}), evaluation {res['evaluate_s']:.0f} s "
      f"(exit {eval_rc})" + (f"; on {', '.join(res['devices'])}, peak {res['peak_mem_mib']:.0f} MiB"
                             if res.get("devices") else ""))
if "p_mpjpe_mm" in res:
    print(f"ensemble P-MPJPE {res['p_mpjpe_mm']:.1f} mm (MPJPE {res['mpjpe_mm']:.1f} mm), iteration "
          f"{res['iteration']}, {res['members']} members, {res['frames']} frames; members "
          + ", ".join(f"{x:.1f}" for x in res["member_p_mpjpe_mm"]) + " mm"
          + (f"; fitted to 2D {res['fit_2d_p_mpjpe_mm']:.1f} mm" if "fit_2d_p_mpjpe_mm" in res else ""))
else:
    print(res["error"])
if out:
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "gpu_recipe.json"), "w") as f:
        json.dump(res, f, indent=1)
sys.exit(0 if int(train_rc) == 0 and int(eval_rc) == 0 and "p_mpjpe_mm" in res else 1)
PYEOF

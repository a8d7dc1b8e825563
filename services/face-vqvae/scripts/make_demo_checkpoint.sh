#!/usr/bin/env bash
# Make the committed demo checkpoint (checkpoints/demo): synthetic ARKit-52 data from the data studio, both
# stages of configs/demo.yaml on the frozen pretrained Whisper-base, evaluation on held-out synthetic
# sentences (open-rig vertices when the rig builds, else the 52 curves) and a look at real read speech.
# Run from the repo root:  services/face-vqvae/scripts/make_demo_checkpoint.sh [WORK_DIR]
# Env: STAGE1_MINUTES / STAGE2_MINUTES (training budgets, default 4 and 6: stage 2's includes computing the
# Whisper features once per clip), VAL_EVERY (steps between validations), PYTHON (default .venv/bin/python).
set -euo pipefail

WORK=${1:-.run/face-vqvae-demo}
PYTHON=${PYTHON:-.venv/bin/python}
STAGE1_MINUTES=${STAGE1_MINUTES:-4}
STAGE2_MINUTES=${STAGE2_MINUTES:-6}
VAL_EVERY=${VAL_EVERY:-1500}
SERVICE=services/face-vqvae
OUT=$SERVICE/checkpoints/demo
TOOLS=$SERVICE/scripts/demo_tools.py
# One thread: on a small shared CPU, torch's default (all cores) made these small models' steps ~10x slower.
export OMP_NUM_THREADS=1

mkdir -p "$WORK" "$OUT"
declare -A WALL
timed() {  # timed NAME command...: run it and keep its wall time in seconds
  local name=$1 start
  shift
  start=$(date +%s.%N)
  "$@"
  WALL[$name]=$(echo "$(date +%s.%N) - $start" | bc)
}

timed data "$PYTHON" "$TOOLS" data --out "$WORK/data"
RIG=()
if "$PYTHON" "$TOOLS" rig --out "$WORK/rig.npz"; then RIG=(--rig "$WORK/rig.npz"); fi
timed stage1 "$PYTHON" -m face_vqvae.train --stage 1 --config demo --data "$WORK/data/flat" \
  --out "$WORK/train" --max-minutes "$STAGE1_MINUTES" --val-every "$VAL_EVERY" --device cpu
timed stage2 "$PYTHON" -m face_vqvae.train --stage 2 --config demo --data "$WORK/data/flat" \
  --out "$WORK/train" --prior "$WORK/train/stage1.pt" --max-minutes "$STAGE2_MINUTES" --val-every "$VAL_EVERY" \
  --device cpu
"$PYTHON" "$TOOLS" pack --checkpoint "$WORK/train/stage2.pt" --out "$OUT/stage2.pt"
timed eval "$PYTHON" -m face_vqvae.eval --checkpoint "$OUT/stage2.pt" --data "$WORK/data/flat" "${RIG[@]}" \
  --samples 10 --temperature 0.2 --device cpu --out "$WORK/eval.json"
"$PYTHON" "$TOOLS" baseline --data "$WORK/data/flat" "${RIG[@]}" --out "$WORK/baseline.json"
"$PYTHON" "$TOOLS" real-speech --checkpoint "$OUT/stage2.pt" --data "$WORK/data/flat" --out "$WORK/real_speech.json"

"$PYTHON" - "$WORK" "$OUT/metrics.json" "${WALL[data]}" "${WALL[stage1]}" "${WALL[stage2]}" "${WALL[eval]}" \
  <<'EOF'
import json, subprocess, sys
from pathlib import Path

work, out = Path(sys.argv[1]), Path(sys.argv[2])
walls = dict(zip(("data", "stage1", "stage2", "eval"), (round(float(s), 1) for s in sys.argv[3:7])))
read = lambda name: json.loads((work / name).read_text())
machine = json.loads(subprocess.check_output([sys.executable, "services/face-vqvae/scripts/demo_tools.py", "machine"]))
metrics = {
    "machine": machine,
    "wall_s": walls,
    "history": {stage: read(f"train/{stage}_history.json") for stage in ("stage1", "stage2")},
    "eval_test": read("eval.json"),
    "baseline_mean_pose": read("baseline.json"),
    "real_speech": read("real_speech.json"),
}
out.write_text(json.dumps(metrics, indent=1) + "\n")
print(json.dumps({"wall_s": walls, "eval": metrics["eval_test"], "baseline": metrics["baseline_mean_pose"]}))
EOF
ls -l "$OUT"

#!/usr/bin/env bash
# Train configs/demo.yaml under both training recipes (train.recipe: project, official) side by side, one
# thread each, on the same data with the same budgets and seeds, and score both on the held-out synthetic
# test split: the measurement behind the default recipe. The steps are make_demo_checkpoint.sh's (train,
# pack, eval) in WORK_DIR/recipe-NAME; the comparison goes to checkpoints/demo/recipes.json.
# Run from the repo root:  services/face-vqvae/scripts/compare_recipes.sh [WORK_DIR]
# Env: STAGE1_MINUTES, STAGE2_MINUTES, VAL_EVERY, PYTHON, as make_demo_checkpoint.sh.
set -euo pipefail

WORK=${1:-.run/face-vqvae-demo}
PYTHON=${PYTHON:-.venv/bin/python}
STAGE1_MINUTES=${STAGE1_MINUTES:-4}
STAGE2_MINUTES=${STAGE2_MINUTES:-6}
VAL_EVERY=${VAL_EVERY:-1500}
SERVICE=services/face-vqvae
TOOLS=$SERVICE/scripts/demo_tools.py
export OMP_NUM_THREADS=1

train_and_score() {  # train_and_score RECIPE: both stages, packing and the test metrics, in WORK/recipe-RECIPE
  local recipe=$1 run=$WORK/recipe-$1 start
  mkdir -p "$run"
  "$PYTHON" -c 'import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); c["train"]["recipe"] = sys.argv[2]
yaml.safe_dump(c, open(sys.argv[3], "w"), sort_keys=False)' "$SERVICE/configs/demo.yaml" "$recipe" "$run/demo.yaml"
  start=$(date +%s)
  "$PYTHON" -m face_vqvae.train --stage 1 --config "$run/demo.yaml" --data "$WORK/data/flat" --out "$run/train" \
    --max-minutes "$STAGE1_MINUTES" --val-every "$VAL_EVERY" --device cpu
  echo "stage1 $(($(date +%s) - start))" >"$run/wall.txt"
  start=$(date +%s)
  "$PYTHON" -m face_vqvae.train --stage 2 --config "$run/demo.yaml" --data "$WORK/data/flat" --out "$run/train" \
    --prior "$run/train/stage1.pt" --max-minutes "$STAGE2_MINUTES" --val-every "$VAL_EVERY" --device cpu
  echo "stage2 $(($(date +%s) - start))" >>"$run/wall.txt"
  "$PYTHON" "$TOOLS" pack --checkpoint "$run/train/stage2.pt" --out "$run/out/stage2.pt"
  "$PYTHON" -m face_vqvae.eval --checkpoint "$run/out/stage2.pt" --data "$WORK/data/flat" "${RIG[@]}" \
    --samples 10 --temperature 0.2 --device cpu --out "$run/eval.json"
}

[ -d "$WORK/data/flat" ] || "$PYTHON" "$TOOLS" data --out "$WORK/data"
RIG=()
if [ -f "$WORK/rig.npz" ] || "$PYTHON" "$TOOLS" rig --out "$WORK/rig.npz"; then RIG=(--rig "$WORK/rig.npz"); fi
pids=()
for recipe in project official; do
  train_and_score "$recipe" >"$WORK/recipe-$recipe.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
"$PYTHON" "$TOOLS" recipes --work "$WORK" --out "$SERVICE/checkpoints/demo/recipes.json"

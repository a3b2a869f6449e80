#!/bin/bash
# The bad-input sweep of docs/bad_inputs.md: builds its fixtures under one root folder, $SWEEP_ROOT (default: a new
# folder from mktemp -d, named on the first line), and runs every case in-process, printing
# `case | exit code | first error line` (EXC: an exception escaped main; TIMEOUT: over 45 s).
# Usage, from the repository root:  bash tests/sweep/run.sh [cases1 cases2 ...]
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_NUM_THREADS=1 PYTHONPATH=${PYTHONPATH:-$PWD}
export SWEEP_ROOT=${SWEEP_ROOT:-$(mktemp -d -t sweep.XXXXXX)}
echo "sweep root: $SWEEP_ROOT"
PY=${PYTHON:-python}
mkdir -p "$SWEEP_ROOT/o" "$SWEEP_ROOT/cwd"
$PY "$HERE/fixtures.py" && $PY "$HERE/fixtures2.py"
T="--model edit_tiny_patch16_224 --model-kwargs img_size=32 patch_size=4 depth=2 --device cpu --num-workers 0 --threads 1 --no-progress"
rm -rf "$SWEEP_ROOT"/run_*
$PY -m editvit train $T --batch-size 8 --epochs 1 --dataset synthetic --num-classes 10 --synthetic-samples 32 --output "$SWEEP_ROOT/run_good" > /dev/null 2>&1
cd "$SWEEP_ROOT"
for n in broken_cfg list_cfg no_weights no_cfg_key trunc_ckpt trunc_st badmodel; do cp -r run_good run_$n; done
echo ': [' > run_broken_cfg/config.yaml; echo '- 1' > run_list_cfg/config.yaml
rm run_no_weights/model.safetensors run_no_weights/checkpoint-last.pth; sed -i '/^model:/d' run_no_cfg_key/config.yaml
mkdir run_tmp_only; cp run_good/config.yaml run_tmp_only/; head -c 1000 run_good/checkpoint-last.pth > run_tmp_only/checkpoint-last.pth.tmp
head -c 5000 run_good/checkpoint-last.pth > run_trunc_ckpt/checkpoint-last.pth; head -c 5000 run_good/model.safetensors > run_trunc_st/model.safetensors
sed -i 's/^model: .*/model: nonexistent_model/' run_badmodel/config.yaml
printf "output: ''\n" > d/y/outempty.yaml
printf "model: edit_tiny_patch16_224\nmodel_kwargs: {img_size: 32, depthh: 3}\n" > d/y/kwunknown.yaml
printf "model: edit_tiny_patch16_224\ndataset: synthetic\noutput: %s/o/resnew\nresume: true\n" "$SWEEP_ROOT" > d/y/resume.yaml
cd "$SWEEP_ROOT/cwd"
for f in ${@:-cases1 cases2 cases3 cases4 cases5}; do $PY "$HERE/harness.py" "$HERE/$f.py"; done
$PY "$HERE/sig.py" 2 6

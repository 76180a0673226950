#!/bin/bash
# Retraining on the lent GPU machine (JAX with CUDA, no TensorFlow): the given tools/train.py flagfiles run
# side by side with KERAS_BACKEND=jax until they finish or SECONDS have passed since the start, e.g.
#   run(command="bash tools/device/train_jax.sh 540 configs/train_nse_fmnist_6m_e60.flags",
#       carry=[".whl", ".data", "runs/train/e60-nse-fmnist-6m"], timeout_s=590)
# Carry .whl (keras 3.15.1, namex and optree wheels for Python 3.12, fetched as the device README says),
# .data/fmnist (a copy of /usr/share/datasets/fashion-mnist) and, to resume, each flagfile's run directory.
# At the deadline every run is killed (its last finished epoch's checkpoint stays) and each run directory
# comes back with its log as $OUT/<run>.tgz: unpack it into runs/train/ here, where tools/train.py resumes
# it on TensorFlow and tools/make_zoo_entry.py turns a finished one into a zoo entry.
set -u
T0=$(date +%s)
LIMIT=${1:?usage: train_jax.sh SECONDS FLAGFILE...}; shift
if [ $# -lt 1 ] || [ $# -gt 6 ]; then echo "train_jax.sh: give 1 to 6 flagfiles (8 files come back)"; exit 2; fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import jax, keras; print('jax', jax.__version__, 'keras', keras.__version__, jax.devices())" 2>&1 | tee -a $OUT/gpu.txt
DIRS=(); PIDS=()
for flagfile in "$@"; do
  dir=$(sed -n 's/^--run_dir=//p' "$flagfile" | tail -n 1)
  if [ -z "$dir" ]; then echo "train_jax.sh: $flagfile sets no --run_dir"; exit 2; fi
  mkdir -p "$(dirname "$dir")"
  python3 tools/train.py --flagfile="$flagfile" --data_dir=.data/fmnist >> "$dir.log" 2>&1 &
  DIRS+=("$dir"); PIDS+=($!)
done
epochs() { if [ -f "$1/history.csv" ]; then tail -n +2 "$1/history.csv" | grep -c .; else echo 0; fi; }
while true; do
  sleep 15
  alive=0; line="t=$(( $(date +%s) - T0 ))"
  for i in "${!DIRS[@]}"; do
    line="$line $(basename "${DIRS[$i]}")=$(epochs "${DIRS[$i]}")"
    kill -0 "${PIDS[$i]}" 2>/dev/null && alive=1
  done
  echo "$line" >> $OUT/progress.txt
  [ $alive = 0 ] && break
  [ $(date +%s) -ge $(( T0 + LIMIT )) ] && break
done
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done; sleep 3
for dir in "${DIRS[@]}"; do  # a run that failed before creating its directory brings back its log alone
  names=$(cd "$(dirname "$dir")" && ls -d "$(basename "$dir")" "$(basename "$dir").log" 2>/dev/null)
  tar czf "$OUT/$(basename "$dir").tgz" --exclude=".lock*" -C "$(dirname "$dir")" $names  # no lock of this host
done
tail -n 2 "${DIRS[@]/%/.log}"; echo "total $(( $(date +%s) - T0 )) s"

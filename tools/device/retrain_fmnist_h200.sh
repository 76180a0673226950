#!/bin/bash
# The GPU half of the nse-fmnist-6m/7m retraining (2026-11-28), run verbatim on the lent NVIDIA H200
# (JAX, no TensorFlow) through the device tool: `bash tools/device/retrain_fmnist_h200.sh`, carrying
# .whl (keras 3.15.1, namex, optree wheels for Python 3.12, fetched as the device README says) and
# .data/fmnist (a copy of /usr/share/datasets/fashion-mnist). Five runs share the GPU: the two 30-epoch
# zoo runs, and a 60-epoch trio (a longer recipe's trial) that a watchdog stops if the 7m run would
# otherwise miss the deadline. At the deadline every run is killed (its last epoch checkpoint stays) and
# each run directory comes back as $OUT/<name>.tgz; tools/train.py resumes them on any backend.
set -u
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee $OUT/gpu.txt
python3 -c "import jax, keras, numpy; print('jax', jax.__version__, 'keras', keras.__version__, 'numpy', numpy.__version__, jax.devices())" 2>&1 | tee -a $OUT/gpu.txt
R=/tmp/runs; mkdir -p $R
launch() { local name=$1; shift; python3 tools/train.py "$@" --data_dir=.data/fmnist --run_dir=$R/$name > $R/$name.log 2>&1 & echo $! > $R/$name.pid; }
launch nse-fmnist-6m --flagfile=configs/train_nse_fmnist_6m.flags --epochs=30
launch nse-fmnist-7m --flagfile=configs/train_nse_fmnist_7m.flags --epochs=30
LONG="e60-nse-fmnist-6m e60-nse-fmnist-7m e60-mobilenetv2-style-fmnist"
launch e60-nse-fmnist-6m --flagfile=configs/train_nse_fmnist_6m.flags --epochs=60
launch e60-nse-fmnist-7m --flagfile=configs/train_nse_fmnist_7m.flags --epochs=60
launch e60-mobilenetv2-style-fmnist --flagfile=configs/train_mobilenetv2_style_fmnist.flags --epochs=60
DEADLINE=$((T0 + 535)); long_alive=1; t1=""
epochs() { [ -f $R/$1/history.csv ] && echo $(( $(wc -l < $R/$1/history.csv) - 1 )) || echo 0; }
while true; do
  sleep 10; now=$(date +%s)
  e=$(epochs nse-fmnist-7m); e6=$(epochs nse-fmnist-6m)
  echo "t=$((now - T0)) 6m=$e6 7m=$e long: $(for n in $LONG; do echo -n "$(epochs $n) "; done)" >> $OUT/progress.txt
  alive=0; for n in nse-fmnist-6m nse-fmnist-7m $LONG; do kill -0 $(cat $R/$n.pid) 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  [ $now -ge $DEADLINE ] && break
  [ -z "$t1" ] && [ "$e" -ge 1 ] && t1=$now && e1=$e
  if [ $long_alive = 1 ] && [ -n "$t1" ] && [ "$e" -gt "$e1" ] && [ ! -f $R/nse-fmnist-7m/result.json ]; then
    proj=$(( now + (30 - e) * (now - t1) / (e - e1) + 15 ))
    if [ $proj -gt $DEADLINE ]; then
      echo "t=$((now - T0)) projected 7m end t=$((proj - T0)) > deadline: stopping the 60-epoch runs" >> $OUT/progress.txt
      for n in $LONG; do kill $(cat $R/$n.pid) 2>/dev/null; done; long_alive=0
    fi
  fi
done
for n in nse-fmnist-6m nse-fmnist-7m $LONG; do kill $(cat $R/$n.pid) 2>/dev/null; done; sleep 3
for n in nse-fmnist-6m nse-fmnist-7m $LONG; do tar czf $OUT/$n.tgz -C $R $n $n.log; done
ls -la $OUT; tail -n 3 $R/*.log; echo "total $(( $(date +%s) - T0 )) s"

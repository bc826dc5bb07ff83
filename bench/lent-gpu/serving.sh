# On the lent machine: issue 15's serving bench on two of its CPU cores, a CPU with other
# instructions than the 2-core machine here (bf16, VNNI). The GPU is hidden: this measures CPU
# serving. With .gpu from prepare.sh and every piece of prepare-serving.sh carried over earlier
# calls to the same warm machine (bench/lent-gpu/README.md), two calls:
#   bash bench/lent-gpu/serving.sh train            installs, fits the quick-start model
#   ITEMS=100 bash bench/lent-gpu/serving.sh bench  the serving bench on two cores
# $OUT gets the CPU, the training log and the copies' checks, then the bench's report (Markdown:
# unlike --json, it holds HTTP against in-process timed in turn, which the 0.9x bar is judged on).
set -u; REPO=$PWD
export PYTHONPATH=/tmp/site PATH=/tmp/site/bin:$PATH CUDA_VISIBLE_DEVICES=
export MLFLOW_TRACKING_URI=sqlite:////tmp/serve-reg/mlflow.db

train() {
  if [ "$(cat .gpu-serve/part-* 2>/dev/null | sha256sum | cut -d' ' -f1)" != "$(cat .gpu-serve/serve.tar.sha256)" ]; then
    echo "serving wheels incomplete or damaged: carry each .gpu-serve/part-NN (ls .gpu-serve)"; exit 1
  fi
  rm -rf /tmp/serve /tmp/serve-reg && mkdir -p /tmp/serve /tmp/serve-reg
  cat .gpu-serve/part-* | tar -C /tmp/serve -xf -
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --ignore-requires-python --upgrade --target /tmp/site /tmp/serve/whl/*.whl || exit 1
  source bench/lent-gpu/setup.sh  # then prepare.sh's wheels, the bundled encoder, the data sets
  export CUDA_VISIBLE_DEVICES=  # setup.sh names the GPU; nothing here runs on it
  lscpu | grep -E "Model name|Thread|Core|Socket|Flags" > $OUT/cpu.txt; grep "Model name" $OUT/cpu.txt
  # the fit, the ONNX copies and their checks on every core: a check's figures depend on the
  # CPU's instructions, not on how many cores ran it; its timings then name more cores than the
  # service has, so the service takes the fixed order (bf16 first where it is native)
  local start=$(date +%s)
  timeout ${FIT_LIMIT:-540} env -C /tmp/serve-reg python3 -m prescore.cli train \
    --config $REPO/experiments/quickstart.yaml > $OUT/train.log 2>&1
  local rc=$?; echo "train rc $rc in $(( $(date +%s) - start )) s"; tail -25 $OUT/train.log
  find /tmp/serve-reg -name check.json -exec cp {} $OUT/check.json \; -exec cat {} \;
}

bench() {
  # two distinct physical cores (never two hyperthreads of one), as the 2-core machine has
  local cores=$(lscpu -p=CPU,CORE | grep -v '^#' | sort -t, -k2,2n -u | head -2 | cut -d, -f1 | paste -sd,)
  echo "pinned to CPUs $cores" | tee $OUT/cores.txt
  local start=$(date +%s)
  timeout ${BENCH_LIMIT:-570} env -C /tmp/serve-reg taskset -c $cores python3 -m prescore.cli \
    bench serving --model prescore-quickstart@1 --config $REPO/experiments/feedback-prize-ell.yaml \
    --split test --items ${ITEMS:-100} --min-words 250 --max-words 350 --shared 10 \
    > $OUT/bench.md 2> $OUT/bench.log
  echo "bench rc $? in $(( $(date +%s) - start )) s"; cat $OUT/bench.md; tail -5 $OUT/bench.log
}

case "${1:-}" in
  train) train ;;
  bench) bench ;;
  *) echo "usage: bash bench/lent-gpu/serving.sh train|bench"; exit 2 ;;
esac

# On the lent GPU: `bash bench/lent-gpu/train.sh CONFIG:SECONDS ...`, untracked fine-tunes with
# their evaluation reports (tar.gz per config) in $OUT.
set -u; REPO=$PWD; source bench/lent-gpu/setup.sh
for spec in "$@"; do
  config=${spec%%:*}; limit=${spec##*:}
  timeout "$limit" $PRESCORE train --config $REPO/experiments/$config.yaml --no-track \
    --report /tmp/reports/$config 2>&1 | grep -v "Fine-tuning" | tee $OUT/$config.log | tail -25
  tar -C /tmp/reports -czf $OUT/$config.tar.gz $config 2>/dev/null
done

# On the lent GPU: `LIMIT=480 bash eval/lent-gpu/bench.sh CONFIG:FOLD ...`, every fold its own
# process, all at once; fold results in $OUT/results.jsonl (merge with `prescore bench report`).
set -u; REPO=$PWD; source eval/lent-gpu/setup.sh
run() {
  timeout ${LIMIT:-500} $PRESCORE bench accuracy --no-track --config $REPO/experiments/$1.yaml \
    --folds $2 --results /tmp/res/$1-$2.jsonl > /tmp/res/$1-$2.log 2>&1
  echo "$1 fold $2 rc $? $(date -u +%T)"
}
for spec in "$@"; do run ${spec%%:*} ${spec##*:} & done
wait
cat /tmp/res/*.jsonl > $OUT/results.jsonl
for f in /tmp/res/*.log; do echo "== $f"; grep -v "Fine-tuning\|Loading weights" $f | tail -4; done > $OUT/logs.txt
$PRESCORE bench report --no-track $OUT/results.jsonl | tail -80

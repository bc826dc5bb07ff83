# On the lent GPU: `LIMIT=480 bash bench/lent-gpu/bench.sh CONFIG:FOLD[:NAME=VALUE,...] ...`, every
# fold its own process, all at once; fold results in $OUT/results.jsonl (merge with
# `prescore bench report`). A third field runs a candidate recipe: the config's scorer with
# those params over its own (`bench accuracy --param`), labelled apart in the tables.
# FLAGS is passed to every run, e.g. FLAGS="--no-embeddings --no-ensemble" for recipe runs.
set -u; REPO=$PWD; source bench/lent-gpu/setup.sh
run() {
  local tag="$1-$2" params=()
  if [ -n "$3" ]; then
    for p in ${3//,/ }; do params+=(--param "$p"); done
    tag="$tag-${3//[=,]/_}"
  fi
  timeout ${LIMIT:-500} $PRESCORE bench accuracy --no-track --config $REPO/experiments/$1.yaml \
    --folds $2 "${params[@]}" ${FLAGS:-} --results /tmp/res/$tag.jsonl > /tmp/res/$tag.log 2>&1
  echo "$tag rc $? $(date -u +%T)"
}
for spec in "$@"; do
  IFS=: read -r config fold params <<< "$spec"
  run "$config" "$fold" "${params:-}" &
done
wait
cat /tmp/res/*.jsonl > $OUT/results.jsonl
for f in /tmp/res/*.log; do echo "== $f"; grep -v "Fine-tuning\|Loading weights" $f | tail -4; done > $OUT/logs.txt
$PRESCORE bench report --no-track $OUT/results.jsonl | tail -80

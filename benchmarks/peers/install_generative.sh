#!/usr/bin/env bash
# Create <repo>/.venv-gen-peers with the generative peers (torchcfm 1.0.7 on CPU torch 2.13.0,
# flowjax 19.1.2) pinned in benchmarks/peers/requirements-generative.txt.  Idempotent: a stamp file
# holding the requirements' checksum skips the work when nothing changed.
#   bash benchmarks/peers/install_generative.sh          # then: .venv-gen-peers/bin/python ...
#   FORCE=1 bash benchmarks/peers/install_generative.sh  # rebuild from scratch
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.venv-gen-peers"
REQ="$HERE/requirements-generative.txt"
STAMP="$VENV/.gen-peers-installed"
PY="${PYTHON:-python3}"
CHECK='import torch, torchcfm, torchdiffeq, ot, flowjax, jax'

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ "${FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
   && "$VENV/bin/python" -c "$CHECK" 2>/dev/null; then
  echo "generative peers venv up to date: $VENV"
  exit 0
fi

if [[ "${FORCE:-0}" == 1 ]]; then rm -rf "$VENV"; fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
rm -f "$STAMP"
# Full lock, no dependency resolution (keeps CUDA extras and torchcfm's notebook/lightning stack out);
# `pip check` would name the left-out torchdyn, so the imports are checked instead.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ"
if "$VENV/bin/python" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "warning: nvidia-* packages present in $VENV" >&2
fi
"$VENV/bin/python" - <<'PY'
import torch, torchcfm, torchdiffeq, ot, flowjax, jax
from importlib.metadata import version
assert torch.zeros(3).sum().item() == 0.0
print("torch", torch.__version__, "torchcfm", version("torchcfm"), "flowjax", version("flowjax"), "jax", jax.__version__)
PY
echo "$want" > "$STAMP"
echo "generative peers venv ready: $VENV"

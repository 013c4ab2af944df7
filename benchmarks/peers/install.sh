#!/usr/bin/env bash
# Create <repo>/.venv-peers with the peer libraries (mfglib 0.3.0, OpenSpiel 2.0.2,
# BenchMFG 0.1.3, CPU torch) pinned in benchmarks/peers/requirements.txt.  Idempotent: a stamp file
# holding the requirements' checksum skips the work when nothing changed.
#   bash benchmarks/peers/install.sh        # then: .venv-peers/bin/python ...
#   FORCE=1 bash benchmarks/peers/install.sh  # rebuild from scratch
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.venv-peers"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.peers-installed"
PY="${PYTHON:-python3}"

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ "${FORCE:-0}" != 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] \
   && "$VENV/bin/python" -c "import torch, mfglib, pyspiel, benchmfg" 2>/dev/null; then
  echo "peers venv up to date: $VENV"
  exit 0
fi

if [[ "${FORCE:-0}" == 1 ]]; then rm -rf "$VENV"; fi
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
rm -f "$STAMP"
# Full lock, no dependency resolution: keeps torch's CUDA extras (nvidia-*) out.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$REQ"
"$VENV/bin/python" -m pip check
if "$VENV/bin/python" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "warning: nvidia-* packages present in $VENV" >&2
fi
"$VENV/bin/python" - <<'PY'
import torch, mfglib, pyspiel, benchmfg
from importlib.metadata import version
assert torch.zeros(3).sum().item() == 0.0
print("torch", torch.__version__, "mfglib", version("mfglib"), "open_spiel", version("open_spiel"),
      "bench-mfg-suite", version("bench-mfg-suite"))
PY
echo "$want" > "$STAMP"
echo "peers venv ready: $VENV"

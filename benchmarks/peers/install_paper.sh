#!/usr/bin/env bash
# Create <repo>/.venv-paper for the calibration paper's code (KachmanLab/MFGParameterCalibration),
# with the packages of benchmarks/peers/requirements-paper.txt. The paper's repository itself is
# not installed or committed: fetch it into a folder outside the repository and pass that folder
# to benchmarks/paper_calibration.py --paper-code DIR. Idempotent (checksum stamp).
#   bash benchmarks/peers/install_paper.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$ROOT/.venv-paper"
REQ="$HERE/requirements-paper.txt"
STAMP="$VENV/.paper-installed"
PY="${PYTHON:-python3}"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]] && "$VENV/bin/python" -c "import jax, flax, optax, orbax.checkpoint" 2>/dev/null; then
  echo "paper venv up to date: $VENV"
  exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
rm -f "$STAMP"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
"$VENV/bin/python" -c "import jax, flax, optax, orbax.checkpoint; print('jax', jax.__version__, 'flax', flax.__version__)"
echo "$want" > "$STAMP"
echo "paper venv ready: $VENV"

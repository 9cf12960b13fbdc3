#!/usr/bin/env bash
# One entry point for a fresh machine: creates the Python environment if it is missing, then
#   ./run.sh demo [sage-demo options]   runs the demo (fused output written under out/demo)
#   ./run.sh test [pytest options]      runs the linter (ruff.toml), then the whole test suite
#   ./run.sh env                        only creates / updates the environment
# The environment is .venv beside this file (override with SAGE_VENV); it is rebuilt when setup.py changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="${SAGE_VENV:-$here/.venv}"

ensure_env() {
  local stamp="$venv/.sage-env-stamp" want
  want="$(sha256sum setup.py | cut -d' ' -f1)"
  if [[ -x "$venv/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
    return
  fi
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
    echo "run.sh: $py is $("$py" --version 2>&1); the ROS 2 Kilted wheels need Python 3.10 to 3.12 (set PYTHON=...)" >&2
    exit 2
  fi
  echo "run.sh: creating the environment in $venv (first run: a few minutes, PyTorch is large)" >&2
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q -e ".[ros,train,export,dev]"
  echo "$want" >"$stamp"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  demo) ensure_env; exec "$venv/bin/sage-demo" "$@" ;;
  test) ensure_env; "$venv/bin/ruff" check --quiet . || { echo "run.sh: ruff found the problems above" >&2; exit 1; }
        exec "$venv/bin/python" -m pytest tests "$@" ;;
  env)  ensure_env ;;
  *) echo "usage: ./run.sh demo|test|env [options]" >&2; exit 2 ;;
esac

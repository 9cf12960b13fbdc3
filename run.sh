#!/usr/bin/env bash
# One entry point for a fresh machine: creates the Python environments if they are missing, then
#   ./run.sh demo [sage-demo options]   runs the demo (fused output written under out/demo)
#   ./run.sh test [pytest options]      runs the linter (ruff.toml), then the whole test suite; without
#                                       options also the library and node tests on the oldest versions
#                                       setup.py claims (constraints/oldest.txt)
#   ./run.sh env                        only creates / updates the environments
# Environments (each rebuilt when what it is built from changes):
#   .venv          the product, exactly as pinned in constraints/env.txt      (SAGE_VENV)
#   .venv-colcon   colcon-core + colcon-ros (constraints/colcon.txt), for the tests that build the package in
#                  a throwaway ROS workspace; it sees .venv's packages the way a robot's system Python sees
#                  apt's ROS and the PyTorch installed beside it, and .venv never sees colcon
#   .venv-oldest   the oldest NumPy / OpenCV / PyYAML / tqdm / rosbags setup.py accepts (test command only)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="${SAGE_VENV:-$here/.venv}"
colcon_venv="$here/.venv-colcon"
oldest_venv="$here/.venv-oldest"
pip_quiet=(--disable-pip-version-check -q)
# The tests the oldest environment runs: the library (sage_core) and the node, not training or export tools.
oldest_tests=(tests/test_image_conversion.py tests/test_compressed.py tests/test_color.py tests/test_guards.py
              tests/test_pairing.py tests/test_worker.py tests/test_metrics.py tests/test_thermal_alignment.py
              tests/test_tone_mapping.py tests/test_temporal.py tests/test_time_offset.py tests/test_calibrate.py
              tests/test_cli.py tests/test_backends.py tests/test_fusion_node.py tests/test_node_transports.py
              tests/test_node_hostile_input.py tests/test_managed_node.py tests/test_node_clock.py
              tests/test_bags.py tests/test_bags_cli.py tests/test_rectification.py tests/test_node_rectification.py
              tests/test_fusion_smoothing.py)

python_ok() {
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))'; then
    echo "run.sh: $py is $("$py" --version 2>&1); the ROS 2 Kilted wheels need Python 3.10 to 3.12 (set PYTHON=...)" >&2
    exit 2
  fi
}

# make_env DIR STAMP_TEXT MESSAGE PIP_ARGS...: (re)create DIR unless its stamp says it was built from STAMP_TEXT.
make_env() {
  local dir="$1" want="$2" message="$3"
  shift 3
  if [[ -x "$dir/bin/python" && "$(cat "$dir/.sage-env-stamp" 2>/dev/null)" == "$want" ]]; then
    return
  fi
  python_ok
  echo "run.sh: $message in $dir" >&2
  rm -rf "$dir"
  "${PYTHON:-python3}" -m venv "$dir"
  "$dir/bin/python" -m pip install "${pip_quiet[@]}" "$@"
  echo "$want" >"$dir/.sage-env-stamp"
}

ensure_env() {
  make_env "$venv" "$(cat setup.py constraints/env.txt | sha256sum | cut -d' ' -f1)" \
    "creating the environment (first run: a few minutes, PyTorch is large)" \
    -c constraints/env.txt -e ".[ros,opencv,train,export,dev]"
}

ensure_colcon_env() {
  local site
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  make_env "$colcon_venv" "$(cat constraints/colcon.txt | sha256sum | cut -d' ' -f1) $site" \
    "creating the colcon environment" -c constraints/colcon.txt colcon-core colcon-ros
  # addsitedir, not a plain path: the product's own .pth files (the ROS wheels' bootstrapper) must run too.
  local own
  own="$("$colcon_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "import site; site.addsitedir('$site')" >"$own/sage_product_env.pth"
}

ensure_oldest_env() {
  make_env "$oldest_venv" "$(cat setup.py constraints/oldest.txt | sha256sum | cut -d' ' -f1)" \
    "creating the oldest-versions environment" -c constraints/oldest.txt -e ".[ros,opencv,dev]"
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  demo) ensure_env; exec "$venv/bin/sage-demo" "$@" ;;
  test) ensure_env; ensure_colcon_env
        "$venv/bin/ruff" check --quiet . || { echo "run.sh: ruff found the problems above" >&2; exit 1; }
        SAGE_COLCON="$colcon_venv/bin/colcon" "$venv/bin/python" -m pytest tests "$@"
        if [[ $# -eq 0 ]]; then
          ensure_oldest_env
          echo "run.sh: the library and node tests on the oldest versions claimed (constraints/oldest.txt)" >&2
          "$oldest_venv/bin/python" -m pytest -q "${oldest_tests[@]}"
        fi ;;
  env)  ensure_env; ensure_colcon_env ;;
  *) echo "usage: ./run.sh demo|test|env [options]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Creates .venv (Python 3.11) and .venv-rasa (Python 3.10) from the lock files.
# Idempotent: a venv is reinstalled only when its lock file changed (stamp holds the lock's hash).
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # find_python 3.10 -> prints an interpreter path
  local want=$1 cand
  for cand in "python$want" "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/$want"*/bin/python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import sys; assert sys.version_info[:2] == tuple(map(int, '$want'.split('.')))" 2>/dev/null; then
      command -v "$cand"; return 0
    fi
  done
  if command -v uv >/dev/null 2>&1 && uv python find "$want" >/dev/null 2>&1; then uv python find "$want"; return 0; fi
  return 1
}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

make_venv() {  # make_venv DIR PYVER LOCK NODEPS [pre-install args...]  (NODEPS: a file installed with --no-deps, or -)
  local dir=$1 ver=$2 lock=$3 nodeps=$4; shift 4
  local want; want=$(hash_of "$lock" ${nodeps#-})
  if [[ -f "$dir/.lock-hash" && "$(cat "$dir/.lock-hash")" == "$want" && -x "$dir/bin/python" ]]; then
    echo "setup: $dir is up to date"; return 0
  fi
  local py
  if ! py=$(find_python "$ver"); then
    echo "setup: Python $ver is required but was not found." >&2
    echo "       Install it (e.g. 'pyenv install $ver', 'uv python install $ver', or your distro's python$ver package) and run 'make setup' again." >&2
    exit 1
  fi
  echo "setup: creating $dir with $py ($lock)"
  [[ -x "$dir/bin/python" ]] || "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --upgrade "pip<25"
  if [[ $# -gt 0 ]]; then "$dir/bin/python" -m pip install -q "$@"; fi
  "$dir/bin/python" -m pip install -q -r "$lock"
  if [[ "$nodeps" != "-" ]]; then "$dir/bin/python" -m pip install -q --no-deps -r "$nodeps"; fi
  echo "$want" > "$dir/.lock-hash"
}

# torch first, as the CPU build: otherwise a dependency pulls the CUDA build (gigabytes).
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
make_venv .venv 3.11 requirements/app.lock - ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$TORCH_SPEC"
make_venv .venv-rasa 3.10 requirements/rasa.lock requirements/rasa-nodeps.txt

#!/usr/bin/env bash
# Install everything speechtext needs on a fresh Debian/Ubuntu machine, idempotently:
#   - espeak-ng and flite (speech synthesisers for the recipes and tests) with apt-get
#   - a virtualenv in .venv with speechtext (editable) and its test extra
# Usage: bash tools/setup.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=""
for tool in espeak-ng flite; do command -v $tool >/dev/null || need_apt="$need_apt $tool"; done
if [ -n "$need_apt" ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing$need_apt with apt-get"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq $need_apt >/dev/null
fi
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=.venv/.speechtext-installed
if [ ! -f $stamp ] || [ pyproject.toml -nt $stamp ]; then
  echo "setup: installing speechtext and its dependencies into .venv (torch 2.11, torchaudio 2.11, transformers, ...)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch $stamp
fi
echo "setup: done (activate with: . .venv/bin/activate)"

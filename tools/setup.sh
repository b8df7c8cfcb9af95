#!/usr/bin/env bash
# Install everything speechtext needs on a fresh Debian/Ubuntu machine, idempotently:
#   - with apt-get: espeak-ng, flite, festival + festvox-kdlpc16k (speech synthesisers for the recipes
#     and tests), asterisk-core-sounds-en-wav (recordings of a real voice, for test_real_digits) and sox
#     (the pipes of Kaldi-style speed-perturbed data dirs)
#   - a virtualenv in .venv with speechtext (editable) and its dev extra (tests, Piper's voice,
#     the peer recognisers PocketSphinx and whisper tiny.en, kenlm)
# Usage: bash tools/setup.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=""
for pkg in espeak-ng flite festival festvox-kdlpc16k asterisk-core-sounds-en-wav sox; do
  dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || need_apt="$need_apt $pkg"
done
if [ -n "$need_apt" ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing$need_apt with apt-get"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $need_apt >/dev/null
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

# Environment for the recipe: the repository's virtualenv when there is one, else what is installed.
# The repository is found through the recipes/ symlink, so a copy of this directory works too.
root=$(cd "$(dirname "$(readlink -f recipes)")" && pwd)
if [ -f "$root/.venv/bin/activate" ] && [ -z "${VIRTUAL_ENV:-}" ]; then . "$root/.venv/bin/activate"; fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 LC_ALL=C

#!/usr/bin/env bash
# Stage 0 of synth_commands: synthesise the corpus into wav/ and data/{train,dev,test,test_flite}.
# Skipped when data/.done records the same options (delete data/ to regenerate).
set -euo pipefail
size=full; seed=1
. recipes/parse_options.sh
case $size in
  full)  opts="--num-train 4000 --num-dev 300 --num-test 500 --num-flite 500 --num-zeroshot 500"; align=100 ;;
  smoke) opts="--num-train 48 --num-dev 8 --num-test 8 --num-flite 8 --num-zeroshot 12 --dev-voices 4 --test-voices 4"
         align=4 ;;
  *) echo "$0: unknown --size $size (full or smoke)" >&2; exit 1 ;;
esac
for tool in espeak-ng flite; do
  command -v $tool >/dev/null || { echo "$0: $tool is not installed; run tools/setup.sh (apt-get install -y espeak-ng flite)" >&2; exit 1; }
done
stamp="$opts --seed $seed --align $align"
if [ -f data/.done ] && [ "$(cat data/.done)" = "$stamp" ]; then
  echo "$0: data/ is up to date ($stamp)"; exit 0
fi
rm -rf data wav  # other options: synthesise afresh rather than mix in stale files
python3 local/make_corpus.py --data-dir data --wav-dir wav --seed "$seed" $opts
voices=$(echo "$opts" | grep -o -- '--[a-z]*-voices [0-9]*' | tr '\n' ' ' || true)
python3 local/make_align_set.py --num "$align" --seed "$seed" $voices
echo "$stamp" > data/.done

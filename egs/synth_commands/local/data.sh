#!/usr/bin/env bash
# Stage 0 of synth_commands: synthesise the corpus into wav/ and data/: train (espeak-ng, Festival kdl
# and Piper joe: data/train_synth; digit strings of those voices spoken one digit at a time with pauses,
# --spliced N, 600 by default: data/train_spliced; with --real-copies N also real speech, asterisk's
# prompts without digits, listed N times: data/train_real), dev/test/test_zeroshot/test_align (held-out espeak-ng
# voices), test_flite (a synthesiser never trained on) and test_real_digits (a real human voice:
# asterisk's digit recordings).
# Skipped when data/.done records the same options (delete data/ to regenerate).
set -euo pipefail
size=full; seed=1; real_copies=0; spliced=  # real-copies: off by default (README "Real speech in training")
. recipes/parse_options.sh
case $size in
  full)  opts="--num-train 2000 --num-festival 1000 --num-piper 1000 --num-dev 300 --num-test 500 --num-flite 500 --num-zeroshot 500"
         align=100; real=200; prompts="--copies $real_copies"; spliced=${spliced:-600} ;;
  smoke) opts="--num-train 32 --num-festival 8 --num-piper 8 --num-dev 8 --num-test 8 --num-flite 8 --num-zeroshot 12 --dev-voices 4 --test-voices 4"
         align=4; real=6; prompts="--copies $real_copies --limit 6"; spliced=${spliced:-6} ;;
  *) echo "$0: unknown --size $size (full or smoke)" >&2; exit 1 ;;
esac
stamp="$opts --seed $seed --align $align --real $real"
[ "$spliced" = 0 ] || stamp="$stamp --spliced $spliced"
[ "$real_copies" = 0 ] || stamp="$stamp --real-prompts $prompts"
if [ -f data/.done ] && [ "$(cat data/.done)" = "$stamp" ]; then
  echo "$0: data/ is up to date ($stamp)"; exit 0
fi
rm -rf data wav  # other options: synthesise afresh rather than mix in stale files
python3 local/make_corpus.py --data-dir data --wav-dir wav --seed "$seed" $opts
voices=$(echo "$opts" | grep -o -- '--[a-z]*-voices [0-9]*' | tr '\n' ' ' || true)
python3 local/make_align_set.py --num "$align" --seed "$seed" $voices
python3 local/make_real_digits.py --num "$real" --seed "$seed"
parts=""  # made from data/train's voices, then joined to it; the synthesis head trains on data/train_synth
[ "$spliced" = 0 ] || { python3 local/make_spliced_digits.py --num "$spliced" --seed "$seed"; parts=data/train_spliced; }
[ "$real_copies" = 0 ] || { python3 local/make_real_prompts.py $prompts; parts="$parts data/train_real"; }
mv data/train data/train_synth
speechtext data combine data/train data/train_synth $parts
echo "$stamp" > data/.done

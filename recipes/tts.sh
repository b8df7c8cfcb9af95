#!/usr/bin/env bash
# Shared synthesis stages, run after recipes/asr.sh on a joint model (text encoder + fusion):
#   6  train the synthesis head on --init-model (its backbone frozen; durations from its CTC alignment)
#   7  synthesise --eval-set sentences in its held-out voices from another utterance of the same voice
#      (and, as the floors, of another voice and in the average voice of 20 training voices, no reference
#      of the target's voice); score them with recipes/eval_synthesis.py (whisper
#      tiny.en, resemblyzer, MCD-DTW, our recogniser, RTF; PNG examples) beside two ceilings on the same
#      sentences: the real audio, and Griffin-Lim of its mel; a section of RESULTS.md
set -euo pipefail
stage=6
stop_stage=100
init_model=exp/train/final
tts_config=conf/tts.yaml
train_set=train
valid_set=dev
eval_set=test
voices=20                  # held-out voices synthesised
per_voice=3                # sentences per voice
plots=3                    # example PNGs
train_opts=""
results=RESULTS.md
. "$(dirname "$0")/parse_options.sh"

exp=exp/$(basename "${tts_config%.*}")
. "$(dirname "$0")/lib.sh"
mkdir -p exp

if run_stage 6; then
  if [ -f "$exp/final/speechtext.json" ]; then
    log 6 "$exp/final exists; delete it to train again"
  else
    resume=""; [ -f "$exp/last.pt" ] && resume="--resume"
    log 6 "training the synthesis head $exp on $init_model ${resume:+(resuming)}"
    timed 6 "$(dirname "$0")/launch.sh" --backend "${backend:-local}" --ngpu "${ngpu:-0}" --nodes "${nodes:-1}" \
      --job-dir "$exp" -- train --config "$tts_config" --train-dir "data/$train_set" --valid-dir "data/$valid_set" \
      --out-dir "$exp" --set "train.init_from=$init_model" --resume-if-present $train_opts
  fi
fi

if run_stage 7; then
  rm -f "$exp/voices_$eval_set.npz"  # the real utterances' speaker embeddings, shared by the five scorings
  kinds="same unrelated average"; [ "$voices" -gt 1 ] || kinds="same average"  # one voice has no other voice for the floor
  outs=""; floors=""
  for kind in $kinds real griffin-lim; do
    case $kind in real|griffin-lim) dir=$exp/ceiling_${eval_set}_$kind ;; *) dir=$exp/synth_${eval_set}_$kind ;; esac
    rm -rf "$dir"; outs="$outs --out $kind=$dir"; [ $kind = same ] || floors="$floors --wav-dir $dir"
  done
  log 7 "synthesising $voices voices x $per_voice sentences of data/$eval_set ($kinds references) and the ceilings"
  timed 7 python3 "$(dirname "$0")/synthesize_set.py" --model "$exp/final" --data "data/$eval_set" \
    --voices "$voices" --per-voice "$per_voice" --average-of "data/$train_set" $outs
  log 7 "scoring $exp/synth_${eval_set}_same against data/$eval_set"
  timed 7 python3 "$(dirname "$0")/eval_synthesis.py" --data "data/$eval_set" --wav-dir "$exp/synth_${eval_set}_same" \
    --recogniser "$init_model" --voice-cache "$exp/voices_$eval_set.npz" --plots "$plots" --plot-dir "$exp/plots"
  log 7 "scoring the floors and ceilings (voice and MCD; the real audio was heard above)"
  timed 7 python3 "$(dirname "$0")/eval_synthesis.py" --data "data/$eval_set" $floors --skip-real --no-recogniser \
    --no-whisper --voice-cache "$exp/voices_$eval_set.npz"
  python3 "$(dirname "$0")/synthesis_results.py" --exp "$exp" --eval-set "$eval_set" --out "$results"
  log 7 "wrote the $exp section of $results"
fi

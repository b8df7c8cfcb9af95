#!/usr/bin/env bash
# A synthesis corpus's recipe (egs/ljspeech, egs/vctk): stages 0-5 of recipes/asr.sh fine-tune the joint
# backbone (CTC + attention decoder + text encoder + fusion) from --pretrained and score its recognition of
# the test set; stages 6-7 of recipes/tts.sh train the synthesis head on it and judge --voices x --per-voice
# test sentences.
set -euo pipefail
stage=0; stop_stage=100; data_prep=""; pretrained=""; train_config=conf/train.yaml; tts_config=conf/tts.yaml
train_opts=""; tts_opts=""; voices=1; per_voice=30
. "$(dirname "$0")/parse_options.sh"
"$(dirname "$0")/asr.sh" --stage "$stage" --stop-stage "$stop_stage" --train-config "$train_config" \
  --data-prep "$data_prep" --train-set train --valid-set dev --test-sets test --decoders "greedy attention" \
  --train-opts "--set model.encoder.pretrained=$pretrained $train_opts"
"$(dirname "$0")/tts.sh" --stage "$stage" --stop-stage "$stop_stage" --tts-config "$tts_config" --voices "$voices" \
  --per-voice "$per_voice" --init-model "exp/$(basename "${train_config%.*}")/final" --train-opts "$tts_opts"

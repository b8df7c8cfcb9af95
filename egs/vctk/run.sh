#!/usr/bin/env bash
# VCTK (109 speakers, 44 h): multi-speaker synthesis conditioning, zero-shot in voices never trained on (the
# 11 speakers YourTTS held out are the test set). Stages 0-5 fine-tune a pretrained wav2vec2 / HuBERT / WavLM
# (--pretrained) into the joint backbone (CTC + attention decoder + text encoder + fusion; conf/train.yaml)
# and score its recognition of the unseen speakers; stages 6-7 train the synthesis head on the frozen
# backbone (conf/tts.yaml) and judge its speech for each test speaker from another of their utterances as the
# reference, and from another speaker's as the floor (speechtext[eval] judges). VCTK 0.92 (first microphone,
# silence-trimmed flac) or 0.80 (wav48); recordings without a transcript are left out and counted.
#   bash run.sh --corpus-dir /data/VCTK-Corpus-0.92
set -euo pipefail
. ./path.sh; . ./cmd.sh
stage=0; stop_stage=100; corpus_dir=/data/VCTK-Corpus-0.92; pretrained=facebook/wav2vec2-base
train_config=conf/train.yaml; tts_config=conf/tts.yaml; train_opts=""; tts_opts=""
. recipes/parse_options.sh
recipes/synthesis_recipe.sh --stage "$stage" --stop-stage "$stop_stage" --data-prep "speechtext prepare-corpus vctk ${corpus_dir@Q} data" \
  --pretrained "$pretrained" --train-config "$train_config" --tts-config "$tts_config" --train-opts "$train_opts" \
  --tts-opts "$tts_opts" --voices 11 --per-voice 5

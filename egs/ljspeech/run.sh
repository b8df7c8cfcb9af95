#!/usr/bin/env bash
# LJSpeech (one speaker, 24 h): synthesis conditioning. Stages 0-5 fine-tune a pretrained wav2vec2 /
# HuBERT / WavLM (--pretrained) into the joint backbone (CTC + attention decoder + text encoder + fusion;
# conf/train.yaml) and score its recognition on the held-out test set; stages 6-7 train the synthesis head
# on that frozen backbone (conf/tts.yaml) and judge its speech on test sentences, each spoken from another
# test utterance as the reference (whisper tiny.en WER, resemblyzer similarity, MCD-DTW, RTF; needs
# speechtext[eval]). Split: the last 500 utterances are dev (250) and test (250), as ESPnet's ljspeech recipe.
#   bash run.sh --corpus-dir /data/LJSpeech-1.1
#   bash run.sh --corpus-dir /data/LJSpeech-1.1 --ngpu 4 --stage 6      # the synthesis head only
set -euo pipefail
. ./path.sh; . ./cmd.sh
stage=0; stop_stage=100; corpus_dir=/data/LJSpeech-1.1; pretrained=facebook/wav2vec2-base
train_config=conf/train.yaml; tts_config=conf/tts.yaml; train_opts=""; tts_opts=""; num_dev=250; num_test=250
. recipes/parse_options.sh
recipes/synthesis_recipe.sh --stage "$stage" --stop-stage "$stop_stage" --data-prep "speechtext prepare-corpus ljspeech ${corpus_dir@Q} data --num-dev $num_dev --num-test $num_test" \
  --pretrained "$pretrained" --train-config "$train_config" --tts-config "$tts_config" --train-opts "$train_opts" \
  --tts-opts "$tts_opts" --voices 1 --per-voice 30

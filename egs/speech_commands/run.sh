#!/usr/bin/env bash
# Google Speech Commands v2: keyword spotting by fine-tuning a pretrained wav2vec2 / HuBERT / WavLM
# (--pretrained) with the command head's closed-set intent classifier (+ CTC on the spoken word), on the
# corpus's own validation/testing lists. --task 35: every word a class; --task 12: yes no up down left
# right on off stop go + _unknown_ + _silence_ (one-second clips of the background noise). Intent
# accuracy is the headline (RESULTS.md); conf/train.yaml names the published setup it follows.
#   bash run.sh --corpus-dir /data/speech_commands_v0.02 --task 12
#   bash run.sh --corpus-dir /data/speech_commands_v0.02 --task 35 --pretrained microsoft/wavlm-base-plus --ngpu 4
set -euo pipefail
. ./path.sh; . ./cmd.sh
stage=0; stop_stage=100; corpus_dir=/data/speech_commands_v0.02; task=35; pretrained=facebook/wav2vec2-base
train_config=conf/train.yaml; train_opts=""
. recipes/parse_options.sh
recipes/asr.sh --stage "$stage" --stop-stage "$stop_stage" --train-config "$train_config" --tag "train_task$task" \
  --data-prep "speechtext prepare-corpus gsc ${corpus_dir@Q} data --task $task" \
  --train-set train --valid-set valid --test-sets test --decoders greedy \
  --train-opts "--set model.encoder.pretrained=$pretrained $train_opts"

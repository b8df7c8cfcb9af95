#!/usr/bin/env bash
# Fluent Speech Commands: spoken language understanding (31 intents: action, object, location) on the
# corpus's own train/valid/test split, with a pretrained wav2vec2 / HuBERT / WavLM (--pretrained) frozen as
# SUPERB's intent-classification task does, and the command head, text encoder and shared space trained on
# top. --holdout keeps that share of each intent's phrasings out of training: test_zeroshot scores commands
# in wordings the model never heard (zero-shot, commands given as text). Intent accuracy and zero-shot
# accuracy land in RESULTS.md; conf/train.yaml names the published setup and its figures.
#   bash run.sh --corpus-dir /data/fluent_speech_commands_dataset
#   bash run.sh --corpus-dir /data/fluent_speech_commands_dataset --pretrained microsoft/wavlm-base-plus --ngpu 2
set -euo pipefail
. ./path.sh; . ./cmd.sh
stage=0; stop_stage=100; corpus_dir=/data/fluent_speech_commands_dataset; holdout=0.2
pretrained=facebook/wav2vec2-base; train_config=conf/train.yaml; train_opts=""
. recipes/parse_options.sh
zeroshot=$(awk -v h="$holdout" 'BEGIN { if (h > 0) print "test_zeroshot" }')  # no held-out phrasings: no such set
recipes/asr.sh --stage "$stage" --stop-stage "$stop_stage" --train-config "$train_config" \
  --data-prep "speechtext prepare-corpus fsc ${corpus_dir@Q} data --holdout $holdout" \
  --train-set train --valid-set valid --test-sets test --zeroshot-set "$zeroshot" --decoders greedy \
  --train-opts "--set model.encoder.pretrained=$pretrained $train_opts"

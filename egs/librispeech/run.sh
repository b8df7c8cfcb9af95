#!/usr/bin/env bash
# LibriSpeech: fine-tune a pretrained wav2vec2 / HuBERT / WavLM (--pretrained: a hub id or a local
# directory) with CTC on train-clean-100 (--hours 960: all 960 h), validate on dev-other (as fairseq), score
# dev-clean/dev-other/test-clean/test-other. conf/train_100h.yaml and conf/train_960h.yaml follow fairseq's
# wav2vec 2.0 fine-tuning setups (sources and reported figures in their headers).
#   bash run.sh --corpus-dir /data/LibriSpeech              # stage 0 says where to get it when it is absent
#   bash run.sh --corpus-dir /data/LibriSpeech --pretrained microsoft/wavlm-base-plus --ngpu 8
#   bash run.sh --corpus-dir /data/LibriSpeech --hours 960 --backend slurm --nodes 4 --ngpu 8
#   bash run.sh --stage 4                                   # re-decode and re-score only
set -euo pipefail
. ./path.sh; . ./cmd.sh
stage=0; stop_stage=100; corpus_dir=/data/LibriSpeech; hours=100; pretrained=facebook/wav2vec2-base
train_config=""; train_opts=""; decoders="greedy ctc"; speed_perturb=""
. recipes/parse_options.sh
case $hours in
  100) train_set=train_clean_100; subsets=train-clean-100; combine="" ;;
  960) train_set=train_960; subsets=train-clean-100,train-clean-360,train-other-500
       combine=" && speechtext data combine data/train_960 data/train_clean_100 data/train_clean_360 data/train_other_500" ;;
  *) echo "$0: --hours is 100 or 960" >&2; exit 1 ;;
esac
recipes/asr.sh --stage "$stage" --stop-stage "$stop_stage" --train-config "${train_config:-conf/train_${hours}h.yaml}" \
  --data-prep "speechtext prepare-corpus librispeech ${corpus_dir@Q} data --subsets $subsets,dev-clean,dev-other,test-clean,test-other$combine" \
  --train-set "$train_set" --valid-set dev_other --test-sets "dev_clean dev_other test_clean test_other" \
  --decoders "$decoders" --speed-perturb "$speed_perturb" --max-seconds 35 \
  --train-opts "--set model.encoder.pretrained=$pretrained $train_opts"

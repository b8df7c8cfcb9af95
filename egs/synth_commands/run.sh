#!/usr/bin/env bash
# synth_commands: everyday voice commands synthesised with espeak-ng (train/dev/test split by voice)
# and flite (test_flite: a synthesiser never trained on). Trains a recogniser from nothing on CPU.
#   bash run.sh                      # the full recipe (~20 min on 2 CPU cores)
#   bash run.sh --size smoke         # a minute-long check of every stage
#   bash run.sh --stage 4            # re-decode and re-score only
#   bash run.sh --train-config conf/train_ctc.yaml --decoders "greedy ctc"   # the CTC-only baseline
set -euo pipefail
. ./path.sh; . ./cmd.sh
stage=0; stop_stage=100; size=full; train_config=conf/train.yaml; decoders="greedy ctc joint joint+lm"; lm_steps=1000
. recipes/parse_options.sh
results=RESULTS.md
[ "$size" = smoke ] && train_config=conf/train_smoke.yaml results=exp/RESULTS_smoke.md lm_steps=5
[ "$size" = smoke-joint ] && train_config=conf/train_smoke_joint.yaml results=exp/RESULTS_smoke.md size=smoke lm_steps=5
recipes/asr.sh --stage "$stage" --stop-stage "$stop_stage" --ngpu "$ngpu" --data-prep "local/data.sh --size $size" \
  --train-config "$train_config" --train-set train --valid-set dev --test-sets "test test_flite" \
  --zeroshot-set test_zeroshot --align-set test_align --decoders "$decoders" --lm-steps "$lm_steps" --results "$results"

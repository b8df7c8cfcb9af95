#!/usr/bin/env bash
# synth_commands: everyday voice commands. Training speech from three synthesis methods (espeak-ng,
# Festival's kdl diphones, Piper's neural joe voice); tests on held-out espeak-ng voices, on flite (a
# synthesiser never trained on) and on a real human voice (test_real_digits), with PocketSphinx and
# whisper tiny.en measured on the same files. Trains a recogniser from nothing on CPU, then a synthesis
# head on it (stages 6-7: speech in the voice of a reference recording, scored by judges we did not train),
# then exports the recogniser to ONNX (fp32, int8), scores it beside PyTorch and packs the model (stage 8).
#   bash run.sh                      # the full recipe (37-41 min on 2 CPU cores with setup, fp32 or bf16)
#   bash run.sh --size smoke         # a 1.5-minute check of every stage (smoke-joint: the synthesis too, ~2.5 min)
#   bash run.sh --stage 4            # re-decode and re-score only
#   bash run.sh --train-opts "--set train.amp=none"   # fp32, as on a CPU without native bf16
#   bash run.sh --train-config conf/train_ctc.yaml --decoders "greedy ctc"   # the CTC-only baseline
set -euo pipefail
. ./path.sh; . ./cmd.sh
stage=0; stop_stage=100; size=full; train_config=conf/train.yaml; decoders="greedy joint joint+lm"; lm_steps=600; train_opts=""
. recipes/parse_options.sh
results=RESULTS.md; peers="test_real_digits:100 test:50 test_flite:50"; tts_config=conf/tts.yaml; voices="--voices 20 --per-voice 3"
[ "$size" = smoke ] && train_config=conf/train_smoke.yaml results=exp/RESULTS_smoke.md lm_steps=5 peers="test_real_digits:3 test:3 test_flite:3" tts_config=""
[ "$size" = smoke-joint ] && train_config=conf/train_smoke_joint.yaml results=exp/RESULTS_smoke.md size=smoke lm_steps=5 peers="test_real_digits:3" tts_config=conf/tts_smoke.yaml voices="--voices 4 --per-voice 1 --plots 1"
recipes/asr.sh --stage "$stage" --stop-stage "$stop_stage" --ngpu "$ngpu" --data-prep "local/data.sh --size $size" \
  --train-config "$train_config" --train-set train --valid-set dev --test-sets "test test_flite test_real_digits" \
  --zeroshot-set test_zeroshot --align-set test_align --decoders "$decoders" --lm-steps "$lm_steps" --train-opts "$train_opts" \
  --peer-sets "$peers" --results "$results"
[ -z "$tts_config" ] || recipes/tts.sh --stage "$stage" --stop-stage "$stop_stage" --tts-config "$tts_config" $voices --train-set train_synth \
  --init-model "exp/$(basename "${train_config%.*}")/final" --train-opts "$train_opts" --results "$results"
recipes/export.sh --stage "$stage" --stop-stage "$stop_stage" --model "exp/$(basename "${train_config%.*}")/final" \
  --test-sets test --results "$results"

#!/usr/bin/env bash
# Shared deployment stage, run after recipes/asr.sh on its model:
#   8  export the recogniser to ONNX (fp32 and int8), decode --test-sets through ONNX Runtime with the
#      same decoders and through PyTorch in fp32 (the reference), score all three side by side with
#      model sizes and decoding times (recipes/export_results.py: a section of RESULTS.md), then pack
#      the model directory into one archive with its model card (exp/<tag>/model.tar.gz)
set -euo pipefail
stage=8
stop_stage=100
model=exp/train/final
test_sets="test"
decoders="greedy joint"
beam=10
results=RESULTS.md
. "$(dirname "$0")/parse_options.sh"

exp=$(dirname "$model")
. "$(dirname "$0")/lib.sh"

if run_stage 8; then
  mkdir -p "$exp/onnx"
  jobs=$exp/export_jobs.txt
  : > "$jobs"
  for q in fp32 int8; do
    [ -f "$exp/onnx/model.$q.onnx" ] || echo "- export $model -o $exp/onnx/model.$q.onnx $([ $q = int8 ] && echo "--quantize int8")" >> "$jobs"
  done
  for set in $test_sets; do
    for decoder in $decoders; do
      opts="--decoder $decoder"; [ "$decoder" = greedy ] || opts="$opts --beam $beam"
      for system in torch_fp32 onnx_fp32 onnx_int8; do
        dir=$exp/decode_${set}_${decoder}_$system
        [ -f "$dir/hyp.txt" ] && continue
        mkdir -p "$dir"
        source=$model; [ "$system" = torch_fp32 ] || source=$exp/onnx/model.${system#onnx_}.onnx
        echo "$dir/hyp.txt transcribe $source data/$set --format kaldi --precision fp32 $opts" >> "$jobs"
      done
    done
  done
  # one process: the decoding times compared are those of the decodings alone, without ~5 s of start-up each
  if [ -s "$jobs" ]; then  # a rerun after every export and decoding is there imports nothing
    log 8 "exporting $model to ONNX (fp32, int8) and decoding $test_sets with each system (the commands in $jobs)"
    timed 8 python3 "$(dirname "$0")/speechtext_jobs.py" --stage 8 --wallclock "$jobs"
  fi
  timed 8 python3 "$(dirname "$0")/export_results.py" --model "$model" --sets "$test_sets" --decoders "$decoders" --out "$results"
  log 8 "packing $model into $exp/model.tar.gz"
  timed 8 speechtext pack "$model" -o "$exp/model.tar.gz" --results "$results"
fi

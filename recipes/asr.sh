#!/usr/bin/env bash
# Shared recogniser recipe. A corpus's run.sh sets its options and calls this script.
# Stages (each guarded, idempotent and restartable; --stage N --stop-stage M runs N..M):
#   0  corpus data preparation (the corpus's own --data-prep command; skipped when data/.prep_done
#      records the same command). A corpus that is absent is an error saying where to download it.
#   1  validate the data directories; then, when asked, Kaldi's speed perturbation of the training set
#      (--speed-perturb "0.9 1.0 1.1") and a duration filter (--max-seconds) into data/<train>_sp... dirs
#   2  train (resumes a stopped run from exp/<tag>/last.pt)
#   3  train the external token LM on the training transcripts (when a decoder uses it: "joint+lm")
#   4  decode every test set with the final model, once per decoder in --decoders (all in one process:
#      recipes/speechtext_jobs.py runs each "speechtext transcribe" command line, importing torch once)
#   5  score; word alignment of --align-set against its ref.ctm; cross-modal evaluation and embedding
#      plot when the model has a text encoder; peer recognisers (PocketSphinx, whisper tiny.en) on the
#      same utterances of --peer-sets, when speechtext[eval] is installed; RESULTS.md
set -euo pipefail
stage=0
stop_stage=100
data_prep=""               # command that creates data/<set> for every set
train_config=conf/train.yaml
train_set=train
valid_set=dev
test_sets="test"
zeroshot_set=""            # data set of command phrasings never trained on (cross-modal models)
tag=""                     # experiment name; default: the config file's name
ngpu=${ngpu:-0}            # GPUs per node; > 1: torchrun over that many (DDP)
nodes=${nodes:-1}          # machines (the slurm backend)
backend=${backend:-local}  # local | slurm (recipes/cmd.sh; recipes/launch.sh says how each runs)
train_opts=""              # extra options for "speechtext train", e.g. "--set train.amp=none"
decode_opts=""             # extra options for "speechtext transcribe"
decoders="greedy"          # any of: greedy ctc attention joint joint+lm (the first is the headline)
beam=10
lm_steps=2000              # training steps of the token LM (stage 3)
align_set=""               # data set with a ref.ctm of known word boundaries (stage 5)
peer_sets=""               # "set[:N] ...": test sets (at most N utterances) the peer recognisers are measured on
peer_max_utts=200          # N where a set gives none
speed_perturb=""           # e.g. "0.9 1.0 1.1": train on that many speed-perturbed copies of the training set
min_seconds=0              # training utterances outside min..max seconds are left out (0: no limit)
max_seconds=0
results=RESULTS.md
. "$(dirname "$0")/parse_options.sh"

tag=${tag:-$(basename "${train_config%.*}")}
exp=exp/$tag
mkdir -p exp
. "$(dirname "$0")/lib.sh"

if run_stage 0; then
  if [ -f data/.prep_done ] && [ "$(cat data/.prep_done)" = "$data_prep" ]; then
    log 0 "data/ is prepared ($data_prep); delete data/.prep_done to prepare it again"
  else
    log 0 "data preparation: $data_prep"
    timed 0 bash -c "$data_prep"
    mkdir -p data && echo "$data_prep" > data/.prep_done
  fi
fi

# the training set after stage 1's optional speed perturbation and duration filter
train_src=$train_set
[ -n "$speed_perturb" ] && train_set=${train_set}_sp
[ "$min_seconds$max_seconds" != 00 ] && train_set=${train_set}_filtered

if run_stage 1; then
  for set in $(echo "$train_src $valid_set $test_sets" | tr ' ' '\n' | awk 'NF && !seen[$0]++'); do
    log 1 "validating data/$set"
    timed 1 speechtext validate-data-dir "data/$set"
  done
  current=$train_src
  if [ -n "$speed_perturb" ]; then
    log 1 "speed perturbation ($speed_perturb) of data/$current into data/${current}_sp"
    timed 1 speechtext data speed-perturb "data/$current" "data/${current}_sp" --factors "${speed_perturb// /,}"
    current=${current}_sp
  fi
  if [ "$min_seconds$max_seconds" != 00 ]; then
    log 1 "keeping the utterances of data/$current within ${min_seconds}-${max_seconds} s in data/${current}_filtered"
    timed 1 speechtext data filter "data/$current" "data/${current}_filtered" --min-seconds "$min_seconds" \
      $([ "$max_seconds" != 0 ] && echo "--max-seconds $max_seconds")
  fi
fi

if run_stage 2; then
  if [ -f "$exp/final/speechtext.json" ]; then
    log 2 "$exp/final exists; delete it to train again"
  else
    resume=""; [ -f "$exp/last.pt" ] && resume="--resume"
    log 2 "training $exp ${resume:+(resuming) }on $ngpu GPU(s) through the $backend backend"
    timed 2 "$(dirname "$0")/launch.sh" --backend "$backend" --ngpu "$ngpu" --nodes "$nodes" --job-dir "$exp" -- \
      train --config "$train_config" --train-dir "data/$train_set" --valid-dir "data/$valid_set" --out-dir "$exp" \
      --resume-if-present $train_opts
  fi
fi

if run_stage 3 && [[ " $decoders " == *"+lm "* ]]; then
  if [ -f "$exp/lm/lm.json" ]; then
    log 3 "$exp/lm exists; delete it to train again"
  else
    log 3 "training the token LM on data/$train_set/text"
    timed 3 speechtext lm train "data/$train_set/text" --kaldi-text --model "$exp/final" --out-dir "$exp/lm" \
      --steps "$lm_steps"
  fi
fi

decoder_opts() {  # a decoder's name -> options of "speechtext transcribe"
  case $1 in
    greedy) echo "--decoder greedy" ;;
    *+lm) echo "--decoder ${1%+lm} --beam $beam --lm $exp/lm" ;;
    *) echo "--decoder $1 --beam $beam" ;;
  esac
}

if run_stage 4; then
  : > "$exp/decode_jobs.txt"
  for set in $test_sets; do
    for decoder in $decoders; do
      dir=$exp/decode_${set}_${decoder/+/_}
      mkdir -p "$dir"
      echo "$dir/hyp.txt transcribe $exp/final data/$set --format kaldi $(decoder_opts "$decoder") $decode_opts" \
        >> "$exp/decode_jobs.txt"
    done
  done
  log 4 "decoding $test_sets with: $decoders (one process, the commands in $exp/decode_jobs.txt)"
  timed 4 python3 "$(dirname "$0")/speechtext_jobs.py" --stage 4 "$exp/decode_jobs.txt"
fi

if run_stage 5; then
  for set in $test_sets; do
    for decoder in $decoders; do
      speechtext score "data/$set/text" "$exp/decode_${set}_${decoder/+/_}/hyp.txt"
    done
  done
  if [ -n "$align_set" ]; then
    log 5 "word alignment of data/$align_set against its known word boundaries"
    speechtext align "$exp/final" "data/$align_set" --out "$exp/align_$align_set.ctm"
    python3 "$(dirname "$0")/score_ctm.py" "data/$align_set/ref.ctm" "$exp/align_$align_set.ctm" \
      --out "$exp/align_$align_set.json"
  fi
  if [ -f "$exp/final/text_tokenizer.json" ]; then
    log 5 "cross-modal evaluation: intents, zero-shot ($zeroshot_set), retrieval; plot $exp/embedding_space.png"
    # closed-set intents also read the transcripts of the last (strongest) decoder listed
    timed 5 python3 "$(dirname "$0")/eval_crossmodal.py" --model "$exp/final" --intent-sets "$test_sets" \
      --zeroshot-set "$zeroshot_set" --retrieval-sets "$test_sets" --plot "$exp/embedding_space.png" \
      $(decoder_opts "${decoders##* }")
  fi
  if [ -n "$peer_sets" ]; then
    log 5 "peer recognisers on $peer_sets (at most $peer_max_utts utterances each; cached in exp/peers)"
    ours=(); for decoder in $decoders; do ours+=(--ours "$decoder=$exp/decode_{set}_${decoder/+/_}/hyp.txt"); done
    timed 5 python3 "$(dirname "$0")/eval_peers.py" --sets "$peer_sets" --max-utts "$peer_max_utts" \
      --out-dir exp/peers "${ours[@]}" --json "$exp/peers.json"
  fi
  python3 "$(dirname "$0")/results.py" --exp "$exp" --sets "$test_sets" --decoders "$decoders" \
    ${align_set:+--align-set "$align_set"} --out "$results"
  log 5 "wrote $results"
fi

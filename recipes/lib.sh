# Shared by recipes/asr.sh, tts.sh and export.sh (sourced after option parsing; needs $exp, $stage,
# $stop_stage). A stage's messages (stderr) go to the terminal and to exp/logs/stage<N>.log; a failing
# command stops the recipe with its exit status and names that log.
set -eE -o pipefail
mkdir -p exp/logs
current_stage="" stage_cmd=""
log() { echo "$(date '+%H:%M:%S') [stage $1] ${*:2}"; }
run_stage() { current_stage=$1; [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
stage_log() { echo "exp/logs/stage${current_stage:-0}.log"; }
# timed N cmd...: run cmd as part of stage N, its stderr also into the stage's log, its time into $exp.timing.
# A stage's commands add up; a stage run again (re-decoding, retraining after deleting $exp) replaces the
# times of its earlier run, so RESULTS.md's stage times are those of the run that made the figures.
timed_stages=" "
timed() {
  local s=$1 t0=$SECONDS; shift
  if [[ "$timed_stages" != *" $s "* ]] && [ -f "$exp.timing" ]; then
    { grep -v "^stage$s " "$exp.timing" || true; } > "$exp.timing.tmp" && mv "$exp.timing.tmp" "$exp.timing"
  fi
  timed_stages+="$s "
  current_stage=$s stage_cmd="$*"
  { "$@" 2>&1 >&3 3>&- | tee -a "$(stage_log)" >&2 3>&-; } 3>&1  # stderr through tee; stdout untouched
  echo "stage$s $((SECONDS - t0))" >> "$exp.timing"
  stage_cmd=""
}
trap 'status=$?; echo "$(date "+%H:%M:%S") [stage ${current_stage:-?}] FAILED (exit $status): ${stage_cmd:-$BASH_COMMAND}; read $(stage_log)" >&2; exit $status' ERR

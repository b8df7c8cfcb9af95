#!/usr/bin/env bash
# Augmentation ablation (README "Real voices"): the CTC-only recogniser of conf/ablation.yaml (the raw-sample
# conv front end) trained once per augmentation switched on alone, plus none and all, and once per log-mel
# front end variant (mel, mel_no_norm, mel_4k), each decoded greedily on the held-out espeak
# voices, flite and the real voice. Needs the corpus (bash run.sh --stop-stage 1). Restartable.
#   bash local/ablation.sh [--variants "none speed_pitch formant reverb noise telephone all"] [--steps 600]
set -euo pipefail
. ./path.sh
variants="none speed_pitch formant reverb noise telephone all"; steps=600; sets="test test_flite test_real_digits"
. recipes/parse_options.sh
options() {  # a variant's config overrides, at conf/train.yaml's settings; conf/ablation.yaml has all off
  case $1 in
    none) ;;
    speed_pitch) echo "--set data.speed_perturb=[0.9,1.1] --set data.pitch_prob=0.3" ;;
    formant) echo "--set data.formant_prob=0.3" ;;
    reverb) echo "--set data.reverb_prob=0.2" ;;
    noise) echo "--set data.noise_prob=0.5 --set data.noise_snr_db=[10,40]" ;;
    telephone) echo "--set data.telephone_prob=0.2" ;;
    mel) echo "--set model.encoder.frontend=mel" ;;  # front ends (README "Real voices"), augmentation off
    mel_no_norm) echo "--set model.encoder.frontend=mel --set model.encoder.mel_mean_norm=false" ;;
    mel_4k) echo "--set model.encoder.frontend=mel --set model.encoder.mel_max_hz=4000" ;;
    all) echo "$(options speed_pitch) $(options formant) $(options reverb) $(options noise) $(options telephone)" ;;
    *) echo "local/ablation.sh: unknown variant $1" >&2; exit 1 ;;
  esac
}
for v in $variants; do
  exp=exp/ablation/$v
  if [ ! -f $exp/final/speechtext.json ]; then
    resume=""; [ -f $exp/last.pt ] && resume=--resume
    speechtext train --config conf/ablation.yaml --train-dir data/train --valid-dir data/dev --out-dir $exp \
      --set train.max_steps=$steps $(options $v) $resume
  fi
  for set in $sets; do
    [ -f $exp/hyp_$set.txt ] || { speechtext transcribe $exp/final data/$set --format kaldi > $exp/hyp_$set.tmp && mv $exp/hyp_$set.tmp $exp/hyp_$set.txt; }
  done
done
python3 local/ablation_table.py --variants "$variants" --sets "$sets" --out exp/ablation/RESULTS.md

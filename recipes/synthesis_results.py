#!/usr/bin/env python3
"""Write the synthesis experiment's section of RESULTS.md from ``<exp>/synth_<set>_{same,unrelated}/scores.json``
(recipes/eval_synthesis.py), beside the head's training summary and stage times."""
from __future__ import annotations

import argparse
import datetime
import json
import os

from results import precision_text, stage_times, steps_text, write_section

ROWS = [("whisper_wer_synth", "whisper tiny.en WER % on the synthesis"), ("whisper_wer_real", "whisper tiny.en WER % on the real audio"),
        ("ours_wer_synth", "our recogniser's greedy WER % on the synthesis"), ("ours_wer_real", "our recogniser's greedy WER % on the real audio"),
        ("voice_pass_%", "closer to its own voice than to every other voice (resemblyzer) %"),
        ("voice_pass_of_10_%", "closer to its own voice than to 9 other voices drawn at random (expected over all draws) %"),
        ("voice_rank_mean", "mean rank of its own voice among the voices compared (1 = nearest)"),
        ("cosine_own_voice", "cosine to its own voice"), ("cosine_best_other_voice", "cosine to the nearest other voice"),
        ("voices_compared", "voices compared"), ("mcd_dtw_db", "MCD-DTW against the real utterance, dB"),
        ("rtf", "real-time factor, text -> waveform (Griffin-Lim included; one reference per text)"), ("utterances", "sentences"),
        ("unusable", "syntheses too short or broken to judge (left out of the rows above)")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp", required=True)
    parser.add_argument("--eval-set", required=True)
    parser.add_argument("--out", default="RESULTS.md")
    args = parser.parse_args()
    columns = {"same": f"synth_{args.eval_set}_same", "unrelated": f"synth_{args.eval_set}_unrelated",
               "average": f"synth_{args.eval_set}_average",
               "griffin-lim": f"ceiling_{args.eval_set}_griffin-lim", "real": f"ceiling_{args.eval_set}_real"}
    scores = {}
    for kind, name in columns.items():
        path = os.path.join(args.exp, name, "scores.json")
        scores[kind] = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
    rows = [f"| {label} | " + " | ".join(str(scores[k].get(key, "–")) for k in columns) + " |"
            for key, label in ROWS if any(key in scores[k] for k in columns)]
    training = json.load(open(os.path.join(args.exp, "final", "speechtext.json"), encoding="utf-8")).get("training", {})
    times = stage_times(args.exp)
    plots = sorted(os.listdir(os.path.join(args.exp, "plots"))) if os.path.isdir(os.path.join(args.exp, "plots")) else []
    section = [
        f"## {args.exp}", "",
        f"Synthesis head `{args.exp}/final`; written {datetime.date.today()} by `recipes/synthesis_results.py`. "
        f"Held-out voices of `{args.eval_set}`; each sentence synthesised from another utterance of its own voice "
        "(and, as the floors, from a different voice, and in the average voice of 20 training voices: their "
        "conditioning averaged, no reference of the target's voice), scored against the real utterance by `recipes/eval_synthesis.py`; "
        "the ceilings put the real utterance itself, and its log-mel through the vocoder, in the synthesis's place.", "",
        "| metric | synthesis, reference of the same voice | synthesis, reference of another voice (floor) | "
        "synthesis in the average voice (no reference) | Griffin-Lim of the real mel (vocoder ceiling) | "
        "the real audio (judges' ceiling) |", "|---|---|---|---|---|---|", *rows, "",
        f"- training: {steps_text(training)}; best dev mel L1 (postnet) {training.get('best_dev_postnet', float('nan')):.3f}; "
        f"precision {precision_text(training)}",
        f"- stage times (s): {', '.join(f'{k} {v}' for k, v in sorted(times.items()))}; total {sum(times.values())} s",
        f"- pictures: {', '.join(f'`{args.exp}/plots/{p}`' for p in plots) or 'none'}", "", "",
    ]
    write_section(args.out, args.exp, "\n".join(section))
    print("\n".join(section))


if __name__ == "__main__":
    main()

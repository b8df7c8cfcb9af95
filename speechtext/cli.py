"""The ``speechtext`` command. Each command parses options and calls one public function."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import fields

import click

from .config import INTENT_SOURCES, CommandOptions, LMConfig, SynthesisOptions, TranscribeOptions

DEFAULTS = TranscribeOptions()


def decoding_options(command):
    """The decoder's options (of :class:`~speechtext.config.TranscribeOptions`), shared by the commands that decode."""
    options = [
        click.option("--decoder", type=click.Choice(["greedy", "ctc", "attention", "joint"]), default=DEFAULTS.decoder,
                     show_default=True, help="greedy: CTC best path; ctc: CTC prefix beam search; attention / joint: "
                     "the attention decoder's beam search, joint adding CTC prefix scores."),
        click.option("--beam", "beam_size", type=int, default=DEFAULTS.beam_size, show_default=True),
        click.option("--ctc-weight", type=float, default=DEFAULTS.ctc_weight, show_default=True,
                     help="Joint decoding: weight of CTC against the attention decoder."),
        click.option("--lm", default=DEFAULTS.lm, metavar="LM", help="Shallow fusion with an LM directory (speechtext "
                     "lm train) or an ARPA / KenLM binary n-gram file; needs --decoder joint or attention."),
        click.option("--lm-weight", type=float, default=DEFAULTS.lm_weight, show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _fail(message: str) -> None:
    click.echo(f"speechtext: error: {message}", err=True)
    sys.exit(2)


def expand_inputs(inputs: tuple[str, ...]) -> list:
    """Audio paths, Kaldi ``wav.scp`` files, or data directories -> ``(id, spec)`` pairs / paths."""
    from .data import read_data_dir, read_table

    out = []
    for entry in inputs:
        if os.path.isdir(entry):
            out += [(u.utt_id, u.audio) for u in read_data_dir(entry, need_text=False, check_files=False)]
        elif entry.endswith(".scp"):
            out += [(key, rest) for _, key, rest in read_table(entry)]
        else:
            out.append(entry)
    return out


def _write(results, fmt: str, output_dir: str) -> None:
    from .align import to_srt, to_vtt

    for r in results:
        if r.error:
            click.echo(f"speechtext: skipped {r.id}: {r.error}", err=True)
            continue
        if fmt in ("srt", "vtt"):
            os.makedirs(output_dir, exist_ok=True)
            path = os.path.join(output_dir, f"{r.id}.{fmt}")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(to_srt(r.words) if fmt == "srt" else to_vtt(r.words))
            click.echo(path)
        elif r.words is not None and fmt == "text":
            click.echo("\n".join(f"{r.source}\t{w.start:.2f}\t{w.end:.2f}\t{w.word}" for w in r.words))
        elif fmt == "json":
            click.echo(json.dumps(r.to_dict(), ensure_ascii=False))
        elif fmt == "kaldi":
            click.echo(f"{r.id} {r.text}".rstrip())
        else:
            click.echo(f"{r.source}\t{r.text}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="speechtext")
def cli() -> None:
    """speechtext: speech-text cross-modal learning toolkit."""


@cli.command()
@click.argument("model_dir")
@click.argument("inputs", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json", "kaldi", "srt", "vtt"]), default="text",
              show_default=True, help="text: 'path<TAB>transcript' ('path<TAB>start<TAB>end<TAB>word' with word "
              "timestamps); kaldi: 'utt-id transcript'; json: one object per line; srt/vtt: subtitle files in --output-dir.")
@click.option("--output-dir", default=".", show_default=True, help="Where srt/vtt files are written (<id>.srt).")
@click.option("--timestamps", type=click.Choice(["none", "word"]), default=DEFAULTS.timestamps, show_default=True,
              help="word: word start/end times from CTC forced alignment.")
@click.option("--chunk-seconds", type=float, default=DEFAULTS.chunk_seconds, show_default=True,
              help="Longer inputs are transcribed in overlapping chunks of this length.")
@click.option("--stride-seconds", type=float, default=DEFAULTS.stride_seconds, show_default=True,
              help="Context dropped at each inner chunk edge (less than half a chunk).")
@decoding_options
@click.option("--batch-seconds", type=float, default=DEFAULTS.batch_seconds, show_default=True)
@click.option("--max-padding", type=float, default=DEFAULTS.max_padding, show_default=True,
              help="A batch takes no input shorter than (1 - this) x its longest; 1 packs by --batch-seconds alone.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=DEFAULTS.precision, show_default=True)
@click.option("--max-seconds", type=float, default=DEFAULTS.max_seconds, show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--backend", type=click.Choice(["torch", "onnxruntime"]), default="torch", show_default=True,
              help="onnxruntime: run MODEL_DIR's recogniser exported to ONNX (once, cached); an .onnx MODEL_DIR "
              "always runs there.")
@click.option("--progress/--no-progress", default=False)
def transcribe(model_dir, inputs, fmt, output_dir, device, backend, progress, **options) -> None:
    """Transcribe audio files, wav.scp lists or data directories with MODEL_DIR (a model directory, its
    packed archive, or an ONNX export).

    One line per input; a bad input is reported on stderr and the rest still run (exit status 1).
    """
    from . import load_model

    opts = TranscribeOptions(**{f.name: options[f.name] for f in fields(TranscribeOptions) if f.name in options})
    if fmt in ("srt", "vtt"):
        opts.timestamps = "word"
    try:
        pipeline = load_model(model_dir, device=device, backend=backend)
        results = pipeline.transcribe(expand_inputs(inputs), opts, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    _write(results, fmt, output_dir)
    if any(r.error for r in results):
        sys.exit(1)


@cli.command()
@click.argument("model_dir")
@click.argument("data_dir")
@click.option("--out", "out_path", default="-", show_default=True, help="CTM file to write; - for stdout.")
@click.option("--progress/--no-progress", default=False)
def align(model_dir, data_dir, out_path, progress) -> None:
    """Word alignments of a data dir's reference text as a Kaldi CTM file (utterance-relative times).

    Utterances that cannot be aligned are reported on stderr and skipped (exit status 1)."""
    from . import load_model
    from .align import align_utterances, ctm_lines
    from .data import DataDirError, read_data_dir

    try:
        utterances = list(read_data_dir(data_dir))
        results = align_utterances(load_model(model_dir), utterances, progress=progress)
    except (DataDirError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    lines = []
    for r in results:
        if r.error:
            click.echo(f"speechtext: skipped {r.id}: {r.error}", err=True)
        else:
            lines += ctm_lines(r.id, r.words)
    text = "".join(line + "\n" for line in lines)
    if out_path == "-":
        click.echo(text, nl=False)
    else:
        with open(out_path + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(out_path + ".tmp", out_path)
    if any(r.error for r in results):
        sys.exit(1)


@cli.command()
@click.argument("ref_text", type=click.Path(exists=True, dir_okay=False))
@click.argument("hyp_text", type=click.Path(exists=True, dir_okay=False))
@click.option("--out-dir", default=None, help="Write wer.txt and per_utt.pra (alignments) here.")
def score(ref_text, hyp_text, out_dir) -> None:
    """Score a hypothesis Kaldi text file against a reference one (WER, CER, alignments)."""
    from .score import format_result, score_files

    result = score_files(ref_text, hyp_text, out_dir or os.path.dirname(os.path.abspath(hyp_text)))
    click.echo(format_result(result))


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--train-dir", required=True)
@click.option("--valid-dir", required=True)
@click.option("--out-dir", required=True)
@click.option("--resume", is_flag=True, help="Continue a stopped run from OUT_DIR/last.pt.")
@click.option("--resume-if-present", is_flag=True,
              help="Continue from OUT_DIR/last.pt when there is one, else start: one command line for a job "
                   "that a scheduler may requeue.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config value, e.g. train.lr=1e-3.")
def train(config_path, train_dir, valid_dir, out_dir, resume, resume_if_present, sets) -> None:
    """Train a model; the final (checkpoint-averaged) model lands in OUT_DIR/final.

    SIGTERM or SIGUSR1 stops it at the next step with last.pt written and exit status 75 (requeue,
    then --resume). Under torchrun, a checkpoint of N processes resumes on any number M: batches are
    global and split across the processes (speechtext.batching.EpochBatches)."""
    from .checkpoint import CheckpointError
    from .config import ConfigError, load_config, parse_overrides
    from .data import DataDirError
    from .train import PREEMPTED_EXIT, Preempted
    from .train import train as run_training

    try:
        config = load_config(config_path, parse_overrides(sets))
        resume = resume or (resume_if_present and os.path.exists(os.path.join(out_dir, "last.pt")))
        final = run_training(config, train_dir, valid_dir, out_dir, resume=resume)
    except (ConfigError, DataDirError, CheckpointError) as exc:
        _fail(str(exc))
    except Preempted as exc:
        click.echo(f"speechtext: preempted: {exc}; run again with --resume (exit status {PREEMPTED_EXIT})", err=True)
        sys.exit(PREEMPTED_EXIT)
    if final:
        click.echo(final)


def split_markers(args: tuple[str, ...], markers: tuple[str, ...]) -> dict[str, list[str]]:
    """Split raw arguments at ``--marker`` words: ``a b --commands x y`` -> {"": [a, b], "--commands": [x, y]}."""
    groups, current = {"": []}, ""
    for arg in args:
        if arg in markers:
            current = arg
            groups.setdefault(arg, [])
        elif arg.startswith("--") and arg not in markers:
            _fail(f"unknown option {arg}")
        else:
            groups[current].append(arg)
    return groups


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("model_dir")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--commands-file", type=click.Path(exists=True, dir_okay=False), help="One candidate command per line.")
@click.option("--threshold", type=float, default=CommandOptions.threshold,
              help="Answer <none> below this audio-command cosine similarity.")
@click.option("--acoustic-weight", type=float, default=CommandOptions.acoustic_weight, show_default=True,
              help="Weight of the recogniser's CTC likelihood of each command's spelling; 0 ignores it.")
@click.option("--intent-from", type=click.Choice(INTENT_SOURCES), default=CommandOptions.intent_from,
              show_default=True, help="Closed-set intents: the intent head, the transcript classifier on what the "
              "recogniser heard (with --decoder, --lm, ...), or both multiplied.")
@decoding_options
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--plot-attention", default=None, metavar="PNG", help="Plot the fusion attention of each input's best command.")
def command(model_dir, args, commands_file, threshold, acoustic_weight, intent_from, fmt, plot_attention,
            **decoding) -> None:
    """Recognise voice commands: AUDIO... [--commands "turn on the lights" "stop the music" ...].

    With candidate commands (free text, zero-shot) prints the best one, its score and the runner-up;
    without, the closed-set intent of a model trained on intents (best read from a joint + LM
    transcript as well as the audio: --decoder joint --lm LM).
    """
    from . import load_model
    from .crossmodal import CommandError, plot_command_attention
    from .text_tokenizer import TextTokenizerError

    groups = split_markers(args, ("--commands",))
    commands = groups.get("--commands")
    if commands_file:
        commands = (commands or []) + open(commands_file, encoding="utf-8").read().split("\n")
        commands = commands[:-1] if commands and commands[-1] == "" else commands
    try:
        pipeline = load_model(model_dir)
        results = pipeline.classify_command(expand_inputs(tuple(groups[""])), commands=commands, threshold=threshold,
                                              acoustic_weight=acoustic_weight, intent_from=intent_from,
                                              options=TranscribeOptions(**decoding))
    except CommandError as exc:
        _fail(f"{commands_file}: {exc} (numbered from --commands, then the file's lines)" if commands_file else str(exc))
    except (TextTokenizerError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    for r in results:
        if r.error:
            click.echo(f"speechtext: skipped {r.id}: {r.error}", err=True)
        elif fmt == "json":
            click.echo(json.dumps(r.to_dict(), ensure_ascii=False))
        else:
            click.echo(f"{r.source}\t{r.command}\t{r.score:.3f}\t{r.runner_up}\t{r.runner_up_score}")
        if plot_attention and not r.error and commands and r.command != "<none>":
            path = plot_attention if len(results) == 1 else plot_attention.replace(".png", f"-{r.id}.png")
            try:
                plot_command_attention(pipeline, r.source, r.command, path)
            except ValueError as exc:  # e.g. an ONNX export, whose graphs do not give attention maps
                _fail(str(exc))
    if any(r.error for r in results):
        sys.exit(1)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("model_dir")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--out-dir", required=True, help="Writes audio.npy + audio_ids.txt and text.npy + texts.txt here.")
def embed(model_dir, args, out_dir) -> None:
    """Shared-space vectors: --audio FILE... and/or --text "..." "..." (L2-normalised, .npy)."""
    import numpy as np

    from . import load_model
    from .crossmodal import CommandError
    from .text_tokenizer import TextTokenizerError

    groups = split_markers(args, ("--audio", "--text"))
    if groups[""] or not (groups.get("--audio") or groups.get("--text")):
        _fail("give inputs after --audio and/or --text")
    os.makedirs(out_dir, exist_ok=True)
    try:
        pipeline = load_model(model_dir)
        if groups.get("--audio"):
            results = pipeline.embed_audio(expand_inputs(tuple(groups["--audio"])))
            good = [r for r in results if r.error is None]
            for r in results:
                if r.error:
                    click.echo(f"speechtext: skipped {r.id}: {r.error}", err=True)
            np.save(os.path.join(out_dir, "audio.npy"), np.stack([r.vector for r in good]) if good else np.zeros((0, 0)))
            with open(os.path.join(out_dir, "audio_ids.txt"), "w", encoding="utf-8") as handle:
                handle.write("".join(f"{r.id} {r.source}\n" for r in good))
        if groups.get("--text"):
            np.save(os.path.join(out_dir, "text.npy"), pipeline.embed_text(groups["--text"]))
            with open(os.path.join(out_dir, "texts.txt"), "w", encoding="utf-8") as handle:
                handle.write("".join(t + "\n" for t in groups["--text"]))
    except (CommandError, TextTokenizerError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    click.echo(out_dir)


@cli.command()
@click.argument("model_dir")
@click.option("--text", "texts", multiple=True, help="A text to speak (repeatable).")
@click.option("--text-file", type=click.Path(exists=True, dir_okay=False), help="One text per line.")
@click.option("--kaldi-text", type=click.Path(exists=True, dir_okay=False), help="A Kaldi text file: 'utt-id text'.")
@click.option("--reference", "references", required=True, multiple=True,
              help="A recording of the voice to speak in (a few seconds); repeated, the average of their voices.")
@click.option("-o", "--out", "out_path", default=None, help="The WAV to write for a single text.")
@click.option("--out-dir", default=None, help="Where <id>.wav files go for many texts.")
@click.option("--emit-conditioning", default=None, metavar="PATH", help="Also write the mel frames, token durations "
              "and F0, and the speaker vector: an .npz file with -o, a directory of <id>.npz with --out-dir.")
@click.option("--speed", type=float, default=SynthesisOptions.speed, show_default=True, help="> 1 speaks faster.")
@click.option("--pitch-shift", type=float, default=SynthesisOptions.pitch_shift, show_default=True,
              help="Semitones added to the predicted pitch (models trained with synthesis.pitch).")
@click.option("--batch-size", type=int, default=SynthesisOptions.batch_size, show_default=True)
@click.option("--griffin-lim-iters", type=int, default=SynthesisOptions.griffin_lim_iters, show_default=True,
              help="0: the model's own setting.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default=SynthesisOptions.precision,
              show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--progress/--no-progress", default=False)
def synthesize(model_dir, texts, text_file, kaldi_text, references, out_path, out_dir, emit_conditioning, device,
               progress, **options) -> None:
    """Speak text in the voice of a reference recording with MODEL_DIR's synthesis head.

    A bad text is reported on stderr and the rest are still written (exit status 1)."""
    from . import load_model
    from .synthesis import AverageVoice, SynthesisError, read_texts, save_result

    items = [(f"text{i:04d}", t) for i, t in enumerate(texts, 1)]
    items += read_texts(text_file) if text_file else []
    items += read_texts(kaldi_text, kaldi=True) if kaldi_text else []
    if not items:
        _fail("nothing to speak: give --text, --text-file or --kaldi-text")
    if (out_path is None) == (out_dir is None) or (out_path and len(items) > 1):
        _fail("give -o OUT.wav for one text, or --out-dir DIR for many")
    try:
        reference = references[0] if len(references) == 1 else AverageVoice(references)
        results = load_model(model_dir, device=device).synthesize(items, reference, SynthesisOptions(**options),
                                                                  progress=progress)
    except (SynthesisError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    for r in results:
        if r.error:
            click.echo(f"speechtext: skipped {r.id}: {r.error}", err=True)
            continue
        wav = out_path or os.path.join(out_dir, f"{r.id}.wav")
        npz = emit_conditioning if out_path else (emit_conditioning and os.path.join(emit_conditioning, f"{r.id}.npz"))
        save_result(r, wav, npz)
        click.echo(wav)
    if any(r.error for r in results):
        sys.exit(1)


@cli.command()
@click.argument("model_dir")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True)
@click.option("--quantize", type=click.Choice(["int8"]), default=None, help="int8: dynamic quantization of the "
              "matrix multiplications (about 4x smaller, faster on CPU).")
@click.option("-o", "--output", required=True, help="The recogniser graph to write (model.onnx); beside it "
              "<stem>.decoder.onnx for an attention decoder, <stem>.text.onnx and <stem>.command.onnx for a command head.")
def export(model_dir, fmt, quantize, output) -> None:
    """Export MODEL_DIR's recogniser (audio encoder + CTC head, the attention decoder) and command head
    (text encoder, fusion match) to ONNX, with the vocabularies and everything else needed to use them
    in the ONNX metadata."""
    from .export import export_onnx

    try:
        written = export_onnx(model_dir, output, quantize)
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    for path in written:
        click.echo(f"{path}\t{os.path.getsize(path) / 1e6:.1f} MB")


@cli.command()
@click.argument("model_dir")
@click.option("-o", "--output", required=True, help="The archive to write: .tar.gz, .tgz or .tar.")
@click.option("--results", default=None, type=click.Path(exists=True, dir_okay=False),
              help="A RESULTS.md to quote in the model card (default: the one found beside the model).")
def pack(model_dir, output, results) -> None:
    """Pack MODEL_DIR into one archive with a checksum list and a model card; load_model and every
    command accept the archive in place of the directory."""
    from .archive import pack_model

    try:
        click.echo(pack_model(model_dir, output, results))
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))


@cli.command("prepare-corpus")
@click.argument("corpus", type=click.Choice(["fsc", "gsc", "librispeech", "ljspeech", "vctk"]))
@click.argument("root")
@click.argument("out_dir")
@click.option("--subsets", default="train-clean-100,dev-clean,dev-other,test-clean,test-other", show_default=True,
              help="librispeech: comma-separated subsets (train-clean-360, train-other-500 for 960 h).")
@click.option("--task", type=click.Choice(["12", "35"]), default="35", show_default=True,
              help="gsc: 35 words, or 10 commands + _unknown_ + _silence_.")
@click.option("--holdout", type=float, default=0.0, show_default=True,
              help="fsc: share of each intent's phrasings kept out of training, tested as test_zeroshot.")
@click.option("--num-dev", type=int, default=250, show_default=True, help="ljspeech: dev utterances (from the end).")
@click.option("--num-test", type=int, default=250, show_default=True, help="ljspeech: test utterances (the last).")
def prepare_corpus(corpus, root, out_dir, subsets, task, holdout, num_dev, num_test) -> None:
    """Kaldi data dirs from a public corpus at ROOT, in its own on-disk layout (see speechtext.corpora
    and speechtext.corpora_speech). A missing or wrong layout is an error that says what was expected
    where, and where to download the corpus."""
    from . import corpora, corpora_speech
    from .data import DataDirError

    prepare = {"fsc": lambda: corpora.prepare_fsc(root, out_dir, holdout),
               "gsc": lambda: corpora.prepare_gsc(root, out_dir, int(task)),
               "librispeech": lambda: corpora_speech.prepare_librispeech(root, out_dir, subsets.replace(",", " ").split()),
               "ljspeech": lambda: corpora_speech.prepare_ljspeech(root, out_dir, num_dev, num_test),
               "vctk": lambda: corpora_speech.prepare_vctk(root, out_dir)}[corpus]
    try:
        counts = prepare()
    except (DataDirError, ValueError) as exc:
        _fail(str(exc))
    for name, count in counts.items():
        click.echo(f"{out_dir}: {count} recordings left out (no transcript)" if name == "no_transcript"
                   else f"{out_dir}/{name}: {count} utterances")


@cli.group("data")
def data_group() -> None:
    """Data-dir tools the recipes share: combine, subset, split, speed-perturb, filter."""


def _data_tool(call) -> None:
    from .data import DataDirError

    try:
        click.echo(call())
    except (DataDirError, ValueError, OSError) as exc:
        _fail(str(exc))


@data_group.command("combine")
@click.argument("dst")
@click.argument("sources", nargs=-1, required=True)
def data_combine(dst, sources) -> None:
    """Write the union of the data dirs SOURCES to DST."""
    from .datadir_tools import combine

    _data_tool(lambda: f"{dst}: {combine(dst, list(sources))} utterances")


@data_group.command("subset")
@click.argument("src")
@click.argument("dst")
@click.option("--first", type=int, default=0)
@click.option("--last", type=int, default=0)
@click.option("--random", "count", type=int, default=0, help="this many utterances drawn with --seed")
@click.option("--utt-list", default=None, help="file of utterance ids, one per line")
@click.option("--seed", type=int, default=0)
def data_subset(src, dst, first, last, count, utt_list, seed) -> None:
    """Write some of SRC's utterances to DST."""
    from .datadir_tools import subset

    _data_tool(lambda: f"{dst}: {subset(src, dst, first, last, count, utt_list, seed)} utterances")


@data_group.command("split")
@click.argument("src")
@click.argument("parts", type=int)
def data_split(src, parts) -> None:
    """Split SRC into SRC/splitPARTS/1..PARTS, each speaker in one part."""
    from .datadir_tools import split

    _data_tool(lambda: "\n".join(split(src, parts)))


@data_group.command("speed-perturb")
@click.argument("src")
@click.argument("dst")
@click.option("--factors", default="0.9,1.0,1.1", show_default=True)
def data_speed_perturb(src, dst, factors) -> None:
    """Kaldi's speed perturbation: one copy of SRC per factor (ids prefixed sp<f>-) in DST."""
    from .datadir_tools import speed_perturb

    _data_tool(lambda: f"{dst}: {speed_perturb(src, dst, tuple(float(f) for f in factors.split(',')))} utterances")


@data_group.command("filter")
@click.argument("src")
@click.argument("dst")
@click.option("--min-seconds", type=float, default=0.0, show_default=True)
@click.option("--max-seconds", type=float, default=float("inf"))
def data_filter(src, dst, min_seconds, max_seconds) -> None:
    """Keep SRC's utterances of MIN..MAX seconds in DST (writes utt2dur)."""
    from .datadir_tools import filter_duration

    def run():
        kept, dropped = filter_duration(src, dst, min_seconds, max_seconds)
        return f"{dst}: {kept} utterances kept, {dropped} outside {min_seconds:g}-{max_seconds:g} s"

    _data_tool(run)


@data_group.command("to-shar")
@click.argument("src")
@click.argument("dst")
@click.option("--shard-size", type=int, default=1000, show_default=True, help="utterances per shard")
def data_to_shar(src, dst, shard_size) -> None:
    """Write the Kaldi data dir SRC as a Lhotse Shar dir DST (speechtext[lhotse]); train from it as from SRC."""
    from .shards import kaldi_to_shar

    _data_tool(lambda: f"{dst}: {kaldi_to_shar(src, dst, shard_size)} utterances")


@cli.command("validate-data-dir")
@click.argument("data_dir")
@click.option("--no-text", is_flag=True, help="Do not require a text file.")
def validate_data_dir_cmd(data_dir, no_text) -> None:
    """Check a Kaldi data directory; lists each problem with file and line."""
    from .data import validate_data_dir

    problems = validate_data_dir(data_dir, need_text=not no_text)
    for problem in problems:
        click.echo(problem)
    if problems:
        sys.exit(1)
    click.echo(f"{data_dir}: OK")


@cli.command("fix-data-dir")
@click.argument("data_dir")
def fix_data_dir_cmd(data_dir) -> None:
    """Sort, de-duplicate and intersect a data directory's files (originals kept in .backup/)."""
    from .data import fix_data_dir

    for name, count in fix_data_dir(data_dir).items():
        if count:
            click.echo(f"{name}: dropped {count} entries")
    click.echo(f"{data_dir}: fixed")



@cli.group()
def lm() -> None:
    """External language models for shallow fusion (--lm in transcribe)."""


@lm.command("train")
@click.argument("text_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", "model_dir", required=True, help="The recogniser whose tokenizer the LM uses.")
@click.option("--out-dir", required=True)
@click.option("--kaldi-text", is_flag=True, help="TEXT_FILE is a Kaldi 'text' file: the first field is an utterance id.")
@click.option("--steps", type=int, default=LMConfig.steps, show_default=True)
@click.option("--hidden-size", type=int, default=LMConfig.hidden_size, show_default=True)
@click.option("--layers", type=int, default=LMConfig.layers, show_default=True)
def lm_train(text_file, model_dir, out_dir, kaldi_text, steps, hidden_size, layers) -> None:
    """Train a token LSTM LM on TEXT_FILE (one sentence per line) with MODEL's tokenizer."""
    from .lm import LMError, train_lm
    from .tokenizer import load_tokenizer

    try:
        tokenizer = load_tokenizer(model_dir)
        cfg = LMConfig(steps=steps, hidden_size=hidden_size, layers=layers)
        click.echo(train_lm(text_file, tokenizer, out_dir, cfg, has_ids=kaldi_text))
    except (LMError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


if __name__ == "__main__":
    cli()

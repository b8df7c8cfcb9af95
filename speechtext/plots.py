"""Pictures a person would rather look at than read: loss curves (and, later, attention maps)."""
from __future__ import annotations

import os


def plot_loss_curve(history: list[dict], path: str) -> None:
    """Training loss against step, with dev loss and dev WER (or, for synthesis, the dev mel L1) when
    validated; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    key, label = ("dev_wer", "dev WER %") if any("dev_wer" in h for h in history) else ("dev_postnet", "dev mel L1")
    dev = [(h["step"], h["dev_loss"], h.get(key, float("nan"))) for h in history if "dev_loss" in h]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss", color="tab:blue")
    if dev:
        steps, losses, wers = zip(*dev)
        ax.plot(steps, losses, "o-", label="dev loss", color="tab:orange")
        wer_ax = ax.twinx()
        wer_ax.plot(steps, wers, "s--", label=label, color="tab:green")
        wer_ax.set_ylabel(label)
        wer_ax.legend(loc="upper center")
    ax.set_xlabel("step")
    ax.set_ylabel("loss per utterance")
    ax.set_yscale("log")
    ax.legend(loc="upper right")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def plot_attention(weights, tokens: list[str], frame_seconds: float, path: str, title: str = "") -> None:
    """Cross-attention of query tokens over audio frames: ``weights (Q, T)`` as a heat map, time in seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    q, t = weights.shape
    fig, ax = plt.subplots(figsize=(max(6, t * frame_seconds * 3), 1 + 0.35 * q))
    ax.imshow(weights, aspect="auto", origin="upper", cmap="viridis", extent=(0, t * frame_seconds, q - 0.5, -0.5))
    ax.set_yticks(range(q))
    ax.set_yticklabels(tokens)
    ax.set_xlabel("time (s)")
    ax.set_title(title)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)

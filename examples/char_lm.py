"""A character-level language model of Python source, trained on the standard library.

The text is the source of a fixed list of 51 standard-library modules, read
from the folder of ``os.__file__`` (so every Python install has it; nothing
is downloaded; modules a Python version lacks are skipped). Whole modules are
held out: every 8th module of the sorted list (``contextlib``, ``functools``,
``random`` ..., about 150 KB) is never trained on; the model learns from the
other ~1.5 MB. Characters seen fewer than ``--min-count`` times in the
training text map to an ``<unk>`` id.

Training predicts the next character at every position of random windows of
``--context`` characters (softmax cross-entropy over the vocabulary, Adam with
a cosine-decayed learning rate fed per step through a placeholder). Models:

* ``transformer``: token embedding + learned positions (a variable (T, d)) ->
  pre-norm causal ``gc.nn.TransformerEncoderLayer`` blocks (each position
  attends only to itself and the past) -> LayerNorm -> dense(vocabulary);
* ``lstm``: token embedding -> ``gc.nn.LSTM`` (one ``gc.scan``, compiled once) ->
  dense(vocabulary).

Each model reports its held-out bits per character (the mean next-character
cross-entropy in bits over the held-out modules, scored with windows that
overlap by half so that each character is predicted from at least
``context // 2`` characters before it), which must be at most 2.5 (about 2.35
for either model at the default budget; a unigram model of the same text needs
4.5, a bigram model 3.5), and prints text sampled from a prompt at
temperature ``--temperature`` with a fixed seed.

Run: python examples/char_lm.py [--backend auto] [--model transformer|lstm|both] [--steps N]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections import Counter

import numpy as np

import graphc as gc

MODULES = ("abc", "argparse", "bisect", "calendar", "colorsys", "contextlib", "copy", "csv",
           "dataclasses", "difflib", "enum", "fnmatch", "fractions", "functools", "genericpath",
           "glob", "gzip", "heapq", "hmac", "inspect", "ipaddress", "keyword", "linecache",
           "locale", "numbers", "operator", "pathlib", "pprint", "queue", "random", "reprlib",
           "sched", "selectors", "shlex", "shutil", "socket", "statistics", "string",
           "subprocess", "tempfile", "textwrap", "threading", "timeit", "token", "tokenize",
           "traceback", "types", "typing", "warnings", "weakref", "zipfile")
HELD_OUT_MODULES = MODULES[5::8]      # every 8th module, never seen in training
TRAIN_MODULES = tuple(m for m in MODULES if m not in HELD_OUT_MODULES)
UNK = "<unk>"
MAX_BPC = 2.5
PROMPT = "def __init__(self, "
# Per-model defaults: (steps, learning rate). --steps / --lr override both.
DEFAULTS = {"transformer": (1500, 1e-2), "lstm": (800, 1e-2)}


def read_modules(names) -> str:
    """The concatenated source of the standard-library modules ``names`` (missing ones skipped)."""
    folder = os.path.dirname(os.__file__)
    parts = []
    for name in sorted(names):
        path = os.path.join(folder, f"{name}.py")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                parts.append(f.read())
    text = "\n".join(parts)
    if len(text) < 20_000:
        raise SystemExit(f"char_lm: found only {len(text)} characters of standard-library "
                         f"source under {folder}")
    return text


def build_vocab(text: str, min_count: int) -> list[str]:
    """``[UNK]`` + the characters seen at least ``min_count`` times, sorted."""
    counts = Counter(text)
    return [UNK] + sorted(c for c, n in counts.items() if n >= min_count)


def encode(text: str, vocab: list[str]) -> np.ndarray:
    """Character ids (int64), ``<unk>`` (0) for characters outside ``vocab``."""
    index = {c: i for i, c in enumerate(vocab)}
    return np.fromiter((index.get(c, 0) for c in text), dtype=np.int64, count=len(text))


def decode(ids, vocab: list[str]) -> str:
    return "".join("?" if i == 0 else vocab[i] for i in ids)


def transformer_logits(ids, vocab_size: int, context: int, args, seed: int):
    """Causal Transformer: embeddings + positions -> encoder blocks -> LayerNorm -> dense."""
    h = gc.nn.Embedding(vocab_size, args.dim, init="small_uniform", name="token_embedding")(ids)
    positions = gc.variable(0.02 * gc.init.standard_normal((context, args.dim), seed=seed),
                            name="position_embedding")
    h = h + positions
    for i in range(args.layers):
        h = gc.nn.TransformerEncoderLayer(args.dim, args.heads, args.ff_dim, norm_first=True,
                                          causal=True, name=f"block{i}")(h)
    return gc.nn.Dense(vocab_size, name="lm_head")(gc.nn.LayerNorm(args.dim, name="final_norm")(h))


def lstm_logits(ids, vocab_size: int, context: int, args, seed: int):
    """LSTM: embeddings -> gc.nn.LSTM -> dense (batch-first, outputs at every step)."""
    h = gc.nn.Embedding(vocab_size, args.dim, init="small_uniform", name="token_embedding")(ids)
    outputs, _ = gc.nn.LSTM(args.hidden, name="lstm")(h)
    return gc.nn.Dense(vocab_size, name="lm_head")(outputs)


MODELS = {"transformer": transformer_logits, "lstm": lstm_logits}


def build_model(kind: str, vocab_size: int, args):
    """ids/targets placeholders (N, T), logits (N, T, V), mean loss, an Adam step."""
    with gc.Graph(seed=args.seed) as g:
        ids = gc.placeholder((None, args.context), dtype="int64", name="ids")
        targets = gc.placeholder((None, args.context), dtype="int64", name="targets")
        logits = MODELS[kind](ids, vocab_size, args.context, args, args.seed)
        token_loss = gc.losses.softmax_cross_entropy(logits, targets, reduction="none")
        loss = gc.mean(token_loss)
        lr = gc.schedules.lr_placeholder()
        train_op = gc.optim.Adam(lr, beta2=0.99).minimize(loss)
    parameters = sum(int(np.prod(v.shape)) for v in g.trainable_variables())
    return g, dict(ids=ids, targets=targets, logits=logits, token_loss=token_loss, loss=loss,
                   lr=lr, train=train_op, parameters=parameters)


def train(sess, m, data: np.ndarray, steps: int, lr: float, args, progress: bool) -> list[float]:
    """Adam steps on random windows of ``data``; the learning rate warms up, then cosine-decays."""
    rng = np.random.default_rng(args.seed)
    t, warmup = args.context, max(1, steps // 20)
    offsets = np.arange(t + 1)
    losses = []
    for step in range(steps):
        starts = rng.integers(0, len(data) - t - 1, size=args.batch_size)
        windows = data[starts[:, None] + offsets]
        rate = lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss, _ = sess.run([m["loss"], m["train"]],
                           {m["ids"]: windows[:, :-1], m["targets"]: windows[:, 1:],
                            m["lr"]: rate})
        losses.append(float(loss))
        if progress and (step + 1) % max(1, steps // 10) == 0:
            recent = float(np.mean(losses[-max(1, steps // 10):]))
            print(f"  step {step + 1}/{steps}: train loss {recent:.3f} "
                  f"({recent / math.log(2):.2f} bits/char)")
    return losses


def bits_per_char(sess, m, data: np.ndarray, context: int, batch: int = 256) -> float:
    """Mean next-character cross-entropy (bits) over ``data``, every character scored once.

    Windows of ``context`` characters overlap by half: the first window scores
    all its positions, each later one only its second half, so every scored
    character after the first half-window has at least ``context // 2``
    characters of context (the usual strided evaluation of a fixed-window model).
    """
    half = context // 2
    starts = np.arange(0, len(data) - context, half)
    offsets = np.arange(context + 1)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        windows = data[starts[i:i + batch, None] + offsets]
        losses = sess.run(m["token_loss"], {m["ids"]: windows[:, :-1],
                                            m["targets"]: windows[:, 1:]})
        scored = np.ones_like(losses, dtype=bool)
        scored[starts[i:i + batch] > 0, :context - half] = False
        total += float(losses[scored].astype(np.float64).sum())
        count += int(scored.sum())
    return total / count / math.log(2)


def sample(sess, m, vocab: list[str], prompt: str, length: int, context: int,
           temperature: float, seed: int) -> str:
    """Extend ``prompt`` by ``length`` characters, one forward pass per character.

    The model sees the last ``context`` characters, placed at the start of its
    window; since it is causal, what fills the rest of the window does not
    change the prediction read at the last real position.
    """
    rng = np.random.default_rng(seed)
    ids = list(encode(prompt, vocab))
    for _ in range(length):
        window = ids[-context:]
        feed = np.zeros((1, context), np.int64)
        feed[0, :len(window)] = window
        logits = sess.run(m["logits"], {m["ids"]: feed})[0, len(window) - 1].astype(np.float64)
        if temperature <= 0:
            nxt = int(np.argmax(logits))
        else:
            p = np.exp((logits - logits.max()) / temperature)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        ids.append(nxt)
    return decode(ids, vocab)


def run_model(kind: str, train_ids, held_ids, vocab, args) -> dict:
    default_steps, default_lr = DEFAULTS[kind]
    steps = default_steps if args.steps is None else args.steps
    lr = default_lr if args.lr is None else args.lr
    g, m = build_model(kind, len(vocab), args)
    sess = gc.Session(g, backend=args.backend)
    print(f"[{kind}] backend {sess.backend}; {m['parameters']} parameters; "
          f"{steps} steps of {args.batch_size} windows of {args.context} characters")
    t0 = time.perf_counter()
    losses = train(sess, m, train_ids, steps, lr, args, progress=not args.no_progress)
    train_seconds = time.perf_counter() - t0
    bpc = bits_per_char(sess, m, held_ids, args.context)
    text = sample(sess, m, vocab, PROMPT, args.sample_length, args.context,
                  args.temperature, args.seed)
    print(f"[{kind}] trained in {train_seconds:.1f}s; held-out {bpc:.3f} bits per character")
    print(f"[{kind}] sample (temperature {args.temperature:g}):\n{text}\n")
    return {"bpc": bpc, "train_seconds": train_seconds, "losses": losses, "sample": text,
            "parameters": m["parameters"], "backend": sess.backend}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="numpy | c | auto")
    parser.add_argument("--out", default=os.path.join("graphc-examples", "char_lm"),
                        help="folder for sample.txt")
    parser.add_argument("--model", default="both", choices=("transformer", "lstm", "both"))
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per model (default: transformer "
                             f"{DEFAULTS['transformer'][0]}, lstm {DEFAULTS['lstm'][0]})")
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--context", type=int, default=32, help="window length T")
    parser.add_argument("--dim", type=int, default=64, help="embedding / model width")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ff-dim", type=int, default=128, help="Transformer feed-forward width")
    parser.add_argument("--layers", type=int, default=2, help="Transformer blocks")
    parser.add_argument("--hidden", type=int, default=128, help="LSTM hidden size")
    parser.add_argument("--min-count", type=int, default=5,
                        help="rarer training characters map to <unk>")
    parser.add_argument("--sample-length", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.7, help="0: greedy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-bpc", type=float, default=MAX_BPC,
                        help="the held-out bits per character each model must reach")
    parser.add_argument("--no-progress", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    train_text, held_text = read_modules(TRAIN_MODULES), read_modules(HELD_OUT_MODULES)
    vocab = build_vocab(train_text, args.min_count)
    train_ids, held_ids = encode(train_text, vocab), encode(held_text, vocab)
    print(f"text: {len(train_text)} training and {len(held_text)} held-out characters; "
          f"vocabulary {len(vocab)} (<unk>: {float(np.mean(held_ids == 0)):.2%} of held-out)")

    kinds = ["transformer", "lstm"] if args.model == "both" else [args.model]
    results: dict = {"vocab_size": len(vocab), "train_chars": len(train_text),
                     "held_out_chars": len(held_text)}
    for kind in kinds:
        results[kind] = run_model(kind, train_ids, held_ids, vocab, args)

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "sample.txt")
    with open(path, "w", encoding="utf-8") as f:
        for kind in kinds:
            f.write(f"# {kind}: {results[kind]['bpc']:.3f} bits/char\n{results[kind]['sample']}\n\n")
    results["sample_txt"] = path
    for kind in kinds:
        if results[kind]["bpc"] > args.max_bpc:
            raise SystemExit(f"char_lm: the {kind} model reached {results[kind]['bpc']:.3f} "
                             f"held-out bits per character, above the expected {args.max_bpc}")
    return results


if __name__ == "__main__":
    main()

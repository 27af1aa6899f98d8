"""Learning projections on Penn Treebank: skip-gram and CBOW word vectors by negative sampling,
beside the input embedding of a word-level LSTM language model.

Trains both projection learners (``--task word2vec``) on the PTB training text with one thread,
prints their time, held-out negative-sampling loss and rank accuracy, the group precision@5 of
the listed word kinds (rnnlab.embeddings.analysis.PTB_GROUPS), the nearest neighbours of a few
query words for each embedding, the neighbour overlap@10 of the three embeddings over the 1000
most frequent words, and draws the 2-D PCA picture of the listed words for each embedding.

The language model is the run at ``--lm`` (trained first, with LM_CONFIG, if it is not there).

    cd benchmarks && OMP_NUM_THREADS=1 python word_vectors.py --threads 1 \\
        [--epochs 5] [--subsample 0] [--lm ../runs/word-vectors-lstm-lm] [--images ../docs/images]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import rnnlab
from rnnlab.embeddings import QUERY_WORDS, group_precision, neighbour_overlap, neighbours, plot_projection
from rnnlab.tasks.recipe import load_run
from _common import data_path

#: both projection learners; ``method`` is set per run
CONFIG = dict(embed_size=100, window=5, negatives=5, subsample=0.0, batch_size=1024,
              optimizer="adam", lr=1e-2, schedule="cosine", min_lr=1e-4, clip_norm=0.0, epochs=5)

#: the language model whose input embedding is compared, if ``--lm`` holds no run
LM_CONFIG = dict(level="word", cell="lstm", embed_size=128, hidden_size=256, layers=1,
                 dropout=0.2, batch_size=32, tbptt=35, lr=2e-3, schedule="cosine", min_lr=1e-4,
                 epochs=4, max_time=1500)

ROOT = Path(__file__).resolve().parents[1]


def neighbour_table(embeddings, vocab, words, k=5):
    lines = ["| word | " + " | ".join(embeddings) + " |", "|---" * (len(embeddings) + 1) + "|"]
    for w in words:
        cells = [", ".join(n for n, _ in neighbours(v, vocab, w, k)) for v in embeddings.values()]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench-word-vectors"))
    ap.add_argument("--lm", default=str(ROOT / "runs" / "word-vectors-lstm-lm"))
    ap.add_argument("--subsample", type=float, default=CONFIG["subsample"])
    ap.add_argument("--images", default=str(ROOT / "docs" / "images"))
    ap.add_argument("--epochs", type=int, default=CONFIG["epochs"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ptb = str(data_path("ptb"))
    t_all = time.time()

    results, embeddings, vocab = {}, {}, None
    for method in ("skipgram", "cbow"):
        t0, c0 = time.time(), time.process_time()
        s = rnnlab.train(task="word2vec", data=ptb, out=f"{args.out}-{method}", force=True,
                         method=method, threads=args.threads, progress=False,
                         **{**CONFIG, "epochs": args.epochs, "subsample": args.subsample})
        wall, cpu = time.time() - t0, time.process_time() - c0
        run = load_run(s["run_dir"])
        vocab = run.assets.vocab
        embeddings[method] = run.model.projection.detach()
        results[method] = {"train_seconds": s["train_seconds"], "wall_seconds": wall,
                           "cpu_seconds": cpu, "predictions": s["tokens"], "steps": s["steps"],
                           "predictions_per_cpu_second": s["tokens"] / cpu,
                           "valid": s["valid"], "test": s["test"],
                           "group_precision_at_5": group_precision(embeddings[method], vocab)}

    if not (Path(args.lm) / "model.safetensors").exists():
        print(f"training the language model into {args.lm}", flush=True)
        rnnlab.train(task="lm", data=ptb, out=args.lm, force=True, threads=args.threads,
                     progress=False, sample_length=0, **LM_CONFIG)
    lm = load_run(args.lm)
    if lm.assets.symbols != vocab.symbols:
        raise SystemExit(f"{args.lm}: its vocabulary is not the PTB vocabulary of the word vectors")
    embeddings["lstm-lm"] = lm.model.embedding.weight.detach()
    lm_summary = json.loads((Path(args.lm) / "summary.json").read_text())
    results["lstm-lm"] = {"test_perplexity": lm_summary["test"]["perplexity"],
                          "train_seconds": lm_summary["train_seconds"],
                          "group_precision_at_5": group_precision(embeddings["lstm-lm"], vocab)}

    frequent = list(range(2, 1002))               # the 1000 most frequent words after the specials
    names = list(embeddings)
    overlap = {f"{a} / {b}": neighbour_overlap(embeddings[a], embeddings[b], frequent, k=10)
               for i, a in enumerate(names) for b in names[i + 1:]}

    images = Path(args.images)
    images.mkdir(parents=True, exist_ok=True)
    titles = {"skipgram": "skip-gram (negative sampling)", "cbow": "CBOW (negative sampling)",
              "lstm-lm": "input embedding of the LSTM word language model"}
    for name, vectors in embeddings.items():
        path = images / f"embeddings-{name}.png"
        plot_projection(vectors, vocab, path, f"PTB, {titles[name]}: 2-D PCA of chosen words")
        results[name]["picture"] = str(path)

    config = {**CONFIG, "epochs": args.epochs, "subsample": args.subsample}
    print(json.dumps({"results": results, "neighbour_overlap_at_10": overlap, "config": config,
                      "lm_config": json.loads((Path(args.lm) / "config.json").read_text())["model"],
                      "threads": torch.get_num_threads(), "wall_seconds": time.time() - t_all},
                     default=str))
    print()
    print("| embedding | train s (wall) | CPU s | held-out loss (test) | rank accuracy (test) | "
          "group precision@5 |")
    print("|---|---|---|---|---|---|")
    for name in ("skipgram", "cbow"):
        r = results[name]
        print(f"| {name} | {r['train_seconds']:.0f} | {r['cpu_seconds']:.0f} | {r['test']['loss']:.4f} | "
              f"{r['test']['rank_accuracy']:.4f} | {r['group_precision_at_5']['all']:.3f} |")
    r = results["lstm-lm"]
    print(f"| lstm-lm (test perplexity {r['test_perplexity']:.1f}) | {r['train_seconds']:.0f} | - | - | - | "
          f"{r['group_precision_at_5']['all']:.3f} |")
    print()
    groups = list(results["skipgram"]["group_precision_at_5"])
    print("| group precision@5 | " + " | ".join(groups) + " |")
    print("|---" * (len(groups) + 1) + "|")
    for name in names:
        g = results[name]["group_precision_at_5"]
        print(f"| {name} | " + " | ".join(f"{g[k]:.2f}" for k in groups) + " |")
    print()
    print("\n".join(neighbour_table(embeddings, vocab, QUERY_WORDS)))
    print()
    for pair, v in overlap.items():
        print(f"neighbour overlap@10 over the 1000 most frequent words, {pair}: {v:.3f}")
    ratio = results["skipgram"]["predictions_per_cpu_second"] / results["cbow"]["predictions_per_cpu_second"]
    print(f"skip-gram / CBOW predictions per CPU second: {ratio:.2f}")
    print(f"wall time {(time.time() - t_all) / 60:.1f} min")


if __name__ == "__main__":
    main()

"""Chapter 01, Attention Is All You Need [6]: the Transformer rebuilt, on number-words translation.

English number words -> German number words (characters), e.g. "three hundred and forty-five" ->
"dreihundertfünfundvierzig": German says the ones before the tens, so cross-attention must cross.
`run(profile, seed)` trains the Transformer and the recurrent baseline for the notebook;
`reproduce(profile, seeds)` adds a small Table 3 and writes data/results/01_transformer/<profile>.json.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch

from .. import dryrun, ledger, measure
from ..data import Vocab, number_pairs
from ..data.text import char_tokens, word_tokens
from ..exercises import assert_same, exercise
from ..experiment import longer_check
from ..figures import figure
from ..models.seq2seq import Seq2SeqConfig, beam_search, build, greedy_decode, seq2seq_loss
from ..nn.attention import capture_attention
from ..nn.transformer import attention_kinds, causal_mask, sinusoidal_positions
from ..profiles import pick
from ..runtime import provenance, seed_everything
from ..train import History, TrainConfig, Trained, fit, warmup_rsqrt
from ..viz import attention_matrices, learning_curves, lines_with_bands, matrix_heatmap

CHAPTER, PAPER = "01_transformer", "transformer"
# The paper's optimizer: Adam(0.9, 0.98, 1e-9), no weight decay, warmup then 1/sqrt(step) (Sec. 5.3).
PAPER_OPT = dict(betas=(0.9, 0.98), eps=1e-9, weight_decay=0.0, schedule="noam", min_lr=0.0)


@dataclass
class Config:
    transformer: Seq2SeqConfig
    gru: Seq2SeqConfig
    train: TrainConfig
    tgt_lang: str = "de"
    n_max: int = 9999
    n_train: int | None = None        # None = all training numbers
    n_eval: int = 1000                # test numbers decoded for exact match / BLEU / chrF
    target_acc: float = 0.95          # validation token accuracy for "time to target"
    beam: int = 4
    ablations: dict = field(default_factory=dict)   # name -> (model overrides, label smoothing or None)
    main_seeds: tuple = (0,)          # every model and ablation trains with each of these seeds
    longer: float = 1.5               # the convergence check trains the base and the GRU this much longer

    @property
    def seeds(self) -> tuple:
        """`reproduce`'s default seeds, under the name every chapter's config uses."""
        return self.main_seeds


BASE = Seq2SeqConfig(d_model=64, heads=4, layers=2, d_ff=128, dropout=0.1)
TABLE3 = {"1 head (d_k 64)": ({"heads": 1}, None), "16 heads (d_k 4)": ({"heads": 16}, None),
          "learned positions": ({"positions": "learned"}, None), "no label smoothing": ({}, 0.0),
          "1 layer": ({"layers": 1}, None)}

CONFIGS = {
    "smoke": Config(BASE, Seq2SeqConfig(arch="gru", d_model=96, dropout=0.1),
                    TrainConfig(epochs=3, batch_size=128, lr=3e-3, warmup_epochs=0.5, **PAPER_OPT),
                    n_eval=300, target_acc=0.9),
    # standard: 200 training numbers (of 8,500), so that the base lands inside the 60-95% exact-match band
    # where Table 3's ablations can show (issue 11): with 600 it reached 98.5% (the 436dfaa recording), a
    # ceiling. Probes, seed 0, exact match at 1x -> 1.5x the epochs: 600 pairs, 75 epochs 97.8 -> 98.4;
    # 300 pairs, 140 epochs 96.1 -> 96.9; 200 pairs, 200 epochs 93.1 -> 93.9 (GRU 98.3 -> 98.3). Epochs
    # scale so the run keeps ~1,400 optimizer steps, and warmup keeps ~18 steps: a warmup of one epoch
    # (6 steps) decays the 1/sqrt schedule 3x sooner, and 200 pairs for 110 such epochs stalled at 82.5%.
    # 9 of the 1,000 test numbers hold a word no training number has (recorded as `unseen`): a 99.1% ceiling.
    # The 16-head row is left out (the slowest variant, a null at 30 epochs).
    # Then 300 epochs (~2,100 steps), not 200: the 4e31742 recording at 200 failed its check (base +0.8 at 1.5x
    # against the smallest resolved effect, no label smoothing's +0.7). Validation every third epoch pays for it:
    # scoring the 500 validation numbers took ~40% of each run's time when it ran every epoch.
    "standard": Config(BASE, Seq2SeqConfig(arch="gru", d_model=96, dropout=0.1),
                       TrainConfig(epochs=300, batch_size=32, lr=3e-3, warmup_epochs=2.7, eval_every=3, **PAPER_OPT),
                       n_train=200, target_acc=0.9, main_seeds=(0, 1, 2),
                       ablations={k: v for k, v in TABLE3.items() if k != "16 heads (d_k 4)"}),
    "full": Config(replace(BASE, d_model=256, heads=8, layers=4, d_ff=1024), Seq2SeqConfig(arch="gru", d_model=384),
                   TrainConfig(epochs=20, batch_size=128, lr=1e-3, warmup_epochs=2, **PAPER_OPT),
                   ablations=TABLE3, main_seeds=(0, 1, 2)),
}


def config(profile: str | None = None) -> Config:
    return pick(CONFIGS, profile)


# ---------------------------------------------------------------- the task

@dataclass
class Task:
    """Token ids for every split, the vocabularies, and the texts (to score translations)."""
    src_vocab: Vocab
    tgt_vocab: Vocab
    splits: dict            # split -> (src ids, tgt ids)
    texts: dict             # split -> {"number", "src", "tgt"} lists
    source: str

    def pair(self, split):
        return self.splits[split]


def load_task(tgt_lang: str = "de", n_max: int = 9999, n_train: int | None = None, verbose: bool = True) -> Task:
    """English words (word tokens) -> target words (characters), split by number."""
    dsd = number_pairs("en", tgt_lang, n_max=n_max, verbose=verbose)
    texts = {s: {k: list(dsd[s][k]) for k in ("number", "src", "tgt")} for s in dsd}
    if n_train:
        texts["train"] = {k: v[:n_train] for k, v in texts["train"].items()}
    src_vocab = Vocab.build(texts["train"]["src"], word_tokens, " ")
    tgt_vocab = Vocab.build(texts["train"]["tgt"], char_tokens, "")
    splits = {s: (src_vocab.encode(t["src"]), tgt_vocab.encode(t["tgt"])) for s, t in texts.items()}
    return Task(src_vocab, tgt_vocab, splits, texts, f"num2words en->{tgt_lang}, 0..{n_max}")


def model_config(base: Seq2SeqConfig, task: Task, **overrides) -> Seq2SeqConfig:
    return replace(base, src_vocab=len(task.src_vocab), tgt_vocab=len(task.tgt_vocab), **overrides)


# ---------------------------------------------------------------- training and scoring

def train_one(name: str, model_cfg: Seq2SeqConfig, task: Task, train_cfg: TrainConfig, seed: int,
              label_smoothing: float | None = None, progress: bool = True) -> Trained:
    """Train one seq2seq model with the book's loop; validation token accuracy every epoch."""
    seed_everything(seed)
    model = build(model_cfg)
    ls = train_cfg.label_smoothing if label_smoothing is None else label_smoothing
    t0 = time.perf_counter()
    hist = fit(model, task.pair("train"), task.pair("validation"), replace(train_cfg, seed=seed, label_smoothing=ls),
               loss_fn=seq2seq_loss(ls), eval_loss_fn=seq2seq_loss(0.0), progress=progress, desc=name)
    return Trained(name, model, hist, time.perf_counter() - t0, measure.count_params(model))


def translate(model, task: Task, src_ids: torch.Tensor, beam: int | None = None, batch: int = 500) -> list[str]:
    """Decode (greedy, or beam search with the paper's length penalty) and detokenize."""
    dev = next(model.parameters()).device
    max_len = dryrun.cap(task.splits["train"][1].shape[1] + 5, dryrun.TOKENS)
    out = []
    for i in range(0, len(src_ids), batch):
        x = src_ids[i: i + batch].to(dev)
        ids = greedy_decode(model, x, max_len) if not beam else beam_search(model, x, beam, 0.6, max_len)
        out += [task.tgt_vocab.decode(r) for r in ids.cpu()]
    return out


def scores(hyps: list[str], refs: list[str], char_level: bool = True) -> dict:
    """Exact match (%), BLEU and chrF via sacrebleu. German number words are one word each, so BLEU is
    computed on characters (a space between characters); chrF is character-based anyway."""
    import sacrebleu
    sp = (lambda s: " ".join(s.replace(" ", "_"))) if char_level else (lambda s: s)  # noqa: E731
    bleu = sacrebleu.corpus_bleu([sp(h) for h in hyps], [[sp(r) for r in refs]],
                                 tokenize="none" if char_level else "13a")
    chrf = sacrebleu.corpus_chrf(hyps, [refs])
    exact = 100.0 * sum(h == r for h, r in zip(hyps, refs)) / len(refs)
    return {"exact": exact, "bleu": bleu.score, "chrf": chrf.score}


def time_to_target(history: History, target: float) -> float | None:
    """Training seconds until validation token accuracy first reaches `target` (None if never)."""
    total = 0.0
    for e in history.epochs:
        total += e["seconds"]
        if e.get("test_acc") is not None and e["test_acc"] >= target:
            return total
    return None


def unseen(task: Task, n: int) -> int:
    """How many of the first `n` test numbers hold a source word no training number has (encoded as <unk>):
    no model can translate those, so 100 - unseen/n % is the task's ceiling on exact match."""
    return int((task.pair("test")[0][:n] == task.src_vocab.unk).any(1).sum())


def evaluate_result(res: Trained, task: Task, cfg: Config, beam: bool = False) -> dict:
    n = dryrun.batch(cfg.n_eval)
    src, refs = task.pair("test")[0][:n], task.texts["test"]["tgt"][:n]
    t0 = time.perf_counter()
    hyps = translate(res.model, task, src)
    m = {**scores(hyps, refs, cfg.tgt_lang == "de"), "decode_s": time.perf_counter() - t0,
         "epoch_s": sum(e["seconds"] for e in res.history.epochs) / len(res.history.epochs),
         "time_to_target_s": time_to_target(res.history, cfg.target_acc), "val_token_acc": res.history.last("test_acc"),
         "params": res.params, "train_s": res.seconds}
    if beam:
        m.update({f"beam_{k}": v for k, v in scores(translate(res.model, task, src, cfg.beam), refs,
                                                    cfg.tgt_lang == "de").items()})
    res.metrics = m
    return m


def run(profile: str | None = None, seed: int = 0, task: Task | None = None, progress: bool = True) -> dict:
    """The notebook's run: the Transformer and the GRU baseline on the same task, loop and budget."""
    cfg = config(profile)
    task = task or load_task(cfg.tgt_lang, cfg.n_max, cfg.n_train)
    out = {}
    for name, base in (("Transformer", cfg.transformer), ("GRU + attention", cfg.gru)):
        res = train_one(name, model_config(base, task), task, cfg.train, seed, progress=progress)
        evaluate_result(res, task, cfg)
        out[name] = res
    return out


# ---------------------------------------------------------------- looking inside

def example_numbers(task: Task, k: int = 4) -> list[int]:
    """Test-split indices of numbers whose last two digits cross in German (21..99, ones not 0)."""
    nums = task.texts["test"]["number"]
    return [i for i, n in enumerate(nums) if 21 <= n % 100 <= 99 and n % 10][:k]


@torch.no_grad()
def attention_maps(model, task: Task, index: int) -> dict:
    """One test example, decoded greedily, then re-run teacher-forced on its own output to capture
    every attention map: {"src", "tgt_in", "out", "maps": {kind: [(H, Nq, Nk) per layer]}}."""
    src = task.pair("test")[0][index: index + 1].to(next(model.parameters()).device)
    src = src[:, : int((src != 0).sum())]
    pred = translate(model, task, src.cpu())[0]
    tgt = task.tgt_vocab.encode([pred])
    tgt_in = torch.cat([torch.ones_like(tgt[:, :1]), tgt[:, :-1]], 1).to(src.device)
    with capture_attention(model) as maps:
        model(src, tgt_in)
    kinds = attention_kinds(model) if len(maps) == len(attention_kinds(model)) else ["cross"] * len(maps)
    by_kind: dict = {}
    for kind, m in zip(kinds, maps):
        by_kind.setdefault(kind, []).append(m[0].cpu())
    src_tokens = [task.src_vocab.itos[i] for i in src[0].tolist()]
    out_tokens = list(pred) + ["<eos>"]
    in_tokens = ["<bos>"] + list(pred)
    return {"src": src_tokens, "tgt_in": in_tokens, "out": out_tokens, "maps": by_kind,
            "number": task.texts["test"]["number"][index], "reference": task.texts["test"]["tgt"][index]}


def _panel_labels(ex: dict, kind: str):
    """(row, column) tokens: a decoder row is labelled by the character it writes, its keys by their inputs."""
    return {"self": (ex["src"], ex["src"]), "causal": (ex["out"], ex["tgt_in"]),
            "cross": (ex["out"], ex["src"])}[kind]


def attention_figure(ex: dict, kinds=("self", "causal", "cross"), layer: int = -1):
    """Encoder self-, decoder causal self- and cross-attention (head mean) of one layer, with tokens."""
    mats, rows, cols, titles = [], [], [], []
    for kind in kinds:
        maps = ex["maps"][kind]
        r, c = _panel_labels(ex, kind)
        mats.append(torch.as_tensor(maps[layer]).mean(0))
        rows.append(r)
        cols.append(c)
        titles.append(f"{kind} attention, layer {len(maps) if layer == -1 else layer + 1}")
    return attention_matrices(mats, rows, cols, titles, height=3.0)


def cross_attention_figure(examples: list[dict], layer: int = -1):
    """Cross-attention of several numbers: the German character being written (rows) over English words (columns)."""
    mats = [torch.as_tensor(ex["maps"]["cross"][layer]).mean(0) for ex in examples]
    return attention_matrices(mats, [ex["out"] for ex in examples], [ex["src"] for ex in examples],
                              [f"{ex['number']}: {ex['reference']}" for ex in examples], ncols=2, height=3.2)


# ---------------------------------------------------------------- reproduce

def _delta(results: dict, name: str, base: str, metric: str = "exact") -> dict:
    """Paired per-seed differences name - base (seed i of one against seed i of the other)."""
    return ledger.summarize([a[metric] - b[metric] for a, b in zip(results[name], results[base])])


def convergence(cfg: Config, task: Task, seed: int, per: dict, progress: bool = True) -> dict:
    """The base Transformer and the GRU trained `cfg.longer` times the epochs (first seed): how much does
    their exact match still move? One `experiment.longer_check` record per model (and its epochs as
    trained); the ledger's rule judges it against the smallest effect when a page is drawn."""
    out = {}
    longer = replace(cfg.train, epochs=cfg.longer * cfg.train.epochs)
    for name, base in (("Transformer", cfg.transformer), ("GRU + attention", cfg.gru)):
        res = train_one(name, model_config(base, task), task, longer, seed, progress=progress)
        m = evaluate_result(res, task, cfg)
        out[name] = {**longer_check([per[name][0]["exact"]], [m["exact"]], [seed], cfg.longer),
                     "epochs": cfg.train.epochs}
    return out


def effects(per: dict) -> dict:
    """Every paired per-seed exact-match effect of the run: each other model minus the base Transformer."""
    return {name: _delta(per, name, "Transformer") for name in per if name != "Transformer"}


def judge_convergence(conv: dict, per: dict) -> dict:
    """Each model's convergence record (`experiment.longer_check`) with the ledger's one rule applied to its
    move: below the smallest resolved effect? A new dict: the records stay numbers only."""
    eff = effects(per)
    judged = {name: {**v, **ledger.convergence(v["change"], eff)} for name, v in conv.items()}
    first = next(iter(judged.values()))
    return {**judged, "smallest_effect": first["smallest_effect"], "smallest_name": first["smallest_name"],
            "converged": None if first["converged"] is None else all(v["converged"] for v in judged.values())}


def reproduce(profile: str = "standard", seeds=None, progress: bool = True) -> str:
    """Transformer vs GRU and a small Table 3, every model with each seed; the convergence check;
    attention artifacts."""
    t0 = time.perf_counter()
    cfg = config(profile)
    seeds = tuple(seeds or cfg.seeds)
    task = load_task(cfg.tgt_lang, cfg.n_max, cfg.n_train)
    per: dict[str, list[dict]] = {}
    histories: dict[str, dict] = {}
    first = None
    for s in seeds:
        for name, base in (("Transformer", cfg.transformer), ("GRU + attention", cfg.gru)):
            res = train_one(name, model_config(base, task), task, cfg.train, s, progress=progress)
            per.setdefault(name, []).append(evaluate_result(res, task, cfg,
                                                            beam=(s == seeds[0] and name == "Transformer")))
            histories[f"{name} (seed {s})"] = res.history.to_dict()
            if name == "Transformer" and first is None:
                first = res
        for name, (over, ls) in cfg.ablations.items():
            res = train_one(name, model_config(cfg.transformer, task, **over), task, cfg.train, s, ls, progress)
            per.setdefault(name, []).append(evaluate_result(res, task, cfg))
            histories[f"{name} (seed {s})"] = res.history.to_dict()
    conv = convergence(cfg, task, seeds[0], per, progress)  # numbers only: judged when a page is drawn
    metrics = {f"{name} / {k}": ledger.summarize([r.get(k) for r in rs]) for name, rs in per.items()
               for k in rs[0] if all(r.get(k) is not None for r in rs)}
    for name, d in effects(per).items():  # paired per-seed effects on exact match
        metrics[f"{name} minus Transformer / exact"] = d
    comparisons = _comparisons(per, cfg)
    examples = [attention_maps(first.model, task, i) for i in example_numbers(task)]
    prov = provenance(profile, seeds, time.perf_counter() - t0,
                      dataset={"name": f"numbers en-{cfg.tgt_lang}", "source": task.source,
                               "splits": {k: len(v[0]) for k, v in task.splits.items()}},
                      config=cfg)
    extra = {"histories": histories, "per_run": per, "convergence": conv,
             "task": {"n_eval": cfg.n_eval, "unseen": unseen(task, cfg.n_eval)},
             "artifacts": {"examples": [{**ex, "maps": {k: [m.round(decimals=3).tolist() for m in v]
                                                                 for k, v in ex["maps"].items()}}
                                        for ex in examples],
                           "d_model": cfg.transformer.d_model, "lr": cfg.train.lr,
                           "warmup_steps": int(cfg.train.warmup_epochs
                                               * -(-len(task.splits["train"][0]) // cfg.train.batch_size)),
                           "total_steps": histories[next(iter(histories))]["epochs"][-1]["step"]}}
    return str(ledger.record(CHAPTER, profile, prov, metrics, comparisons, extra))


def _comparisons(per: dict, cfg: Config) -> list[dict]:
    tr, rnn = per["Transformer"], per["GRU + attention"]
    rows = [ledger.compare(PAPER, "bleu_base_en_de", sum(r["bleu"] for r in tr) / len(tr),
                           "char-BLEU, numbers en->de (greedy)", "WMT14 newstest2014 vs number words: not comparable."),
            ledger.compare(PAPER, "beats_recurrent_bleu", _delta(per, "Transformer", "GRU + attention", "bleu"),
                           "char-BLEU, Transformer minus GRU+attention, same loop and epochs",
                           "GNMT+RL is a much larger LSTM; ours is a GRU of similar size to our Transformer.")]
    t_tr = [r["time_to_target_s"] for r in tr]
    t_rnn = [r["time_to_target_s"] for r in rnn]
    if all(t is not None for t in t_tr + t_rnn):
        mean_rnn = sum(t_rnn) / len(t_rnn)
        saved = ledger.summarize([100.0 * (1 - t / mean_rnn) for t in t_tr])
        rows.append(ledger.compare(PAPER, "less_training_cost", saved,
                                   f"% less CPU wall time to {cfg.target_acc:.0%} val. token accuracy",
                                   "Paper: FLOPs on GPUs; ours: wall time on 2 shared CPU cores, where parallelism "
                                   "over positions helps far less."))
    claims = {"1 head (d_k 64)": "h1_vs_base", "16 heads (d_k 4)": "many_heads_vs_base",
              "learned positions": "learned_pos_vs_base", "no label smoothing": "no_ls_vs_base",
              "1 layer": "fewer_layers_vs_base"}
    # the same quantity as row 2 (a char-BLEU difference), so that sibling rows are judged alike
    for name, claim_id in claims.items():
        if name in per:
            rows.append(ledger.compare(PAPER, claim_id, _delta(per, name, "Transformer", "bleu"),
                                       "char-BLEU vs base (d_model 64, h 4, 2 layers), numbers en->de",
                                       f"paired per-seed differences over {len(per[name])} seeds; WMT "
                                       "BLEU and char-BLEU on number words share the kind, not the scale."))
    return rows


def rederive_comparisons(results: dict) -> list[dict]:
    """The comparisons of a recorded run recomputed from its stored per-seed numbers (`per_run`), with
    today's `_comparisons`: arithmetic on what the run measured, no training."""
    return _comparisons(results["per_run"], config(results["profile"]))


# ---------------------------------------------------------------- figures for the thesis

@figure("transformer_curves", CHAPTER)
def fig_curves(results: dict):
    # the first seed's two main models (the other seeds' curves lie on top of them: one legend entry per model)
    first = f" (seed {results['provenance']['seeds'][0]})"
    hs = {k[: -len(first)]: v for k, v in results["histories"].items()
          if k.endswith(first) and k.startswith(("Transformer", "GRU"))}
    return learning_curves(hs, metrics=("train_loss", ("test_acc", f"test token accuracy{first}", list(hs))))


@figure("transformer_cross_attention", CHAPTER)
def fig_cross(results: dict):
    return cross_attention_figure(results["artifacts"]["examples"])


@figure("transformer_attention_kinds", CHAPTER)
def fig_kinds(results: dict):
    return attention_figure(results["artifacts"]["examples"][0])


@figure("transformer_positions_schedule", CHAPTER)
def fig_positions(results: dict):
    art = results["artifacts"]
    return positions_and_schedule(art["d_model"], art["lr"], art["warmup_steps"], art["total_steps"])


def positions_and_schedule(d_model: int, lr: float, warmup: int, total: int):
    """The sinusoidal position matrix (Sec. 3.5) beside the warmup / inverse-sqrt learning rate (Eq. 3)."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(6.3, 2.4))
    matrix_heatmap(a, sinusoidal_positions(48, d_model).T, "position", "dimension", "PE value", cmap="RdBu",
                   title="sinusoidal positions")
    steps = list(range(total))
    lrs = [warmup_rsqrt(s, warmup, lr) for s in steps]
    lines_with_bands(steps, {"noam": (lrs, None)}, "step", "learning rate", ax=b)
    b.set_title(f"warmup {warmup} steps, then 1/sqrt(step)")
    fig.tight_layout()
    return fig


@figure("transformer_table3", CHAPTER)
def fig_table3(results: dict):
    """Left: exact match of every model (mean ± s.e. over seeds). Right: each variant minus the base,
    paired by seed (mean ± s.e.)."""
    import matplotlib.pyplot as plt
    from ..viz import TEXT_WIDTH_IN, bar_with_errors
    m = results["metrics"]
    names = [k.split(" / ")[0] for k in m if k.endswith(" / exact") and " minus " not in k]
    fig, (a, b) = plt.subplots(1, 2, figsize=(TEXT_WIDTH_IN, 3.4))
    ex = [m[f"{n} / exact"] for n in names]
    bar_with_errors(a, names, [e["mean"] for e in ex], [ledger.se(e) for e in ex],
                    ylabel="exact match (%)", n=min(e["n"] for e in ex), err="s.e.")
    diffs = [n for n in names if f"{n} minus Transformer / exact" in m]
    if not diffs:  # a recording from before the paired effects were stored: the left panel only
        b.set_visible(False)
        return fig
    d = [m[f"{n} minus Transformer / exact"] for n in diffs]
    bar_with_errors(b, diffs, [e["mean"] for e in d], [ledger.se(e) for e in d],
                    ylabel="minus base (points)", n=min(e["n"] for e in d), err="s.e.")
    b.axhline(0, color="gray", lw=0.8)
    for ax in (a, b):  # seven long names under narrow bars
        ax.tick_params(axis="x", labelrotation=40)
    fig.tight_layout()
    return fig


@figure("transformer_quality_time", CHAPTER)
def fig_quality_time(results: dict):
    """Validation token accuracy against cumulative training wall time, Transformer and GRU (seed means)."""
    import matplotlib.pyplot as plt
    from ..viz import TEXT_WIDTH_IN, lines_with_bands
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH_IN, 2.4))
    for model in ("Transformer", "GRU + attention"):
        runs = [h["epochs"] for k, h in results["histories"].items() if k.startswith(model + " (seed")]
        scored = [i for i, e in enumerate(runs[0]) if e.get("test_acc") is not None]  # every eval_every epochs
        secs = [sum(sum(e["seconds"] for e in r[: i + 1]) for r in runs) / len(runs) for i in scored]
        acc = [100 * sum(r[i]["test_acc"] for r in runs) / len(runs) for i in scored]
        lines_with_bands(secs, {f"{model} ({len(runs)} seeds)": (acc, None)}, "training wall time (s)",
                         "val. token accuracy (%)", ax=ax)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- exercises

def safe_attention(q, k, v, mask) -> torch.Tensor:
    """Masked attention whose fully masked query rows (e.g. padding queries) give 0 instead of NaN:
    softmax over an all -inf row is 0/0."""
    scores = (q @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5
    w = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return torch.nan_to_num(w, nan=0.0) @ v


@exercise("transformer.masked_attention", torch.nn.functional.scaled_dot_product_attention)
def _check_masked_attention(fn):
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 4, 8), torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    mask = torch.rand(2, 1, 4, 5) > 0.4
    mask[..., 0] = True
    mask[1, :, 2] = False  # one query that may attend to nothing
    got = fn(q, k, v, mask)
    if torch.isnan(got).any():
        raise AssertionError("NaN in the output: a query whose mask row is all False takes a softmax of "
                             "all -inf; give such rows an output of 0.")
    assert_same(got, safe_attention(q, k, v, mask), "attention output (scale by 1/sqrt(d_k), mask before "
                "the softmax, 0 for fully masked rows)")


def window_causal_mask(n: int, w: int) -> torch.Tensor:
    """(n, n) bool: query i may see keys i - w + 1 .. i (a causal mask that also forgets beyond w)."""
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    return (j <= i) & (j > i - w)


@exercise("transformer.causal_mask", causal_mask)
def _check_causal_mask(fn):
    for n, w in ((1, 1), (6, 2), (7, 3), (5, 9)):
        got = torch.as_tensor(fn(n, w))
        if got.dtype != torch.bool:
            raise AssertionError("the mask should be boolean: True where a query may attend to a key.")
        assert_same(got.int(), window_causal_mask(n, w).int(),
                    f"window mask for n={n}, w={w} (query i sees keys i-w+1..i: itself and w-1 before it)")


def position_shift(k: int, d: int) -> torch.Tensor:
    """The (d, d) matrix M_k with PE[pos + k] = M_k @ PE[pos] for every pos (Sec. 3.5's claim): one 2x2
    rotation by angle k * omega_i per (sin, cos) pair of columns."""
    omega = 1.0 / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    m = torch.zeros(d, d, dtype=torch.float64)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    idx = torch.arange(0, d, 2)
    m[idx, idx], m[idx, idx + 1], m[idx + 1, idx], m[idx + 1, idx + 1] = c, s, -s, c
    return m.float()


@exercise("transformer.sinusoidal_positions", sinusoidal_positions)
def _check_sinusoidal(fn):
    for k, d in ((1, 8), (5, 32), (0, 4)):
        m = torch.as_tensor(fn(k, d), dtype=torch.float32)
        pe = sinusoidal_positions(60, d)
        if m.shape != (d, d):
            raise AssertionError(f"position_shift({k}, {d}) has shape {tuple(m.shape)}, expected ({d}, {d}).")
        assert_same(pe[:60 - k] @ m.T, pe[k:], f"M_{k} @ PE[pos] must equal PE[pos + {k}] for d={d} "
                    "(it cannot depend on pos: a rotation of each (sin, cos) pair)", atol=1e-4)


# ---------------------------------------------------------------- the recorded run, in words

def _pm(s: dict, unit: str = "") -> str:
    """A paired effect with its 95% interval and seed count, and what the evidence rule calls it."""
    clear = f", {ledger.direction(s)}" if s["n"] > 1 else ""
    return f"{ledger.effect_text(s, 1, unit)} ({s['n']} seeds{clear})"


def _ceiling(results: dict) -> str:
    t = results.get("task")
    if not t:
        return ""
    return (f" {t['unseen']} of the {t['n_eval']:,} test numbers hold a word that no training number has, "
            f"so no model can pass {100 * (1 - t['unseen'] / t['n_eval']):.1f}% exact match.")


def _judged(results: dict) -> dict:
    """The stored convergence runs judged now by the ledger's rule (never a verdict stored at recording)."""
    conv = results.get("convergence") or {}
    return judge_convergence(conv, results["per_run"]) if conv else conv


def standard_summary(results: dict) -> str:
    """Markdown bullets of what a recorded standard run shows, every number read from `results`."""
    m, conv = results["metrics"], _judged(results)
    ds, prov = results["provenance"]["dataset"], results["provenance"]
    ex = {n: m[f"{n} / exact"] for n in ("Transformer", "GRU + attention")}
    se = {n: ledger.se(v) for n, v in ex.items()}
    out = [f"- **Setting**: {ds['splits']['train']:,} training numbers, {len(prov['seeds'])} seeds, "
           f"{prov['wall_time_s'] / 60:.0f} min of wall time for the whole run." + _ceiling(results),
           f"- **Exact match**: Transformer {ex['Transformer']['mean']:.1f} ± {se['Transformer']:.1f} %, "
           f"GRU + attention {ex['GRU + attention']['mean']:.1f} ± {se['GRU + attention']:.1f} % (s.e.)"
           + (f"; GRU minus Transformer, paired: {_pm(m[key], ' points')}." if (
               key := "GRU + attention minus Transformer / exact") in m else "."),
           f"- **Training wall time**: Transformer {m['Transformer / train_s']['mean']:.0f} s, GRU "
           f"{m['GRU + attention / train_s']['mean']:.0f} s for the same epochs (seed means)."]
    for name in [k.split(" minus ")[0] for k in m if k.endswith(" minus Transformer / exact")]:
        if name != "GRU + attention":
            out.append(f"- **{name}** minus base: {_pm(m[f'{name} minus Transformer / exact'], ' points')}.")
    if conv:
        ch = ", ".join(f"{n} {v['base'][0]:.1f} -> {v['longer'][0]:.1f} %" for n, v in conv.items()
                       if isinstance(v, dict))
        small = conv.get("smallest_effect")
        verdict = ("no effect is resolved, so there is nothing for the change to stay below" if small is None
                   else f"smallest resolved effect {small:.1f} points"
                   + (f" ({conv['smallest_name']})" if conv.get("smallest_name") else "") + ": "
                   f"{'converged' if conv.get('converged') else 'not converged by this rule'}")
        out.append(f"- **Convergence check** (1.5x the epochs, first seed): {ch}; {verdict}.")
    return "\n".join(out)

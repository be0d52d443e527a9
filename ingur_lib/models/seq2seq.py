"""Sequence-to-sequence models and decoding: the Transformer (Vaswani et al. 2017) and the recurrent
baseline it replaced (a GRU encoder-decoder with additive attention, Bahdanau et al. 2015).

Both share one interface, so the training loss and the decoders below serve both:
    encode(src) -> (memory, src_mask);  decode(tgt_in, memory, src_mask) -> logits (B, T, V);
    forward(src, tgt_in) = decode(tgt_in, *encode(src)).
Ids follow `ingur_lib.data.Vocab`: <pad>=0, <bos>=1, <eos>=2.

Decoding (Sec. 6.1): `greedy_decode` and `beam_search` (beam 4, length penalty alpha 0.6 as in the
paper, the GNMT penalty ((5 + |Y|) / 6)^alpha), both batched over sentences; they recompute the
prefix at each step (no key/value cache): simple, and cheap at these lengths.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import IngurError
from ..nn.transformer import POSITIONS, DecoderLayer, EncoderLayer, causal_mask, padding_mask

PAD, BOS, EOS = 0, 1, 2


@dataclass
class Seq2SeqConfig:
    arch: str = "transformer"        # "transformer" or "gru"
    src_vocab: int = 0
    tgt_vocab: int = 0
    d_model: int = 64
    heads: int = 4
    layers: int = 2                  # encoder and decoder layers each (GRU: layers of the decoder GRU)
    d_ff: int = 256
    dropout: float = 0.1
    positions: str = "sinusoidal"    # or "learned"
    norm_first: bool = False         # False = post-LN as in the paper
    share_embeddings: bool = True    # tie the target embedding and the pre-softmax projection (Sec. 3.4)
    max_len: int = 128

    def to_dict(self):
        return asdict(self)


class Transformer(nn.Module):
    """Encoder-decoder Transformer (Fig. 1). Embeddings are multiplied by sqrt(d_model) (Sec. 3.4)."""

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        if cfg.positions not in POSITIONS:
            raise IngurError(f"Unknown positions {cfg.positions!r}: use one of {', '.join(POSITIONS)}.")
        self.cfg, d = cfg, cfg.d_model
        self.src_embed = nn.Embedding(cfg.src_vocab, d, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab, d, padding_idx=PAD)
        for emb in (self.src_embed, self.tgt_embed):
            nn.init.normal_(emb.weight, std=d ** -0.5)  # so that sqrt(d) * embedding has unit scale
        self.src_pos, self.tgt_pos = POSITIONS[cfg.positions](d, cfg.max_len), POSITIONS[cfg.positions](d, cfg.max_len)
        self.drop = nn.Dropout(cfg.dropout)
        args = (d, cfg.heads, cfg.d_ff, cfg.dropout, cfg.norm_first)
        self.encoder = nn.ModuleList(EncoderLayer(*args) for _ in range(cfg.layers))
        self.decoder = nn.ModuleList(DecoderLayer(*args) for _ in range(cfg.layers))
        # Pre-LN leaves the residual stream unnormalized: it needs a final LayerNorm; post-LN does not.
        self.enc_norm = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.dec_norm = nn.LayerNorm(d) if cfg.norm_first else nn.Identity()
        self.generator = nn.Linear(d, cfg.tgt_vocab, bias=False)
        if cfg.share_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def encode(self, src):
        mask = padding_mask(src, PAD)
        x = self.drop(self.src_pos(self.src_embed(src) * math.sqrt(self.cfg.d_model)))
        for layer in self.encoder:
            x = layer(x, mask)
        return self.enc_norm(x), mask

    def decode(self, tgt_in, memory, src_mask):
        y = self.drop(self.tgt_pos(self.tgt_embed(tgt_in) * math.sqrt(self.cfg.d_model)))
        self_mask = causal_mask(tgt_in.shape[1], tgt_in.device)
        for layer in self.decoder:
            y = layer(y, memory, self_mask, src_mask)
        return self.generator(self.dec_norm(y))

    def forward(self, src, tgt_in):
        return self.decode(tgt_in, *self.encode(src))


class AdditiveAttention(nn.Module):
    """Bahdanau attention: score(s, h_j) = v^T tanh(W s + U h_j); weights recorded under capture_attention."""

    def __init__(self, d_query: int, d_key: int, d_att: int):
        super().__init__()
        self.w, self.u, self.v = (nn.Linear(d_query, d_att, bias=False), nn.Linear(d_key, d_att),
                                  nn.Linear(d_att, 1, bias=False))
        self.kind = "cross"
        self.capture: list | None = None

    def forward(self, s, keys, projected_keys, mask):
        """s (B, d_query); keys (B, N, d_key); mask (B, N) True at real tokens -> context (B, d_key)."""
        scores = self.v(torch.tanh(self.w(s)[:, None] + projected_keys)).squeeze(-1)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
        return (weights[:, None] @ keys).squeeze(1), weights


class GRUSeq2Seq(nn.Module):
    """The recurrent baseline: bidirectional GRU encoder, GRU decoder fed with an additive-attention context.

    The decoder must run one position after another (its state at t depends on t-1): the sequential
    computation the Transformer removes (Sec. 1, 4).
    """

    def __init__(self, cfg: Seq2SeqConfig):
        super().__init__()
        self.cfg, d = cfg, cfg.d_model
        self.src_embed = nn.Embedding(cfg.src_vocab, d, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(cfg.tgt_vocab, d, padding_idx=PAD)
        self.encoder = nn.GRU(d, d // 2, batch_first=True, bidirectional=True)
        self.attention = AdditiveAttention(d, d, d)
        self.init_state = nn.Linear(d, d)
        self.cell = nn.GRUCell(2 * d, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.generator = nn.Linear(d, cfg.tgt_vocab, bias=False)
        if cfg.share_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def encode(self, src):
        mask = src != PAD
        lengths = mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.drop(self.src_embed(src)), lengths, batch_first=True,
                                                   enforce_sorted=False)
        out, _ = self.encoder(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        return memory, mask

    def decode(self, tgt_in, memory, src_mask):
        emb = self.drop(self.tgt_embed(tgt_in))
        mean = (memory * src_mask[..., None]).sum(1) / src_mask.sum(1, keepdim=True)
        s, keys = torch.tanh(self.init_state(mean)), self.attention.u(memory)
        outs, maps = [], []
        for t in range(tgt_in.shape[1]):
            ctx, w = self.attention(s, memory, keys, src_mask)
            s = self.cell(torch.cat([emb[:, t], ctx], -1), s)
            outs.append(s)
            maps.append(w)
        if self.attention.capture is not None:  # one (B, 1, T, N) map, like a single-head cross-attention
            self.attention.capture.append(torch.stack(maps, 1)[:, None].detach())
        return self.generator(self.drop(torch.stack(outs, 1)))

    def forward(self, src, tgt_in):
        return self.decode(tgt_in, *self.encode(src))


MODELS = {"transformer": Transformer, "gru": GRUSeq2Seq}


def build(cfg: Seq2SeqConfig) -> nn.Module:
    if cfg.arch not in MODELS:
        raise IngurError(f"Unknown seq2seq arch {cfg.arch!r}: use one of {', '.join(MODELS)}.")
    if not cfg.src_vocab or not cfg.tgt_vocab:
        raise IngurError("Seq2SeqConfig needs src_vocab and tgt_vocab: set them to len(vocab) of each side.")
    return MODELS[cfg.arch](cfg)


def shift_right(tgt_out: torch.Tensor) -> torch.Tensor:
    """Decoder input from the target: <bos> then the target without its last position (teacher forcing)."""
    return torch.cat([torch.full_like(tgt_out[:, :1], BOS), tgt_out[:, :-1]], 1)


def seq2seq_loss(label_smoothing: float = 0.1):
    """loss_fn for `ingur_lib.train.fit` on batches (src, tgt_out): teacher forcing, padding ignored."""
    def loss_fn(model, batch):
        src, tgt = batch[0], batch[1]
        logits = model(src, shift_right(tgt))
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD, label_smoothing=label_smoothing)
        return loss, logits
    return loss_fn


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, max_len: int = 64) -> torch.Tensor:
    """(B, <=max_len) ids, the most likely token at each step; rows end with <eos> then <pad>."""
    model.eval()
    memory, mask = model.encode(src)
    ys = torch.full((len(src), 1), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(len(src), dtype=torch.bool, device=src.device)
    for _ in range(max_len):
        nxt = model.decode(ys, memory, mask)[:, -1].argmax(-1)
        nxt = nxt.masked_fill(done, PAD)
        ys = torch.cat([ys, nxt[:, None]], 1)
        done |= nxt == EOS
        if done.all():
            break
    return ys[:, 1:]


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^alpha; the paper decodes with alpha = 0.6."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(model: nn.Module, src: torch.Tensor, beam: int = 4, alpha: float = 0.6,
                max_len: int = 64) -> torch.Tensor:
    """Batched beam search: the hypothesis with the best log P(Y|X) / lp(Y) per sentence, as (B, T) ids."""
    model.eval()
    b, dev = len(src), src.device
    memory, mask = model.encode(src)
    memory, mask = memory.repeat_interleave(beam, 0), mask.repeat_interleave(beam, 0)
    ys = torch.full((b * beam, 1), BOS, dtype=torch.long, device=dev)
    score = torch.full((b, beam), float("-inf"), device=dev)
    score[:, 0] = 0.0                                    # start from one live hypothesis per sentence
    done = torch.zeros(b * beam, dtype=torch.bool, device=dev)
    for _ in range(max_len):
        logp = model.decode(ys, memory, mask)[:, -1].float().log_softmax(-1)     # (B*beam, V)
        v = logp.shape[-1]
        # A finished hypothesis can only be extended by <pad>, at no cost.
        logp[done] = float("-inf")
        logp[done, PAD] = 0.0
        total = (score.view(-1, 1) + logp).view(b, beam * v)
        score, idx = total.topk(beam, -1)
        parent = (idx // v + torch.arange(b, device=dev)[:, None] * beam).flatten()
        tok = (idx % v).flatten()
        ys = torch.cat([ys[parent], tok[:, None]], 1)
        done = done[parent] | (tok == EOS)
        if done.all():
            break
    lengths = ((ys[:, 1:] != PAD) & (ys[:, 1:] != EOS)).sum(1).float() + 1   # tokens plus <eos>
    best = (score.flatten() / length_penalty(lengths, alpha)).view(b, beam).argmax(-1)
    return ys.view(b, beam, -1)[torch.arange(b, device=dev), best, 1:]

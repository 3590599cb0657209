"""Benchmark cases of book/generative/damsm.md (read by benchmarks/losses.py): the word loss
against AttnGAN's released ``words_loss`` (a loop over the captions, rewritten here without
its class masking; lossbook with ``official_code=True`` is the same loss), and the sentence
loss against its ``sent_loss`` (cosine matrix times gamma3, two cross entropies)."""

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from registry import _with, embedding_tuples

import lossbook

_path = Path(__file__).resolve().parent.parent / "tests" / "generative" / "cases_damsm.py"
_spec = importlib.util.spec_from_file_location("benchmark_cases_damsm_maker", _path)
_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cases)


def attngan_words_loss(img_features, words_emb, cap_lens, gamma1=4.0, gamma2=5.0, gamma3=10.0):
    """AttnGAN's words_loss in its own layout (images (N, D, H, W) or (N, D, R), words
    (N, D, T), caption lengths a list): for each caption, its words attend over every image
    (func_attention: dot products, softmax over the words, gamma1, softmax over the regions),
    log sum exp(gamma2 cos) without 1/gamma2, then two cross-entropy means."""
    n = img_features.shape[0]
    context = img_features.reshape(n, img_features.shape[1], -1)                       # n x D x R
    columns = []
    for i in range(n):
        word = words_emb[i, :, : cap_lens[i]].unsqueeze(0).repeat(n, 1, 1)             # n x D x T_i
        attn = torch.softmax(torch.bmm(context.transpose(1, 2), word), dim=2)           # n x R x T_i, over words
        attn = torch.softmax(gamma1 * attn.transpose(1, 2), dim=2)                      # n x T_i x R, over regions
        weighted = torch.bmm(context, attn.transpose(1, 2))                             # n x D x T_i
        cos = F.cosine_similarity(word, weighted, dim=1)                                # n x T_i
        columns.append(torch.log(torch.exp(gamma2 * cos).sum(dim=1, keepdim=True)))
    similarities = gamma3 * torch.cat(columns, 1)                                       # images x captions
    labels = torch.arange(n, device=similarities.device)
    return F.cross_entropy(similarities, labels) + F.cross_entropy(similarities.T, labels)


def attngan_sent_loss(cnn_code, rnn_code, gamma3=10.0):
    """AttnGAN's sent_loss without class masking: cosine matrix times gamma3, two cross entropies."""
    norms = torch.outer(cnn_code.norm(dim=1), rnn_code.norm(dim=1)).clamp(min=1e-8)
    scores = gamma3 * (cnn_code @ rnn_code.T) / norms
    labels = torch.arange(len(scores), device=scores.device)
    return F.cross_entropy(scores, labels) + F.cross_entropy(scores.T, labels)


# AttnGAN's CUB setting at scale 1: 48 pairs, 17 x 17 = 289 regions, 18 words, D = 256;
# 64 pairs of 5 regions, 3 words, D = 4 for --small. Sentences: 4096 pairs of D = 256.
WORDS = (_cases.regions_words, 48, {"regions": 289, "words": 18, "dim": 256}, {"regions": 5, "words": 3, "dim": 4})
SENTENCES = (_with(embedding_tuples, count=2), 4096, {"dim": 256}, {"dim": 10})

CASES = [
    dict(part="generative", name="damsm_word_loss", inputs=WORDS,
         ours=lambda v, e: lossbook.damsm_word_loss(v, e, official_code=True),
         peer=lambda v, e: attngan_words_loss(v.transpose(1, 2), e.transpose(1, 2), [e.shape[1]] * e.shape[0]),
         peer_name="AttnGAN words_loss (loop over captions)", floor=False),
    dict(part="generative", name="damsm_sentence_loss", inputs=SENTENCES, ours=lossbook.damsm_sentence_loss,
         peer=attngan_sent_loss, peer_name="AttnGAN sent_loss", floor=False),
]

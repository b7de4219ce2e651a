"""The all-MiniLM-L6-v2 encoder: verified weights, the graph's numbers, shape, norm, padding, meaning."""

from pathlib import Path

import numpy as np
import pytest

from bot.nlu import sentence_encoder
from bot.nlu.sentence_encoder import (
    DIMENSION,
    WEIGHTS_SHA256,
    SentenceEncoder,
    WeightsMismatchError,
    file_sha256,
    model_dir,
    shared_encoder,
)

SENTENCES = [
    "my card still hasn't arrived",
    "when will my new card be delivered to me?",
    "what's the weather in Paris",
    "How do I activate my card?",
]


def test_installed_weights_are_the_pinned_release() -> None:
    assert file_sha256(model_dir() / "model.safetensors") == WEIGHTS_SHA256


def test_weights_with_another_hash_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sentence_encoder, "_marker_path", lambda: tmp_path / "marker.json")
    forged = tmp_path / "model.safetensors"
    forged.write_bytes(b"not the model")
    with pytest.raises(WeightsMismatchError, match=WEIGHTS_SHA256):
        sentence_encoder.verify_weights(forged)


# The first 8 dimensions of two embeddings as computed by the project's earlier numpy port of the
# forward pass (BERT layer by layer, mean pooling, L2 norm): the ONNX graph must give the same
# numbers, so a wrong wire in the graph (a transposed weight, a missing residual) shows here.
REFERENCE = {
    "my card still hasn't arrived": [
        -0.014753,
        0.004562,
        0.018691,
        0.037131,
        0.009675,
        -0.064,
        -0.022181,
        -0.023133,
    ],
    "what's the weather in Paris": [
        0.030573,
        0.006231,
        0.108734,
        -0.014815,
        0.07114,
        -0.026028,
        0.00832,
        -0.044147,
    ],
}


def test_graph_reproduces_the_reference_embeddings() -> None:
    vectors = shared_encoder().encode(list(REFERENCE))
    np.testing.assert_allclose(vectors[:, :8], np.array(list(REFERENCE.values())), atol=2e-6)


def test_embeddings_have_384_dimensions_and_unit_norm() -> None:
    vectors = shared_encoder().encode(SENTENCES)
    assert vectors.shape == (len(SENTENCES), DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encoding_is_deterministic_and_independent_of_batch_padding() -> None:
    encoder = shared_encoder()
    together = encoder.encode(SENTENCES)
    alone = np.vstack([encoder.encode([s]) for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_array_equal(together, encoder.encode(SENTENCES))


def test_paraphrases_are_closer_than_unrelated_sentences() -> None:
    v = shared_encoder().encode(SENTENCES)
    similarity = v @ v.T
    assert similarity[0, 1] > 0.5  # two ways of asking where the card is
    assert similarity[0, 2] < 0.15  # card delivery vs weather
    assert similarity[0, 1] > similarity[0, 2] + 0.4
    assert similarity[3, 0] > similarity[3, 2]


def test_empty_input_gives_an_empty_matrix() -> None:
    assert shared_encoder().encode([]).shape == (0, DIMENSION)


def test_one_thread_gives_the_embeddings_of_two_to_the_bit() -> None:
    """THREADS went from 2 to 1 for speed: the trained classifier's inputs must not move."""
    assert sentence_encoder.THREADS == 1
    two = SentenceEncoder(threads=2)
    texts = [*SENTENCES, *REFERENCE, "a" * 400, "£25.50 to card ending 4242 on 3 May"]
    one = shared_encoder()
    np.testing.assert_array_equal(one.encode(texts), two.encode(texts))  # batched, as trained
    for text in texts:  # one message at a time, as served
        np.testing.assert_array_equal(one.encode([text]), two.encode([text]))

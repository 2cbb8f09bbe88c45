"""Load-time graph repairs give the same numbers as the graphs they repair."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from face_engine import graphs
from face_engine.imaging import read_image
from face_engine.recognizers import Recognizer, align, probe_crops


def run(model: onnx.ModelProto, feeds: dict | None = None) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds or {})


def dequantize_model(quantized, scale, zero_point, axis, block_size) -> onnx.ModelProto:
    node = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=axis, block_size=block_size)
    graph = helper.make_graph(
        [node], "dq", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(quantized, "q"), numpy_helper.from_array(scale, "s"),
                     numpy_helper.from_array(zero_point, "z")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


@pytest.mark.parametrize("scale_shape, axis, block_size", [
    ((), 1, 0),          # per tensor
    ((6,), 0, 0),        # per axis
    ((2, 5), 0, 4),      # blocked along axis 0, 6 rows in blocks of 4 (the last block short)
    ((6, 2), 1, 3),      # blocked along axis 1
])
def test_folded_dequantize_equals_onnxruntime(scale_shape, axis, block_size):
    rng = np.random.default_rng(0)
    quantized = rng.integers(-128, 128, (6, 5), dtype=np.int8)
    scale = rng.uniform(0.01, 0.1, scale_shape).astype(np.float32)
    zero_point = rng.integers(-5, 5, scale_shape, dtype=np.int8)
    model = dequantize_model(quantized, scale, zero_point, axis, block_size)
    expected = run(model)[0]
    graphs.fold_constant_dequantize(model)
    assert not any(node.op_type == "DequantizeLinear" for node in model.graph.node)
    folded = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "y")
    np.testing.assert_allclose(folded, expected, rtol=1e-6)


def test_the_repaired_sface_graph_embeds_real_faces_as_the_shipped_one(sface_engine, photos):
    pack = sface_engine.pack
    shipped = onnx.load(str(pack.recognizer_path))
    graphs.drop_unused_inputs(shipped)  # the least onnxruntime needs to load it at all
    reference = Recognizer(ort.InferenceSession(shipped.SerializeToString(), providers=["CPUExecutionProvider"]),
                           0.0, 1.0, True, batch_size=1)
    image = read_image(photos / "if_t1.jpg")
    crops = np.stack([align(image, lm) for lm in sface_engine.detect(image).landmarks])
    cosine = np.sum(reference.embed(crops) * sface_engine.recognizer.embed(crops), axis=1)
    assert cosine.min() > 0.9999


def test_batches_give_the_batch_one_embeddings(engine):
    crops = probe_crops(5, seed=1)
    assert engine.recognizer.batch_size > 1
    batched = engine.recognizer.embed(crops)
    single = np.vstack([engine.recognizer.embed(crops[i:i + 1]) for i in range(5)])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def tiny_recognizer(nodes, initializers=()) -> ort.InferenceSession:
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], initializer=list(initializers),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    graphs.make_batch_dynamic(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_a_graph_that_hard_codes_batch_one_is_run_one_face_at_a_time():
    shape = numpy_helper.from_array(np.array([1, 3, 112 * 112], np.int64), "shape")
    axes = numpy_helper.from_array(np.array([2], np.int64), "axes")
    session = tiny_recognizer(
        [helper.make_node("Reshape", ["x", "shape"], ["flat"]),
         helper.make_node("ReduceMean", ["flat", "axes"], ["y"], keepdims=0)],
        [shape, axes],
    )
    recognizer = Recognizer(session, 0.0, 1.0, True, batch_size=8)
    assert recognizer.check_batching(probe_crops()) is False
    assert recognizer.batch_size == 1
    assert recognizer.embed(probe_crops(3)).shape == (3, 3)


def test_a_graph_that_mixes_samples_in_a_batch_is_run_one_face_at_a_time():
    axes0 = numpy_helper.from_array(np.array([0], np.int64), "axes0")
    axes23 = numpy_helper.from_array(np.array([2, 3], np.int64), "axes23")
    session = tiny_recognizer(
        [helper.make_node("ReduceMean", ["x", "axes0"], ["batch_mean"], keepdims=1),
         helper.make_node("Add", ["x", "batch_mean"], ["mixed"]),
         helper.make_node("ReduceMean", ["mixed", "axes23"], ["y"], keepdims=0)],
        [axes0, axes23],
    )
    recognizer = Recognizer(session, 0.0, 1.0, True, batch_size=8)
    assert recognizer.check_batching(probe_crops()) is False
    assert recognizer.batch_size == 1

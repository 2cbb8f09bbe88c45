"""Repairs applied to ONNX graphs at load time, so the shipped model files stay byte-identical to
their published, SHA-256-checked form.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper


def drop_unused_inputs(model: onnx.ModelProto) -> None:
    """Remove graph inputs that no node reads.

    The OpenCV Zoo SFace file declares 29 such inputs and onnxruntime refuses to load it.
    """
    consumed = {name for node in model.graph.node for name in node.input}
    keep = [value for value in model.graph.input if value.name in consumed]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def fold_constant_dequantize(model: onnx.ModelProto) -> None:
    """Replace every DequantizeLinear whose inputs are all initializers by its float32 result.

    onnxruntime's CUDA provider accepts the block-quantised weight nodes of the OpenCV Zoo int8bq
    files but cannot run them; the CPU is also faster on the folded graph. The math is exact:
    (q - zero_point) * scale, with the scale repeated block_size times along `axis`.
    """
    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    folded, kept_nodes = [], []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(name in constants for name in node.input if name):
            values = _dequantize(node, [constants[name] for name in node.input if name])
            folded.append(numpy_helper.from_array(values, node.output[0]))
        else:
            kept_nodes.append(node)
    if not folded:
        return
    del graph.node[:]
    graph.node.extend(kept_nodes)
    graph.initializer.extend(folded)
    used = {name for node in graph.node for name in node.input} | {out.name for out in graph.output}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:
        graph.initializer.remove(tensor)


def _dequantize(node: onnx.NodeProto, inputs: list[np.ndarray]) -> np.ndarray:
    attributes = {attribute.name: onnx.helper.get_attribute_value(attribute) for attribute in node.attribute}
    quantized, scale = inputs[0], inputs[1]
    zero_point = inputs[2] if len(inputs) > 2 else np.zeros_like(scale, dtype=quantized.dtype)
    axis = attributes.get("axis", 1)
    if scale.ndim > 0 and scale.size > 1:
        axis %= quantized.ndim
        block = attributes.get("block_size", 0) or 1
        shape = [1] * quantized.ndim
        shape[axis] = -1
        scale = np.repeat(scale, block, axis=axis if scale.ndim == quantized.ndim else 0)
        zero_point = np.repeat(zero_point, block, axis=axis if zero_point.ndim == quantized.ndim else 0)
        if scale.ndim != quantized.ndim:
            scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
        index = tuple(slice(0, quantized.shape[d]) if d == axis else slice(None) for d in range(quantized.ndim))
        scale, zero_point = scale[index], zero_point[index]
    values = (quantized.astype(np.float32) - zero_point.astype(np.float32)) * scale.astype(np.float32)
    return values.astype(np.float32)


def make_batch_dynamic(model: onnx.ModelProto) -> None:
    """Mark the first axis of every graph input and output as a free 'batch' dimension.

    Whether the graph really computes per-sample results at batch > 1 is not guaranteed (a Reshape
    may hard-code 1), so callers compare against batch-1 outputs before trusting it.
    """
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    del model.graph.value_info[:]


def make_size_free(model: onnx.ModelProto) -> None:
    """Mark the height and width of an image graph's input (N, C, H, W), and every output axis past
    the first, as free: a fully convolutional detector then runs on the photo's own shape, not on a
    square whose rows past a landscape photo (a quarter to nearly half of it) are zeros."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for axis, name in ((2, "height"), (3, "width")):
        dims[axis].Clear()
        dims[axis].dim_param = name
    for value in model.graph.output:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if axis:
                dim.Clear()
                dim.dim_param = f"{value.name}_{axis}"
    del model.graph.value_info[:]

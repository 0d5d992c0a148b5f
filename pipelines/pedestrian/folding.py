"""Folding the detector graph's batch norms into its convolution weights, once, at load.

The frozen SSDLite graph keeps every batch norm as an inference-mode FusedBatchNorm after
its convolution. TensorFlow's CPU rewrites fuse Conv2D + FusedBatchNorm + Relu6 into one
kernel, but not DepthwiseConv2dNative + FusedBatchNorm: those run as separate Mul, Add and
Relu6 passes over every feature map, about a fifth of the model's time on 2 cores. With
the norm folded (weights times gamma / sqrt(var + eps), then a BiasAdd of
beta - mean * gamma / sqrt(var + eps)), both kinds of convolution fuse with their bias and
Relu6. On the lab's tiles the detector's scores move by under 2e-6 and the boxes above
0.05 do not move; the model runs about 20% faster.

TensorFlow is imported inside the function, like everywhere in this package.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

CONVOLUTIONS = ("Conv2D", "DepthwiseConv2dNative")
BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV3")


def _source(name: str) -> str:
    return name.split(":")[0].lstrip("^")


def fold_batch_norms(graph_def):
    """A copy of `graph_def` with every foldable convolution + batch norm pair folded,
    and the number of pairs folded.

    A pair is folded only when nothing else can see the change: the norm is in inference
    mode and NHWC, the convolution's only consumer is the norm, and its weights are a
    constant (possibly behind Identity nodes) that no other node reads.
    """
    import tensorflow as tf

    nodes = {n.name: n for n in graph_def.node}
    consumers = Counter(_source(i) for n in graph_def.node for i in n.input)
    # A BiasAdd has one output; a norm whose batch statistics are read cannot become one.
    extra_outputs = {
        _source(i) for n in graph_def.node for i in n.input if ":" in i and not i.endswith(":0")
    }

    def constant(name: str):
        """The Const node behind `name`, or None; every node on the way read only once."""
        node = nodes.get(_source(name))
        while node is not None and node.op == "Identity" and consumers[node.name] == 1:
            node = nodes.get(_source(node.input[0]))
        if node is None or node.op != "Const" or consumers[node.name] != 1:
            return None
        return node

    new_weights, folded = {}, {}
    for bn in graph_def.node:
        if bn.op not in BATCH_NORMS or bn.attr["is_training"].b or bn.name in extra_outputs:
            continue
        if bn.attr["data_format"].s not in (b"", b"NHWC") or len(bn.input) < 5:
            continue
        conv = nodes.get(_source(bn.input[0]))
        if (
            conv is None
            or conv.op not in CONVOLUTIONS
            or consumers[conv.name] != 1
            or conv.attr["data_format"].s not in (b"", b"NHWC")
        ):
            continue
        weights = constant(conv.input[1])
        params = [constant(i) for i in bn.input[1:5]]
        if weights is None or any(p is None for p in params):
            continue
        gamma, beta, mean, variance = (
            tf.make_ndarray(p.attr["value"].tensor).astype(np.float64) for p in params
        )
        scale = gamma / np.sqrt(variance + bn.attr["epsilon"].f)
        w = tf.make_ndarray(weights.attr["value"].tensor).astype(np.float64)
        # Output channels are the last axis of Conv2D weights [h, w, in, out]; a depthwise
        # convolution's [h, w, in, multiplier] gives channel in * multiplier + m.
        w = w * (scale if conv.op == "Conv2D" else scale.reshape(w.shape[2], w.shape[3]))
        new_weights[weights.name] = w.astype(np.float32)
        folded[bn.name] = (beta - mean * scale).astype(np.float32)

    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    float32 = tf.float32.as_datatype_enum
    for node in graph_def.node:
        if node.name in folded:
            bias = out.node.add(name=f"{node.name}/folded_bias", op="Const")
            bias.attr["dtype"].type = float32
            bias.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(folded[node.name]))
            # Same name, so that the Relu6 (or whatever read the norm) reads the BiasAdd.
            add = out.node.add(
                name=node.name, op="BiasAdd", device=node.device, input=[node.input[0], bias.name]
            )
            add.attr["T"].type = float32
            add.attr["data_format"].s = b"NHWC"
        else:
            copy = out.node.add()
            copy.CopyFrom(node)
            if node.name in new_weights:
                copy.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(new_weights[node.name]))
    return out, len(folded)

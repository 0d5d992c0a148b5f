"""Batch-norm folding: the folded graph computes what the shipped one does, and pairs whose
change something else could see are left alone."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.pedestrian import detector as det
from pipelines.pedestrian.folding import fold_batch_norms
from tests.support import markers


def norm_params(rng, channels, prefix):
    # Variances well away from 1 and non-zero means, so that a wrong fold shows.
    return [
        tf.constant(v.astype(np.float32), name=f"{prefix}_{n}")
        for n, v in (
            ("gamma", rng.uniform(0.5, 2.0, channels)),
            ("beta", rng.normal(0, 1, channels)),
            ("mean", rng.normal(0, 1, channels)),
            ("variance", rng.uniform(0.1, 3.0, channels)),
        )
    ]


def small_graph(read_batch_mean=False, shared_conv=False):
    """input -> Conv2D -> norm -> Relu6 -> depthwise (multiplier 2) -> norm -> Relu6."""
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 9, 9, 3], name="x")
        w = tf.identity(tf.constant(rng.normal(0, 1, (3, 3, 3, 4)).astype(np.float32)))
        conv = tf.nn.conv2d(x, w, strides=1, padding="SAME")
        g, b, m, v = norm_params(rng, 4, "a")
        y, batch_mean, _ = tf.compat.v1.nn.fused_batch_norm(
            conv, g, b, mean=m, variance=v, epsilon=1e-3, is_training=False
        )
        y = tf.nn.relu6(y)
        dw = tf.identity(tf.constant(rng.normal(0, 1, (3, 3, 4, 2)).astype(np.float32)))
        depth = tf.nn.depthwise_conv2d(y, dw, strides=[1, 1, 1, 1], padding="SAME")
        g, b, m, v = norm_params(rng, 8, "b")
        z, _, _ = tf.compat.v1.nn.fused_batch_norm(
            depth, g, b, mean=m, variance=v, epsilon=1e-3, is_training=False
        )
        outputs = [tf.nn.relu6(z, name="out")]
        if read_batch_mean:
            outputs.append(tf.identity(batch_mean, name="stats"))
        if shared_conv:
            outputs.append(tf.identity(conv, name="raw"))
    return graph.as_graph_def(), [t.name for t in outputs]


def run(graph_def, fetches, feed):
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(fetches, {"x:0": feed})


@pytest.mark.parametrize(
    "kwargs,expected",
    [
        ({}, 2),
        ({"read_batch_mean": True}, 1),  # the first norm's statistics are read: kept
        ({"shared_conv": True}, 1),  # the first convolution has another reader: kept
    ],
)
def test_folding_keeps_the_outputs(kwargs, expected):
    graph_def, fetches = small_graph(**kwargs)
    folded, count = fold_batch_norms(graph_def)
    assert count == expected
    ops = [n.op for n in folded.node]
    assert ops.count("FusedBatchNorm") + ops.count("FusedBatchNormV3") == 2 - expected
    feed = np.random.default_rng(1).normal(0, 1, (2, 9, 9, 3)).astype(np.float32)
    before, after = run(graph_def, fetches, feed), run(folded, fetches, feed)
    for a, b in zip(before, after):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    assert np.ptp(before[0]) > 1  # the outputs are not all clipped to one value


@markers.needs_detector
def test_the_detector_graph_folds_every_norm_and_scores_the_same():
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(det.default_graph_path().read_bytes())
    norms = sum(n.op.startswith("FusedBatchNorm") for n in graph_def.node)
    folded, count = fold_batch_norms(graph_def)
    assert count == norms > 50
    # A busy synthetic tile: many candidate boxes, so the comparison covers more than a
    # blank image would.
    tiles = np.random.default_rng(2).integers(0, 255, (2, 300, 300, 3), dtype=np.uint8)
    # Every anchor's box and class scores before suppression, and the detections after.
    fetches = [
        "Postprocessor/raw_box_scores:0",
        "Postprocessor/raw_box_encodings:0",
        "detection_scores:0",
    ]
    before = run_image(graph_def, fetches, tiles)
    after = run_image(folded, fetches, tiles)
    for a, b in zip(before, after):
        np.testing.assert_allclose(b, a, atol=1e-4)
    assert before[0].shape == (2, 1917, 2)


def run_image(graph_def, fetches, tiles):
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run(fetches, {"image_tensor:0": tiles})

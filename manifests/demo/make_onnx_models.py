#!/usr/bin/env python3
"""Writes the ONNX models that need more than make_models.py's hand encoding, with the PyPI `onnx`
package, and the broken models the tests feed to `--check`, `show` and `verify --deep`.

    python3 -m pip install --target /tmp/onnx-py onnx blake3
    PYTHONPATH=/tmp/onnx-py python3 manifests/demo/make_onnx_models.py

Writes (deterministic bytes, so re-running changes nothing):

- manifests/demo/models/tiny-multi.onnx: two inputs and two outputs, float32 and int64, a
  symbolic batch dimension, opsets from two domains, custom metadata. Its catalogue entry is
  printed; it is in demo.toml.
- manifests/demo/models/tiny-ext/tiny-ext.onnx + tiny-ext.onnx.data: a model whose weight is ONNX
  external data (found by ONNX Runtime by its file name, next to the model): y = x @ W + 1 with W
  a float32[4,4] stored in the .data file. A model of two files; its entry is in demo.toml.
- tests/fixtures/onnx/*.onnx and tests/fixtures/onnx/broken.toml: a catalogue of models that
  claim `format = "onnx"` but do not load: truncated, random bytes, empty (0 bytes), and a valid
  protobuf whose graph has a node reading a tensor nothing defines. The catalogue pins their real
  blake3 and size, so a pull gets exactly these bytes and only `--check` can refuse them.
"""
import os
import random

import blake3
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "onnx")


def tiny_multi():
    """scaled = x * 2 (float32 [batch, 4]); ids_out = ids + 1 (int64 [batch])."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch"])
    scaled = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["batch", 4])
    ids_out = helper.make_tensor_value_info("ids_out", TensorProto.INT64, ["batch"])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    one = helper.make_tensor("one", TensorProto.INT64, [], [1])
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["scaled"], name="scale"),
        helper.make_node("Add", ["ids", "one"], ["ids_out"], name="next_id"),
    ]
    graph = helper.make_graph(nodes, "tiny-multi", [x, ids], [scaled, ids_out], [two, one])
    model = helper.make_model(
        graph,
        producer_name="beaker-make-onnx-models",
        producer_version="1.0",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    model.ir_version = 8
    helper.set_model_props(model, {"author": "beaker", "task": "demo"})
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def dangling():
    """A well-formed protobuf whose graph is invalid: the node reads `ghost`, which no input,
    initializer or node defines."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])
    node = helper.make_node("Add", ["x", "ghost"], ["y"])
    graph = helper.make_graph([node], "dangling", [x], [y])
    model = helper.make_model(graph, producer_name="beaker-make-onnx-models",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString(deterministic=True)


def tiny_ext():
    """y = MatMul(x, W) + 1 with W (float32[4,4], 0.5 on the diagonal) in external data. Returns the
    model's bytes and the data file's bytes."""
    import tempfile

    from onnx import numpy_helper
    import numpy as np

    w = numpy_helper.from_array(np.diag(np.full(4, 0.5, dtype=np.float32)), name="W")
    one = numpy_helper.from_array(np.ones(4, dtype=np.float32), name="one")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "one"], ["y"])]
    graph = helper.make_graph(nodes, "tiny-ext", [x], [y], initializer=[w, one])
    model = helper.make_model(graph, producer_name="beaker-make-onnx-models",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "tiny-ext.onnx")
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="tiny-ext.onnx.data", size_threshold=0)
        with open(path, "rb") as f:
            graph_bytes = f.read()
        with open(os.path.join(d, "tiny-ext.onnx.data"), "rb") as f:
            data_bytes = f.read()
    return graph_bytes, data_bytes


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return blake3.blake3(data).hexdigest(), len(data)


if __name__ == "__main__":
    good = tiny_multi()
    b3, size = write(os.path.join(HERE, "models", "tiny-multi.onnx"), good)
    print("[models.tiny-multi]")
    print(f'blake3 = "{b3}"')
    print(f"size = {size}")
    print('urls = ["models/tiny-multi.onnx"]')
    print()

    graph_bytes, data_bytes = tiny_ext()
    print("[models.tiny-ext]")
    for name, data in (("tiny-ext.onnx", graph_bytes), ("tiny-ext.onnx.data", data_bytes)):
        b3, size = write(os.path.join(HERE, "models", "tiny-ext", name), data)
        print("[[models.tiny-ext.files]]")
        print(f'path = "{name}"')
        print(f'blake3 = "{b3}"')
        print(f"size = {size}")
        print(f'urls = ["models/tiny-ext/{name}"]')
    print()

    broken = {
        "truncated": ("tiny-multi cut in half: protobuf parsing fails", good[: len(good) // 2]),
        "random-bytes": ("512 random bytes claiming to be ONNX", random.Random(9).randbytes(512)),
        "empty": ("a 0-byte file", b""),
        "dangling": ("valid protobuf, invalid graph: a node reads an undefined tensor", dangling()),
    }
    lines = [
        "# Models that claim to be ONNX but do not load, for the --check / verify --deep / show tests.",
        "# Written by manifests/demo/make_onnx_models.py; do not edit by hand.",
        "version = 1",
    ]
    for name, (what, data) in broken.items():
        b3, size = write(os.path.join(FIXTURES, name + ".onnx"), data)
        lines += [
            "",
            f"[models.broken-{name}]",
            f'blake3 = "{b3}"',
            f"size = {size}",
            f'urls = ["{name}.onnx"]',
            'format = "onnx"',
            f'description = "{what}"',
        ]
    with open(os.path.join(FIXTURES, "broken.toml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(broken)} broken models and broken.toml to {FIXTURES}")

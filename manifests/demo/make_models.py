#!/usr/bin/env python3
"""Writes the demo catalogue's tiny ONNX models and prints their catalogue entries.

Standard library only (no `onnx` package needed): each model is a hand-encoded ModelProto with
one node, IR version 8, opset 13, float tensors of shape [N] (N symbolic). Run from anywhere:

    python3 manifests/demo/make_models.py

then paste the printed blake3/size lines into demo.toml (blake3 needs `b3sum`, or `beaker store
add` prints it). The bytes are deterministic, so re-running changes nothing.
"""
import hashlib
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num, value):
    return varint(num << 3 | 0) + varint(value)


def field_bytes(num, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(num << 3 | 2) + varint(len(payload)) + payload


FLOAT = 1


def value_info(name):
    dim = field_bytes(2, "N")  # Dimension.dim_param
    shape = field_bytes(1, dim)  # TensorShapeProto.dim
    tensor = field_varint(1, FLOAT) + field_bytes(2, shape)  # elem_type, shape
    type_proto = field_bytes(1, tensor)  # TypeProto.tensor_type
    return field_bytes(1, name) + field_bytes(2, type_proto)


def model(op, inputs, output, graph_name):
    node = b"".join(field_bytes(1, i) for i in inputs)
    node += field_bytes(2, output) + field_bytes(3, op.lower()) + field_bytes(4, op)
    graph = field_bytes(1, node) + field_bytes(2, graph_name)
    graph += b"".join(field_bytes(11, value_info(i)) for i in inputs)
    graph += field_bytes(12, value_info(output))
    opset = field_bytes(1, "") + field_varint(2, 13)
    return (
        field_varint(1, 8)  # ir_version
        + field_bytes(2, "beaker-demo")  # producer_name
        + field_bytes(3, "1")  # producer_version
        + field_bytes(7, graph)
        + field_bytes(8, opset)
    )


MODELS = {
    "tiny-add": ("Add", ["a", "b"], "sum", "y = a + b"),
    "tiny-mul": ("Mul", ["a", "b"], "product", "y = a * b"),
    "tiny-relu": ("Relu", ["x"], "y", "y = max(x, 0)"),
}

if __name__ == "__main__":
    os.makedirs(os.path.join(HERE, "models"), exist_ok=True)
    for name, (op, inputs, output, what) in MODELS.items():
        data = model(op, inputs, output, name)
        path = os.path.join(HERE, "models", name + ".onnx")
        with open(path, "wb") as f:
            f.write(data)
        try:
            b3 = subprocess.run(["b3sum", "--no-names", path], capture_output=True, text=True).stdout.strip()
        except FileNotFoundError:
            b3 = "(install b3sum or use `beaker store add`)"
        print(f"[models.{name}]  # {what}")
        print(f'blake3 = "{b3}"')
        print(f"size = {len(data)}")
        print(f'md5 = "{hashlib.md5(data).hexdigest()}"')
        print()

"""What an extractor's ONNX graph may hold before ONNX Runtime is given it: `check_graph`.

`--model` (and FACESEARCH_MODEL) may point at any file, and an ONNX file is more than numbers: a tensor may
name an external data file by path, which the runtime then reads (a crafted model could make the tool read
files outside its folder), and a node may name any operator of any domain, including control flow that runs
subgraphs. An extractor needs none of that. So the engine reads the file's bytes once, checks them here, and
gives ONNX Runtime those same bytes (never the path, so nothing is resolved beside the file):

- every tensor (initializers, sparse initializers, constants in attributes) holds its data inline;
- every node is an operator of `ALLOWED_OPS`: the feed-forward image operators this project's exporter and
  quantizer write (`models/training/export.py`, ONNX Runtime's static quantizer), in the standard domain, plus the
  8-bit PReLU pieces of ONNX Runtime's `com.microsoft` domain;
- no node has a subgraph attribute and the model defines no functions of its own.

The protobuf is walked here with a few lines of wire-format reading rather than with the `onnx` package:
importing `onnx` alone took 0.64 s of every start on this project's machine, and this walk reads only the
fields named above, skipping tensor payloads by their length (about 2 ms for the shipped 6 MB graph).
Field numbers are those of `onnx.proto` (ONNX IR version 3 and later); tests/test_graph_check.py compares
this reading with the `onnx` package's on the shipped graphs.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from models.errors import UnsafeGraph

# The operators an extractor graph may use. Standard domain ("" or "ai.onnx"): what `models/graphs.py` and `models/training/export.py` write
# for Keras networks and MTCNN, what ONNX Runtime's static quantizer adds (QDQ and QOperator formats), and a
# few shape and arithmetic operators an exported image network commonly holds.
ALLOWED_OPS: frozenset[tuple[str, str]] = frozenset(
    [("", op) for op in (
        "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv", "ConvInteger",
        "DequantizeLinear", "Div", "DynamicQuantizeLinear", "Elu", "Flatten", "Gemm", "GlobalAveragePool",
        "GlobalMaxPool", "HardSigmoid", "Identity", "LeakyRelu", "LpNormalization", "MatMul", "MatMulInteger",
        "Max", "MaxPool", "Min", "Mul", "Pad", "PRelu", "QLinearConv", "QLinearMatMul", "QuantizeLinear",
        "ReduceL2", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Selu", "Shape", "Sigmoid", "Slice", "Softmax",
        "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
    )]
    + [("com.microsoft", op) for op in (
        "QLinearAdd", "QLinearAveragePool", "QLinearConcat", "QLinearGlobalAveragePool", "QLinearLeakyRelu",
        "QLinearMul", "QLinearSigmoid",
    )]
)

# onnx.proto field numbers
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE, _NODE_OP_TYPE, _NODE_DOMAIN = 5, 4, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 5, 6, 10, 11, 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class _Damaged(Exception):
    pass


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise _Damaged("a number runs past its message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each field of the message in buf[start:end]; for varints the
    value is `start` and `end` is unused."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Damaged("a field numbered 0")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 1:
            pos += 8
            if pos > end:
                raise _Damaged("a 64-bit field runs past its message")
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Damaged("a field runs past its message")
            yield number, wire, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
            if pos > end:
                raise _Damaged("a 32-bit field runs past its message")
        else:
            raise _Damaged(f"wire type {wire}")


def _text(buf: bytes, start: int, end: int) -> str:
    return buf[start:end].decode("utf-8", errors="replace")


class _Walk:
    def __init__(self, buf: bytes):
        self.buf = buf
        self.ops: Counter[tuple[str, str]] = Counter()
        self.problems: list[str] = []

    def model(self) -> None:
        graphs = 0
        for number, wire, start, end in _fields(self.buf, 0, len(self.buf)):
            if number == _MODEL_GRAPH and wire == 2:
                graphs += 1
                self.graph(start, end)
            elif number == _MODEL_FUNCTIONS and wire == 2:
                self.problems.append("it defines functions of its own")
        if graphs == 0:
            raise _Damaged("no graph")

    def graph(self, start: int, end: int) -> None:
        for number, wire, s, e in _fields(self.buf, start, end):
            if wire != 2:
                continue
            if number == _GRAPH_NODE:
                self.node(s, e)
            elif number == _GRAPH_INITIALIZER:
                self.tensor(s, e)
            elif number == _GRAPH_SPARSE_INITIALIZER:
                self.sparse(s, e)

    def node(self, start: int, end: int) -> None:
        op, domain = "", ""
        for number, wire, s, e in _fields(self.buf, start, end):
            if wire != 2:
                continue
            if number == _NODE_OP_TYPE:
                op = _text(self.buf, s, e)
            elif number == _NODE_DOMAIN:
                domain = _text(self.buf, s, e)
            elif number == _NODE_ATTRIBUTE:
                self.attribute(s, e, op)
        domain = "" if domain == "ai.onnx" else domain
        self.ops[(domain, op)] += 1
        if (domain, op) not in ALLOWED_OPS:
            self.problems.append(f"it uses the operator {f'{domain}.' if domain else ''}{op}, "
                                 "which no face extractor needs")

    def attribute(self, start: int, end: int, op: str) -> None:
        for number, wire, s, e in _fields(self.buf, start, end):
            if wire != 2:
                continue
            if number in (_ATTR_T, _ATTR_TENSORS):
                self.tensor(s, e)
            elif number in (_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS):
                self.sparse(s, e)
            elif number in (_ATTR_G, _ATTR_GRAPHS):
                self.problems.append(f"its {op or 'unnamed'} node runs a subgraph")
                self.graph(s, e)

    def sparse(self, start: int, end: int) -> None:
        for number, wire, s, e in _fields(self.buf, start, end):
            if wire == 2 and number in (_SPARSE_VALUES, _SPARSE_INDICES):
                self.tensor(s, e)

    def tensor(self, start: int, end: int) -> None:
        name, external = "", False
        for number, wire, s, e in _fields(self.buf, start, end):
            if number == _TENSOR_NAME and wire == 2:
                name = _text(self.buf, s, e)
            elif number == _TENSOR_EXTERNAL_DATA and wire == 2:
                external = True
            elif number == _TENSOR_DATA_LOCATION and wire == 0 and s == _EXTERNAL:
                external = True
        if external:
            self.problems.append(f"its tensor {name or '(unnamed)'} keeps its data in another file")


def _walked(data: bytes, source: str) -> _Walk:
    walk = _Walk(data)
    try:
        walk.model()
    except _Damaged as e:
        raise UnsafeGraph(f"{source}: not an ONNX model ({e})") from None
    return walk


def graph_ops(data: bytes) -> Counter[tuple[str, str]]:
    """(domain, operator) -> nodes, over the graph and its subgraphs; UnsafeGraph when `data` is not an ONNX
    model."""
    return _walked(data, "the graph").ops


def check_graph(data: bytes, source: str = "the graph") -> None:
    """Raise UnsafeGraph, naming `source` and each problem once, unless `data` is an ONNX model that holds
    all its data inline and only `ALLOWED_OPS`, without subgraphs or functions of its own."""
    problems = list(dict.fromkeys(_walked(data, source).problems))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UnsafeGraph(f"{source}: refused: {shown}")

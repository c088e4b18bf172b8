"""ONNX Runtime sessions for the networks: how many threads each may use, and quiet logs.

One setting for the whole process: a worker process of `facesearch index --workers N` runs its networks on
one thread each (`set_threads(1)`), so that N workers share the cores instead of each taking all of them.
"""
from __future__ import annotations

from pathlib import Path

_threads: int = 0  # 0: ONNX Runtime's default, one per physical core


def set_threads(n: int) -> None:
    """Threads each network of sessions made from now on may use (0 for one per physical core)."""
    global _threads
    _threads = max(0, int(n))


def threads() -> int:
    """Threads a network may use: the `set_threads` setting, else the machine's cores."""
    import os

    return _threads or (os.cpu_count() or 1)


def session(model: bytes | str | Path):
    """An inference session on the CPU for an ONNX model given as bytes or as a file path."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Each session's threads would otherwise spin after a run, waiting for the next: with four networks
    # called in turn, and photos decoded in a thread beside them, the spinning took the cores they needed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if _threads:
        options.intra_op_num_threads = _threads
        options.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])

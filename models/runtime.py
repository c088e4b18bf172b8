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


def session(model: bytes | str | Path, threads: int = 0):
    """An inference session on the CPU for an ONNX model given as bytes or as a file path, on `threads` threads
    (0: the `set_threads` setting)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Each session's threads would otherwise spin after a run, waiting for the next: with four networks
    # called in turn, and photos decoded in a thread beside them, the spinning took the cores they needed.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    threads = threads or _threads
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        # the extractor's graph compares 8-bit numbers (`models.training.export.prelu_in_8_bits`), which ONNX Runtime runs from 1.24
        if "Could not find an implementation" in str(e) and _older(ort.__version__, MIN_ONNXRUNTIME):
            where = f"{model}: " if isinstance(model, (str, Path)) else ""
            raise RuntimeError(f"{where}this graph needs onnxruntime {MIN_ONNXRUNTIME} or newer, and "
                               f"{ort.__version__} is installed: pip install -U 'onnxruntime>={MIN_ONNXRUNTIME}'"
                               ) from e
        raise


# The oldest ONNX Runtime that runs every shipped graph (setup.cfg asks for it): 1.23 has no Max for 8-bit numbers.
MIN_ONNXRUNTIME = "1.24"


def _older(version: str, than: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(p) for p in v.split("+")[0].split(".")[:2] if p.isdigit())

    return parts(version) < parts(than)


def batch_session(model: bytes | str | Path):
    """A session for a network whose one input and every output run along the batch axis (the extractor):
    on a machine of several cores, a `SplitBatch` of single-thread sessions; else a plain one."""
    n = threads()
    return SplitBatch(model, n) if n > 1 else session(model)


class SplitBatch:
    """One network as `n` single-thread sessions: each call's batch is cut into `n` parts, run side by side,
    and the outputs joined again in order; the same numbers as one session, since each row is computed alone.

    ONNX Runtime spread the -q8w7s extractor graph over two threads less well than two calls over one each: on
    this project's 2-core AVX2-only machine two single-thread sessions on half a batch each embedded 212 chips
    and their mirror images per second against 206 for one session on two threads (3 %; 6 % for the earlier
    -q8w7 graph; medians of 10 rounds, `bench/embed_throughput.py`). For the -q8w7p graph, with PReLU on
    8-bit integers, the two are within this machine's noise (three runs of 10 rounds: 276 against 281, 274
    against 261, 243 against 264), so the split stays."""

    def __init__(self, model: bytes | str | Path, n: int):
        from concurrent.futures import ThreadPoolExecutor

        self._sessions = [session(model, threads=1) for _ in range(n)]
        self._pool = ThreadPoolExecutor(n - 1, thread_name_prefix="facesearch-net")

    def get_inputs(self):
        return self._sessions[0].get_inputs()

    def get_outputs(self):
        return self._sessions[0].get_outputs()

    def run(self, outputs, feeds: dict) -> list:
        import numpy as np

        (name, x), = feeds.items()
        parts = np.array_split(x, min(len(self._sessions), max(1, len(x))))
        later = [self._pool.submit(s.run, outputs, {name: part})
                 for s, part in zip(self._sessions[1:], parts[1:])]
        results = [self._sessions[0].run(outputs, {name: parts[0]})] + [f.result() for f in later]
        return [np.concatenate([r[i] for r in results]) for i in range(len(results[0]))]

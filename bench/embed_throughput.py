"""Aligned faces embedded per second by extractor graphs, one ONNX Runtime session on all cores against
`models.runtime.SplitBatch` (one single-thread session per core, each on a part of the batch).

    python bench/embed_throughput.py                                   # the shipped graph
    git show 22c02e2:models/weights/extractor.onnx > /tmp/q8w7.onnx     # an earlier graph of the same network
    python bench/embed_throughput.py models/weights/extractor.onnx /tmp/q8w7.onnx --repeats 10
    python bench/embed_throughput.py models/weights/extractor.onnx /tmp/q8w7.onnx --profile

Chips: the first `--chips` of the LFW View 2 chip cache (built by `scripts/build_chips.py`), embedded with
their mirror images as the engine does (flip averaging), in calls of 256 chips and 256 mirror images.
Every graph and mode is timed once per round, in turn, for `--repeats` rounds; the median and the range over
rounds are printed. On a 2-core virtual machine single runs of the same graph spread over +-20 %, so compare
medians of one run, never numbers from two runs.

`--profile` instead prints, for each graph, the share of ONNX Runtime's kernel time that each kind of
operation took (its per-node profile, one session on all cores, 4 calls of 128 chips after a first one):
where the time goes between the 8-bit convolutions.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from models import runtime  # noqa: E402
from models.training.chips import load_cache  # noqa: E402
from models.extractor import DEFAULT_MODEL, Extractor, preprocess  # noqa: E402
from models.training.train import cache_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("graphs", nargs="*", type=Path, default=[DEFAULT_MODEL.with_suffix(".onnx")],
                    help="extractor graphs (.onnx) to compare (default: the shipped one)")
    ap.add_argument("--chips", type=int, default=512, help="chips per round (default 512)")
    ap.add_argument("--repeats", type=int, default=10, help="rounds (default 10)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="the LFW View 2 chip cache (default: the one of the shipped extractor's chip geometry, "
                         "~/.cache/facesearch/chips/lfw-view2-dlib150-2)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--profile", action="store_true", help="where the time goes, by kind of operation")
    args = ap.parse_args()
    for graph in args.graphs:
        if not graph.exists():
            sys.exit(f"{graph}: no such graph")
    cache = args.cache or (Path.home() / ".cache" / "facesearch" / "chips"
                           / cache_name("lfw-view2", Extractor(DEFAULT_MODEL).info.chip))
    chips = load_cache(cache).chips[:args.chips]
    if args.profile:
        for graph in args.graphs:
            profile(graph, preprocess(chips[:128]))
        return
    x = preprocess(chips)
    both = np.ascontiguousarray(np.concatenate([x, x[:, :, ::-1]]))  # as the engine calls it: chips, mirrors
    cores = runtime.threads()
    runs = {}
    for graph in args.graphs:
        runs[(str(graph), f"one session, {cores} threads")] = runtime.session(graph)
        runs[(str(graph), f"SplitBatch, {cores} sessions of 1 thread")] = runtime.SplitBatch(graph, cores)
    name = next(iter(runs.values())).get_inputs()[0].name
    for net in runs.values():
        net.run(None, {name: both[:64]})  # first call: allocations
    rates: dict = {key: [] for key in runs}
    for _ in range(args.repeats):
        for key, net in runs.items():
            start = time.perf_counter()
            for i in range(0, len(x), 256):
                net.run(None, {name: np.concatenate([both[i:i + 256], both[len(x) + i:len(x) + i + 256]])})
            rates[key].append(len(x) / (time.perf_counter() - start))
    print(f"| graph | how | aligned faces/s, median of {args.repeats} (flip on) | lowest | highest |")
    print("| --- | --- | --- | --- | --- |")
    for (graph, how), r in rates.items():
        print(f"| `{graph}` | {how} | {statistics.median(r):.0f} | {min(r):.0f} | {max(r):.0f} |")
    if args.json:
        args.json.write_text(json.dumps([{"graph": g, "how": h, "faces_per_s": r} for (g, h), r in rates.items()],
                                        indent=2))


def profile(graph: Path, x: np.ndarray) -> None:
    """Print the share of kernel time each kind of operation of `graph` took on `x`."""
    import tempfile
    from collections import Counter

    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "profile")
        net = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        name = net.get_inputs()[0].name
        net.run(None, {name: x})
        times: Counter = Counter()
        for _ in range(4):
            net.run(None, {name: x})
        events = json.loads(Path(net.end_profiling()).read_text())
    first_run = True
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            first_run = False  # the first model_run event closes the first call, left out
            continue
        if not first_run and event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            times[event["args"]["op_name"]] += event["dur"]
    total = sum(times.values())
    print(f"\n`{graph}`: share of kernel time by operation")
    print("| operation | share |\n| --- | --- |")
    for op, us in times.most_common():
        print(f"| {op} | {100 * us / total:.1f} % |")


if __name__ == "__main__":
    main()

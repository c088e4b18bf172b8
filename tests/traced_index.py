"""`python tests/traced_index.py FACESEARCH-ARGS...`: the `facesearch` command, with every step of `index`
appended to a file, for tests/test_kill_safety.py (the product has no such hook).

The file is the first argument; each step (`indexer.pipeline.index_paths`'s `on_step`: scanned, detected,
written, saving, the index file's temp-partial / temp-complete / replaced, saved) is written as `PID STEP` and
flushed at once, so that the test watching the file sees it before the next step starts. With `--hold TEXT`
before the command's arguments, the run pauses for HOLD_S after a step starting with TEXT, so that a kill aimed
at a step that takes microseconds (between writing the index file and renaming it) lands right there.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HOLD_S = 30.0


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    args = sys.argv[1:]
    trace_file, args = Path(args[0]), args[1:]
    hold = None
    if args and args[0] == "--hold":
        hold, args = args[1], args[2:]

    def trace(step: str) -> None:
        with open(trace_file, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()} {step}\n")
        if hold and step.startswith(hold):
            time.sleep(HOLD_S)

    # put the tracing index_paths where the API looks it up, before the API is imported
    import indexer
    import indexer.pipeline

    real = indexer.pipeline.index_paths

    def traced(*a, **kw):
        kw["on_step"] = trace
        return real(*a, **kw)

    indexer.index_paths = indexer.pipeline.index_paths = traced
    from facesearch.cli import cli

    cli.main(args=args, prog_name="facesearch")


if __name__ == "__main__":
    main()

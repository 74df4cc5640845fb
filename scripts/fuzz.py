"""The long fuzzing run of issue 19: many mutants of every format cnnlab reads.

    PYTHONPATH=src python scripts/fuzz.py --mutants 1000 --seed 0

Each mutant must end in a clean one-line error naming the file, or in a load that an
independent reader agrees with (tests/fuzz/formats.py); the table counts the outcomes, and any
other outcome is listed with the mutant's number (rerun it alone with the same seed; the failing
files are kept in --folder). Exit status 1 when any mutant failed. The short run with fixed
seeds is tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.fuzz

from tests.fuzz.formats import FORMATS, run  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mutants", type=int, default=1000, help="mutants per format")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--formats", nargs="*", default=sorted(FORMATS), choices=sorted(FORMATS))
    p.add_argument("--folder", default=None, help="where mutants are written (default: temp)")
    args = p.parse_args(argv)
    folder = Path(args.folder or tempfile.mkdtemp(prefix="cnnlab-fuzz-"))
    print("| format | mutants | clean error | correct load | failed | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    failed = 0
    for name in args.formats:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            counts, failures = run(name, args.seed, args.mutants, folder / name)
        print(f"| {name} | {args.mutants} | {counts['error']} | {counts['loaded']} | "
              f"{counts['bad']} | {time.perf_counter() - start:.0f} |", flush=True)
        for i, what in failures[:20]:
            print(f"    mutant {i}: {what}", file=sys.stderr)
        failed += len(failures)
    print(f"mutants in {folder}" if failed else "no failures")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

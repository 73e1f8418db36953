"""Parsing speed: `loads` of a spec of a thousand dense layers (parse, expand, analyze).

    python bench/parse.py [--layers 1000] [--rounds 5]

The first call (grammar construction, imports) is reported apart from the median of the rest;
the target is under 1 s for a thousand layers.
"""
from __future__ import annotations

import argparse
import statistics
import time

from nnspec.loader import loads


def spec_text(layers: int) -> str:
    body = "\n".join(f"  dense({i % 7 + 4}, activation=relu)" for i in range(layers))
    return f"model big {{\n  input x: float32[16]\n{body}\n}}\n"


def seconds(text: str) -> float:
    start = time.perf_counter()
    loads(text, "big.nn")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    text = spec_text(args.layers)
    first = seconds(text)
    median = statistics.median(seconds(text) for _ in range(args.rounds))
    print(f"{args.layers} layers: first {first:.3f} s, then median {median:.3f} s over {args.rounds} rounds")


if __name__ == "__main__":
    main()

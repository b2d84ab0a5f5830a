"""Inclusive share of samples per function in a py-spy raw (collapsed) profile.

    .venv/bin/python bench/pyspy_summary.py var/bench/ingest-gateway-pyspy.txt [--top 40] [--match custsync]
"""

import argparse
import collections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="only functions whose file path contains this")
    args = parser.parse_args()
    total, inclusive = 0, collections.Counter()
    with open(args.path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            samples = int(count)
            total += samples
            for frame in set(stack.split(";")):
                if args.match in frame:
                    name, _, where = frame.partition(" (")
                    inclusive[f"{name} ({where.split(':')[0].rsplit('/', 2)[-1]})" if where else name] += samples
    print(f"{total} samples")
    for name, samples in inclusive.most_common(args.top):
        print(f"{100 * samples / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()

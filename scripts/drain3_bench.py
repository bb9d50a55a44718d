#!/usr/bin/env python3
"""Helpers of scripts/bench-logs.sh.

make-input: builds the throughput input by concatenating the Content column
of the eight Loghub samples again and again, renumbering every digit run in
each repetition so that the copies are not byte-identical (the variables
change, the templates do not).

run: feeds the same input to the Python `drain3` package (default
configuration, as shipped) and prints its rate and peak memory, so both
parsers are measured on the same lines on the same machine.
"""
import argparse
import csv
import json
import re
import resource
import sys
import time

SYSTEMS = ["Apache", "BGL", "HDFS", "HealthApp", "Mac", "OpenStack", "Spark", "Zookeeper"]
# Standalone numbers only (not the digits of identifiers such as `jk2_init`),
# so the copies change values without inventing new message types.
DIGITS = re.compile(r"(?<![A-Za-z_])\d+(?![A-Za-z_])")


def make_input(args):
    contents = []
    for s in SYSTEMS:
        path = f"{args.loghub}/{s}/{s}_2k.log_structured_corrected.csv"
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                # One message per line: flatten any embedded newline.
                contents.append(row["Content"].replace("\n", " ").replace("\r", " "))
    written = 0
    rep = 0
    with open(args.out, "w", encoding="utf-8") as out:
        while written < args.lines:
            def renumber(m, rep=rep):
                digits = m.group(0)
                value = (int(digits) * 7919 + rep * 104729) % (10 ** len(digits))
                return str(value).zfill(len(digits))
            for c in contents:
                if written >= args.lines:
                    break
                out.write(DIGITS.sub(renumber, c) if rep else c)
                out.write("\n")
                written += 1
            rep += 1
    print(f"wrote {written} lines to {args.out}", file=sys.stderr)


def run(args):
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()  # the package's defaults
    config.profiling_enabled = False
    miner = TemplateMiner(config=config)
    start = time.perf_counter()
    cpu_start = time.process_time()
    lines = 0
    with open(args.input, encoding="utf-8") as f:
        for line in f:
            miner.add_log_message(line.rstrip("\n"))
            lines += 1
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "lines": lines,
        "seconds": round(seconds, 3),
        "lines_per_second": round(lines / seconds),
        "cpu_seconds": round(cpu, 3),
        "templates": len(miner.drain.clusters),
        "peak_rss_kib": peak_kib,
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-input")
    m.add_argument("--loghub", required=True)
    m.add_argument("--lines", type=int, default=1_000_000)
    m.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--input", required=True)
    args = p.parse_args()
    {"make-input": make_input, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()

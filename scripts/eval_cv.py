#!/usr/bin/env python3
"""Cross-validated choice of the short-series weights (docs/evaluation.md).

For each candidate setting of the `AnomalyConfig` defaults below, the
script patches the defaults, builds `rootcause`, runs `rootcause eval` on
the Nezha development set and on the shared scenarios, and restores the
source. It then reports, with folds by system and day (OnlineBoutique
08-22, 08-23, TrainTicket 01-29, 01-30):

- in-sample: the best candidate on all 63 bundles, and its figures;
- out-of-sample (leave one fold out): for each fold, the candidate best on
  the other three folds (AS@1, then top-1, then AS@3; ties to the current
  default), scored on the held-out fold; summed over the folds.

Usage (from the workspace root, shared data next to it):

    python3 scripts/eval_cv.py [../shared]

Needs CARGO_TARGET_DIR or the default target dir; builds incrementally.
"""

import itertools
import json
import os
import re
import subprocess
import sys

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"
SRC = "crates/analysis/src/metrics/anomaly.rs"
# Candidate values; the first of each is the committed default.
GRID = {
    "step_points_per_doubling": ["25.0", "10.0", "5.0"],
    "client_weight": ["0.3", "1.0"],
    "repeat_weight": ["0.5", "1.0"],
}


def fold(bundle):
    parts = bundle.split("-")  # nezha-ob-0822-...
    return f"{parts[1]}-{parts[2]}"


def run_eval(binary, directory):
    out = subprocess.run(
        [binary, "eval", directory, "--format", "json"],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def main():
    target = os.environ.get("CARGO_TARGET_DIR", "target")
    binary = os.path.join(target, "debug", "rootcause")
    original = open(SRC, encoding="utf-8").read()
    results = {}
    try:
        for values in itertools.product(*GRID.values()):
            setting = dict(zip(GRID.keys(), values))
            text = original
            for key, value in setting.items():
                text, n = re.subn(rf"(\n\s+{key}: )[0-9.]+,", rf"\g<1>{value},", text, count=1)
                assert n == 1, key
            with open(SRC, "w", encoding="utf-8") as f:
                f.write(text)
            subprocess.run(
                ["cargo", "build", "-q", "-p", "rootcause-cli"], check=True
            )
            nezha = run_eval(binary, os.path.join(SHARED, "data", "nezha-dev"))
            scen = run_eval(binary, os.path.join(SHARED, "scenarios"))
            name = ",".join(f"{k}={v}" for k, v in setting.items())
            results[name] = {"bundles": nezha["bundles"], "scenarios_top1": scen["totals"]["top1"]}
            t = nezha["totals"]
            print(f"{name}: AS@1 {t['as1']} AS@3 {t['as3']} top-1 {t['top1']} "
                  f"scenarios {scen['totals']['top1']}/{scen['totals']['bundles']}", flush=True)
    finally:
        with open(SRC, "w", encoding="utf-8") as f:
            f.write(original)

    names = list(results)  # first = committed default

    def score(name, folds):
        bs = [b for b in results[name]["bundles"] if fold(b["bundle"]) in folds]
        return (
            sum(b["service_rank"] == 1 for b in bs),
            sum(b["rank"] == 1 for b in bs),
            sum(b["service_rank"] is not None for b in bs),
            sum(b["rank"] is not None for b in bs),
            len(bs),
        )

    folds = sorted({fold(b["bundle"]) for b in results[names[0]]["bundles"]})
    every = set(folds)

    def best(on):
        # Scenarios must stay 6/6: a candidate that loses one is out.
        ok = [n for n in names if results[n]["scenarios_top1"] >= 6] or names
        return max(ok, key=lambda n: (score(n, on)[:3], n == names[0]))

    chosen = best(every)
    a1, t1, a3, t3, n = score(chosen, every)
    print(f"\nin-sample best: {chosen}\n  AS@1 {a1}/{n} AS@3 {a3}/{n} top-1 {t1}/{n} top-3 {t3}/{n}"
          f" scenarios top-1 {results[chosen]['scenarios_top1']}")
    tot = [0, 0, 0, 0, 0]
    for held in folds:
        pick = best(every - {held})
        s = score(pick, {held})
        tot = [x + y for x, y in zip(tot, s)]
        print(f"  fold {held}: chose {pick}: AS@1 {s[0]}/{s[4]} AS@3 {s[2]}/{s[4]} top-1 {s[1]}/{s[4]}")
    a1, t1, a3, t3, n = tot
    print(f"out-of-sample (leave one fold out): AS@1 {a1}/{n} AS@3 {a3}/{n} top-1 {t1}/{n} top-3 {t3}/{n}")
    d = score(names[0], every)
    print(f"committed default: AS@1 {d[0]}/{d[4]} AS@3 {d[2]}/{d[4]} top-1 {d[1]}/{d[4]}")


if __name__ == "__main__":
    main()

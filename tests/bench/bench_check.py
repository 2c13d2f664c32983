"""What tests/bench's checks share: running one strata-bench scenario with
--json and checking the figures it reports against exact values and the
order of a summary (min <= median <= max). Nothing about time."""
import json
import os
import subprocess
import sys


class Check:
    def __init__(self, name):
        self.name = name

    def fail(self, msg):
        print(f"{self.name}: {msg}", file=sys.stderr)
        sys.exit(1)

    def run(self, bench, workdir, scenario, args):
        """The scenario's JSON object from `bench ARGS --scenario SCENARIO
        --json --dir WORKDIR`; fails when the bench exits non-zero."""
        os.makedirs(workdir, exist_ok=True)
        cmd = [bench, *args, "--scenario", scenario, "--json", "--dir",
               workdir]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            self.fail(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
        return json.loads(p.stdout)["scenarios"][scenario]

    def expect(self, r, want):
        """Each key of `want` has exactly its value in `r`."""
        for k, v in want.items():
            if r[k] != v:
                self.fail(f"{k} is {r[k]}, want {v}")

    def ordered(self, what, s):
        """A summary with 0 < min <= median <= max."""
        if not 0 < s["min"] <= s["median"] <= s["max"]:
            self.fail(f"{what} out of order: {s}")

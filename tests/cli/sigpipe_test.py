#!/usr/bin/python3
"""The SIGPIPE rule (docs/CLI.md, "Output"): when the reader of standard
output goes away, every command of strata and region-builder ends quietly
with the status it would have had: nothing on stderr (no "Broken pipe", no
"writing to standard output"), 0 for a command that succeeded, its own
failure code otherwise, and never death by SIGPIPE (141 in a shell).

Each command runs with standard output on a pipe whose read end is already
closed, so every write fails with EPIPE whatever the output's size; `cat` of
a 4 MiB layer also runs the real way, into `head -c 1`, under pipefail. The
children start with SIGPIPE at its default action, as from a shell.

Usage: sigpipe_test.py STRATA REGION_BUILDER MAKE_FIXTURE WORKDIR
"""
import os
import shutil
import subprocess
import sys

strata, builder, make_fixture, work = sys.argv[1:5]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
fx = os.path.join(work, "fixtures")
os.makedirs(fx)
subprocess.run([make_fixture, fx], check=True, stdout=subprocess.DEVNULL)
manifest = os.path.join(work, "m.json")
with open(manifest, "w") as f:
    f.write('{"region": {"id": 1, "name": "p"}, '
            '"layers": [{"id": 0, "text": "x"}]}')

def P(name):
    return os.path.join(fx, name)

# (command, expected exit status)
cases = [
    ([strata, "cat", P("big.region"), "0"], 0),
    ([strata, "ls", P("dense.region")], 0),
    ([strata, "ls", "--json", P("big.region")], 0),
    ([strata, "inspect", P("dense.region")], 0),
    ([strata, "verify", P("dense.region")], 0),
    ([strata, "verify", "--json", P("dense.region")], 0),
    ([strata, "verify", P("badsum.region")], 1),  # its own failure stays
    ([strata, "context", "--json", P("store"), "docs:0", "notes:11"], 0),
    ([strata, "context", P("store"), "docs:0"], 0),
    ([strata, "dump-state", P("store")], 0),
    ([strata, "stats", P("store")], 0),
    ([strata, "metrics", P("store")], 0),
    ([strata, "--help"], 0),
    ([strata, "help", "put"], 0),
    ([strata, "ls", "--version"], 0),
    ([builder, "--help"], 0),
    ([builder, "-V"], 0),
    ([builder, "-v", "-o", os.path.join(work, "p.region"), manifest], 0),
]

env = dict(os.environ)
env.pop("STRATA_LOG", None)
failed = 0
for cmd, want in cases:
    r, w = os.pipe()
    os.close(r)  # the reader is gone before the first write
    p = subprocess.run(cmd, stdout=w, stderr=subprocess.PIPE, env=env,
                       restore_signals=True)
    os.close(w)
    name = " ".join(os.path.basename(c) for c in cmd)
    if p.returncode != want or p.stderr:
        failed += 1
        print(f"FAIL {name}: exit {p.returncode} (want {want}), "
              f"stderr {p.stderr!r}")
    else:
        print(f"ok {name}")

# The real pipeline: head takes one byte of 4 MiB and exits.
p = subprocess.run(["bash", "-o", "pipefail", "-c",
                    f"'{strata}' cat '{P('big.region')}' 0 | head -c 1"],
                   capture_output=True, env=env)
if p.returncode != 0 or p.stderr or len(p.stdout) != 1:
    failed += 1
    print(f"FAIL cat | head -c 1: exit {p.returncode}, stderr {p.stderr!r}")
else:
    print("ok cat | head -c 1 (pipefail)")
sys.exit(1 if failed else 0)

#!/usr/bin/env bash
# Validates real state dumps against docs/state.schema.json: runs test_state
# with STRATA_STATE_DUMP_DIR set (it writes every dump it makes there), then
# checks each with python3-jsonschema (Draft 2020-12).
# Usage: validate_state.sh TEST_STATE_BINARY SOURCE_DIR
set -euo pipefail
bin=$1
src=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/strata-state-XXXXXX")
trap 'rm -rf "$dir"' EXIT
STRATA_STATE_DUMP_DIR=$dir "$bin" >/dev/null
# The Debian package installs for the system interpreter; a python3 earlier
# in PATH (pyenv, a venv) may not have it.
py=
for cand in /usr/bin/python3 python3; do
  if "$cand" -c 'import jsonschema' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "python3-jsonschema is missing (.ci/deps.sh installs it)"; exit 1; }
"$py" - "$src/docs/state.schema.json" "$dir" <<'PY'
import json, os, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
files = sorted(f for f in os.listdir(sys.argv[2]) if f.endswith(".json"))
if len(files) < 4:
    sys.exit(f"expected at least 4 dumps, found {len(files)}")
bad = 0
for name in files:
    doc = json.load(open(os.path.join(sys.argv[2], name)))
    for err in validator.iter_errors(doc):
        bad += 1
        print(f"{name}: {'/'.join(map(str, err.absolute_path))}: {err.message}")
if bad:
    sys.exit(f"{bad} schema violations")
print(f"{len(files)} dumps match docs/state.schema.json")
PY

#!/usr/bin/env bash
# Runs every fuzz target of the tree for FUZZTIME each (default 10s; `make test`
# runs them briefly, `FUZZTIME=10m hack/fuzz.sh` is a long run) and prints the
# exec count of each. Targets are found by name (func FuzzXxx in *_test.go), so
# a new one is run without editing this file. Exits non-zero on the first
# failure; the failing input is saved under the package's testdata/fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-10s}"
status=0
while IFS=: read -r file _ decl; do
  name="$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/' <<<"$decl")"
  pkg="./$(dirname "$file")"
  out="$(mktemp)"
  if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$out" 2>&1; then
    execs="$(grep -oE 'execs: [0-9]+' "$out" | tail -1 | grep -oE '[0-9]+' || true)"
    if [[ -n $execs ]]; then
      echo "fuzz: $pkg $name: ok, $execs execs in $FUZZTIME"
    else
      echo "fuzz: $pkg $name: ok, the seed and cached corpus replayed (FUZZTIME $FUZZTIME ended before new inputs)"
    fi
  else
    echo "fuzz: $pkg $name: FAILED" >&2
    cat "$out" >&2
    status=1
  fi
  rm -f "$out"
done < <(grep -rnE '^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' --include='*_test.go' internal cmd test 2>/dev/null | sort)
exit "$status"

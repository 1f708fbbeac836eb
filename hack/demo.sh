#!/usr/bin/env bash
# make demo: kprof's main job on the embedded default, no cluster and no S3.
# Starts the sample app on 127.0.0.1:6060, puts it under load, runs `kprof run --once`
# (the embedded default config), and shows where the profiles are and how to open them.
set -euo pipefail
cd "$(dirname "$0")/.."
KPROF=bin/kprof
SAMPLE_APP=bin/sample-app
ADDR=127.0.0.1:6060
OUT=./profiles
[[ -x $KPROF && -x $SAMPLE_APP ]] || { echo "demo: run 'make build' first" >&2; exit 1; }

if (exec 3<>/dev/tcp/127.0.0.1/6060) 2>/dev/null; then
  echo "demo: 127.0.0.1:6060 is in use by another process; make demo needs it (the embedded default profiles that address): stop whatever listens there" >&2
  exit 1
fi

mkdir -p .demo
"$SAMPLE_APP" --listen "$ADDR" --background-load >.demo/sample-app.log 2>&1 &
APP_PID=$!
trap 'kill $APP_PID 2>/dev/null || true; wait $APP_PID 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/6060) 2>/dev/null; then break; fi
  kill -0 $APP_PID 2>/dev/null || { echo "demo: sample-app exited:" >&2; cat .demo/sample-app.log >&2; exit 1; }
  sleep 0.1
done
echo "demo: sample-app listening on http://$ADDR (pprof at /debug/pprof)"

# Load for the CPU profile: two workers burning CPU and 64 MiB held, while kprof records.
if command -v curl >/dev/null; then
  curl -fsS --max-time 30 "http://$ADDR/load?cpu=12s&workers=2" >/dev/null &
  curl -fsS --max-time 30 "http://$ADDR/load?mem=67108864&hold=15s" >/dev/null &
fi

echo "demo: kprof run --once (embedded default config; see 'bin/kprof run --print-default-config')"
"$KPROF" run --once --output "$OUT"

CPU_PROFILE="$(find "$OUT" -name '*_cpu.pb.gz' -newer .demo/sample-app.log | sort | tail -n 1)"
[[ -n $CPU_PROFILE ]] || { echo "demo: no CPU profile was written under $OUT" >&2; exit 1; }
echo
echo "demo: profiles written under $OUT:"
find "$OUT" -name '*.pb.gz' -newer .demo/sample-app.log | sort | sed 's/^/  /'
echo
echo "demo: go tool pprof -top $CPU_PROFILE"
go tool pprof -top -nodecount=12 "$CPU_PROFILE"
echo
echo "demo: open any profile in a browser with: go tool pprof -http=:8082 $CPU_PROFILE"

#!/bin/sh
# wrk against the emulator's HTTP/1.1 port: a GET (activity by id) and a POST (create, unique external
# ids from a wrk Lua script).  Uses VIVA_EMU_DIR when it answers, else starts (and stops) its own.
# Env: BENCH_DURATION (default 5s), BENCH_THREADS (2), BENCH_CONNECTIONS (32).
set -eu
cd "$(dirname "$0")/.."
DUR=${BENCH_DURATION:-5s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-32}
command -v wrk >/dev/null 2>&1 || { echo "bench/emulator.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }

DIR=${VIVA_EMU_DIR:-}
own=0
if [ -z "$DIR" ] || ! ./emulator/run --dir "$DIR" --status --quiet; then
  DIR=$(mktemp -d /tmp/viva-bench-emu.XXXXXX)
  ./emulator/run --dir "$DIR" --quiet
  own=1
fi
cleanup() {
  if [ "$own" = 1 ]; then ./emulator/stop --dir "$DIR" --quiet; rm -rf "$DIR"; own=0
  else curl -s -X POST "$HTTP/_emulator/reset" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
HTTP=$(sed -n 's/^VIVA_EMU_HTTP=//p' "$DIR/env")

TENANT=72f988bf-0000-4000-8000-000000000001
PROVIDER=c0000000-0000-4000-8000-000000000001
curl -s -X POST "$HTTP/_emulator/reset" >/dev/null
TOKEN=$(curl -s -d "client_id=a0000000-0000-4000-8000-000000000001&client_secret=importer-secret-1&grant_type=client_credentials&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" \
  "$HTTP/$TENANT/oauth2/v2.0/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$TOKEN" ] || { echo "bench/emulator.sh: no token" >&2; exit 1; }
COLL="/v1.0/employeeExperience/learningProviders/$PROVIDER/learningCourseActivities"
ID=$(curl -s -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
  -d '{"@odata.type":"#microsoft.graph.learningAssignment","assignmentType":"required","learnerUserId":"b0000000-0000-4000-8000-000000000002","learningContentId":"d0000000-0000-4000-8000-000001000001","externalcourseActivityId":"bench-get"}' \
  "$HTTP$COLL" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
[ -n "$ID" ] || { echo "bench/emulator.sh: create failed" >&2; exit 1; }

rps() { sed -n 's/^Requests\/sec:[[:space:]]*//p'; }
reqs() { sed -n 's/^[[:space:]]*\([0-9]*\) requests in.*/\1/p'; }
# CPU time (user+system, clock ticks) of the nginx worker: a load-independent cost per request.
WORKER=$(ps -o pid= --ppid "$(cat "$DIR/nginx.pid")" | head -n 1 | tr -d ' ')
TICKS=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$WORKER/stat"; }
per_req() { awk -v a="$1" -v b="$2" -v n="$3" -v t="$TICKS" 'BEGIN{ if (n > 0) printf "%.0f", (b - a) / t / n * 1e6; else print "?" }'; }
lat() { awk '/^    Latency/ {print $2}'; }

C0=$(cpu)
OUT=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" -H "Authorization: Bearer $TOKEN" "$HTTP/v1.0/employeeExperience/learningCourseActivities/$ID")
C1=$(cpu)
echo "GET  activity by id   : $(echo "$OUT" | rps) requests/s (avg latency $(echo "$OUT" | lat), $THREADS threads, $CONNS connections, $DUR; worker CPU $(per_req "$C0" "$C1" "$(echo "$OUT" | reqs)") us/request)"
echo "$OUT" | grep -E "Non-2xx|Socket errors" || true

C0=$(cpu)
OUT=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" -s bench/emulator_post.lua "$HTTP$COLL" -- "$TOKEN")
C1=$(cpu)
echo "POST create activity  : $(echo "$OUT" | rps) requests/s (avg latency $(echo "$OUT" | lat), unique external ids; worker CPU $(per_req "$C0" "$C1" "$(echo "$OUT" | reqs)") us/request)"
echo "$OUT" | grep -E "Non-2xx|Socket errors" || true

curl -s -X POST "$HTTP/_emulator/reset" >/dev/null
C0=$(cpu)
OUT=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" -s bench/emulator_post.lua "$HTTP/v1.0/\$batch" -- "$TOKEN" "$PROVIDER")
C1=$(cpu)
B=$(echo "$OUT" | rps)
echo "POST \$batch (20 creates): $B requests/s = $(awk -v b="$B" 'BEGIN{printf "%.0f", b*20}') creates/s (avg latency $(echo "$OUT" | lat); worker CPU $(per_req "$C0" "$C1" "$(echo "$OUT" | reqs)") us/batch)"
echo "$OUT" | grep -E "Non-2xx|Socket errors" || true
CREATED=$(curl -s "$HTTP/_emulator/state" | sed -n 's/.*"activities":\([0-9]*\).*/\1/p')
echo "  (activities held after the run: $CREATED)"

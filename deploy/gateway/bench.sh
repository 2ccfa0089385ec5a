#!/usr/bin/env bash
# What apimeter's gateway check costs NGINX: the same NGINX
# (nginx.conf.template) in front of the same small API, measured with wrk
# without the check (auth_request off) and with it, in one run. The key
# belongs to a user on the Enterprise plan, so no call is refused.
#
#   deploy/gateway/bench.sh                     # wrk -t2 -c32 -d10s
#   THREADS=4 CONNECTIONS=64 DURATION=30s deploy/gateway/bench.sh
#
# Needs nginx, wrk, envsubst and curl; without nginx or wrk it says so
# and exits 0 (make bench goes on). APIMETER_BIN is the apimeter binary
# (default bin/apimeter, built when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in nginx wrk envsubst curl; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench gateway: SKIPPED: $tool is not installed (apt-get install nginx wrk gettext-base curl)"
    exit 0
  fi
done

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10s}
BIN=${APIMETER_BIN:-bin/apimeter}
if [ ! -x "$BIN" ]; then
  CGO_ENABLED=0 go build -o "$BIN" ./cmd/apimeter
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# A loopback port nothing listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}

wait_for() { # url: until it answers
  for _ in $(seq 600); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "bench gateway: $1 does not answer" >&2
  return 1
}

admin_key=bench-gateway-admin-0123456789
apimeter_addr=127.0.0.1:$(free_port)
upstream_addr=127.0.0.1:$(free_port)
listen_addr=127.0.0.1:$(free_port)

APIMETER_DATA_DIR="$work/data" APIMETER_HTTP_ADDR="$apimeter_addr" \
  APIMETER_EMBEDDED_KAFKA_ADDR=127.0.0.1:$(free_port) CLICKHOUSE_URL='' KAFKA_BROKERS='' REDIS_URL='' \
  APIMETER_ADMIN_KEY="$admin_key" LOG_LEVEL=warn \
  "$BIN" serve >"$work/apimeter.log" 2>&1 &
pids+=($!)

# The API: an NGINX answering every call with a short body, one worker.
mkdir -p "$work/upstream"
cat >"$work/upstream/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen $upstream_addr;
        location / { return 200 "ok\n"; }
    }
}
EOF
nginx -p "$work/upstream" -c "$work/upstream/nginx.conf" 2>>"$work/upstream.log" &
pids+=($!)

for i in $(seq 600); do
  curl -sf "http://$apimeter_addr/readyz" >/dev/null && break
  [ "$i" -lt 600 ] || { echo "bench gateway: apimeter is not ready"; cat "$work/apimeter.log"; exit 1; }
  sleep 0.1
done
wait_for "http://$upstream_addr/"

created=$(curl -sf -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
  -d '{"tenantId":"bench","userId":"bench-enterprise","role":"user"}' "http://$apimeter_addr/api/api-usage/admin/keys")
key=$(printf '%s' "$created" | sed -n 's/.*"key":"\([^"]*\)".*/\1/p')
[ -n "$key" ] || { echo "bench gateway: no key in $created"; exit 1; }
curl -sf -o /dev/null -X PUT -H "Authorization: Bearer $admin_key" -H 'Content-Type: application/json' \
  -d '{"tenantId":"bench","plan":"enterprise"}' "http://$apimeter_addr/api/api-usage/admin/accounts/bench-enterprise"

mkdir -p "$work/gateway"
LISTEN_ADDR=$listen_addr APIMETER_ADDR=$apimeter_addr UPSTREAM_ADDR=$upstream_addr \
  envsubst '${LISTEN_ADDR} ${APIMETER_ADDR} ${UPSTREAM_ADDR}' \
  <deploy/gateway/nginx.conf.template >"$work/gateway/with-check.conf"
# The same configuration without the check: nothing else differs.
sed 's|^\( *\)auth_request /\.apimeter/check;|\1auth_request off;|' "$work/gateway/with-check.conf" >"$work/gateway/without-check.conf"
if cmp -s "$work/gateway/with-check.conf" "$work/gateway/without-check.conf"; then
  echo "bench gateway: the template's auth_request line was not found"
  exit 1
fi

# run NAME: starts the gateway with NAME.conf, warms it up, measures,
# stops it, and writes "requests/s p99-in-ms" to NAME.result.
run() {
  local out status
  nginx -p "$work/gateway" -c "$work/gateway/$1.conf" 2>>"$work/gateway.log" &
  pids+=($!)
  wait_for "http://$listen_addr/"
  status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" "http://$listen_addr/api/items/1")
  if [ "$status" != 200 ]; then
    echo "bench gateway: $1: a call answered $status" >&2
    return 1
  fi
  wrk -t"$THREADS" -c"$CONNECTIONS" -d2s -H "Authorization: Bearer $key" "http://$listen_addr/api/items/42" >/dev/null
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Authorization: Bearer $key" "http://$listen_addr/api/items/42?page=3")
  kill "${pids[-1]}"
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
  if grep -q 'Non-2xx' <<<"$out"; then
    echo "bench gateway: $1: some calls were not answered 200:" >&2
    echo "$out" >&2
    return 1
  fi
  awk '
    /Requests\/sec:/ { rps = $2 }
    $1 == "99%" {
      v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
      p99 = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v
    }
    END { printf "%.0f %.2f\n", rps, p99 }' <<<"$out" >"$work/$1.result"
}

run without-check
run with-check
read -r rps_off p99_off <"$work/without-check.result"
read -r rps_on p99_on <"$work/with-check.result"

echo "NGINX in front of a small API, wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $(nproc) cores"
printf '%-16s %12s %10s\n' "" "requests/s" "p99 ms"
printf '%-16s %12s %10s\n' "without check" "$rps_off" "$p99_off"
printf '%-16s %12s %10s\n' "with check" "$rps_on" "$p99_on"
awk -v off="$rps_off" -v on="$rps_on" 'BEGIN {
  loss = 100 * (1 - on / off)
  printf "loss: %.1f %% of requests/s (goal: at most 25 %%)\n", loss
}'

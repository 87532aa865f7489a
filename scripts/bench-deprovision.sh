#!/usr/bin/env bash
# Fleet deprovisioning (DESIGN sections 9 and 12): DEPROVISION devices (default 1000)
# registered with `iotca dps serve` over two hubs, then taken out with one
# `iotca deprovision --ids-file --certs-dir --to azure` (every step confirmed).
# Prints the wall time and the requests per second the emulator served.
# Usage: scripts/bench-deprovision.sh [IOTCA_BINARY]   (scripts/bench.sh calls it)
set -euo pipefail
IOTCA="${1:-target/release/iotca}"
N="${DEPROVISION:-1000}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
h="$work/h"
"$IOTCA" --home "$h" ca init >/dev/null 2>&1
seq -f 'bench-%04g' 1 "$N" > "$work/ids.txt"
"$IOTCA" --home "$h" -q device create --ids-file "$work/ids.txt" >/dev/null
"$IOTCA" --home "$h" -q enroll group create bench-group --ca "$h/certs/azure-iot-test-only.intermediate.cert.pem" >/dev/null
"$IOTCA" --home "$h" dps serve --listen 127.0.0.1:28883 --https-listen 127.0.0.1:28443 \
  --hub bench-hub-1.azure-devices.net --hub bench-hub-2.azure-devices.net >/dev/null 2>"$work/serve.log" &
server=$!
for _ in $(seq 50); do [ -s "$h/private/iotca-dps-endpoint.json" ] && break; sleep 0.1; done
sleep 0.3
ca="$h/certs/iotca-dps-server-ca.cert.pem"
# Register every device over the DPS device API (setup, not timed).
xargs -P 4 -I{} curl -s -o /dev/null --cacert "$ca" --cert "$h/certs/{}-full-chain.cert.pem" \
  --key "$h/private/{}.key.pem" -X PUT -H 'Content-Type: application/json' -d '{"registrationId":"{}"}' \
  "https://localhost:28443/0ne00BENCH/registrations/{}/register?api-version=2021-06-01" < "$work/ids.txt"
for _ in $(seq 100); do [ "$(ls "$h/dps/registrations" | wc -l)" -ge "$N" ] && break; sleep 0.1; done
"$IOTCA" --home "$h" dps connection-strings --json > "$work/cs.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],"w").write(d["dps"]["connection_string"]+"\n"); open(sys.argv[3],"w").write("\n".join(x["connection_string"] for x in d["hubs"])+"\n")' \
  "$work/cs.json" "$work/dps.cs" "$work/hubs.cs"
before=$(grep -c ' https: 127' "$work/serve.log" || true)
start=$(date +%s.%N)
IOTCA_SERVICE_CA="$ca" "$IOTCA" --home "$h" -q deprovision --ids-file "$work/ids.txt" --certs-dir "$h/certs" --to azure \
  --dps-connection-string-file "$work/dps.cs" --hub-connection-string-file "$work/hubs.cs" --json > "$work/out.json"
end=$(date +%s.%N)
after=$(grep -c ' https: 127' "$work/serve.log" || true)
secs=$(echo "$end - $start" | bc -l)
requests=$((after - before))
deleted=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for r in d["devices"] if r["ok"] and r["steps"][2]["action"]=="deleted" and all(s["confirmed"] for s in r["steps"])))' "$work/out.json")
printf 'deprovision --ids-file --to azure: %d devices in %.2fs (%d deleted from their hub, every step confirmed), %d requests, %.0f requests/s (target: 1000 in <= 20 s)\n' \
  "$N" "$secs" "$deleted" "$requests" "$(echo "$requests / $secs" | bc -l)"

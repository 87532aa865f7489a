#!/usr/bin/env bash
# iotca benchmark: iotca and the openssl baselines side by side, in one run,
# on this machine. Prints each figure and the ratios DESIGN section 9 sets.
#
#   scripts/bench.sh                 # defaults: 10000 devices, 20000 audited files
#   DEVICES=5000 AUDIT=100000 scripts/bench.sh
#
# Needs: cargo, openssl, GNU time (/usr/bin/time) for peak memory.
set -euo pipefail

DEVICES=${DEVICES:-10000}        # devices issued by iotca
BASELINE_DEVICES=${BASELINE_DEVICES:-200}  # devices issued by openssl, one process pair each
AUDIT=${AUDIT:-20000}            # certificate files audited
CSRS=${CSRS:-1000}               # CSRs signed in bulk by `device sign DIR`
RSA_KEYS=${RSA_KEYS:-12}         # RSA keys per size (key generation time varies a lot: more is steadier)
HUB_DEVICES=${HUB_DEVICES:-500}  # devices connected to the local hub at once (at most DEVICES)
HUB_MESSAGES=${HUB_MESSAGES:-20} # QoS 1 messages each of them sends

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --release --quiet --bin iotca --example hub_load
IOTCA="$here/target/release/iotca"
work=$(mktemp -d "${TMPDIR:-/tmp}/iotca-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
rate() { printf '%.0f' "$(echo "$1 / $2" | bc -l)"; }
ratio() { printf '%.1f' "$(echo "$1 / $2" | bc -l)"; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(openssl version)"
echo "iotca:   $("$IOTCA" --version)"
echo

# ---- 1. issuing P-256 devices -------------------------------------------
home="$work/home"
"$IOTCA" --home "$home" ca init -q
seq -f "bench-dev-%07g" 1 "$DEVICES" > "$work/ids.txt"
t0=$(now)
"$IOTCA" --home "$home" device create --ids-file "$work/ids.txt" -q
t1=$(now)
iotca_issue=$(elapsed "$t0" "$t1")
iotca_issue_rate=$(rate "$DEVICES" "$iotca_issue")

ca="$home/certs/azure-iot-test-only.intermediate.cert.pem"
cakey="$home/private/azure-iot-test-only.intermediate.key.pem"
mkdir -p "$work/openssl"
t0=$(now)
for i in $(seq 1 "$BASELINE_DEVICES"); do
  d="$work/openssl/dev-$i"
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$d.key.pem" -subj "/CN=dev-$i" -out "$d.csr" 2>/dev/null
  openssl x509 -req -in "$d.csr" -CA "$ca" -CAkey "$cakey" -CAcreateserial \
    -days 365 -sha256 -out "$d.cert.pem" 2>/dev/null
  cat "$d.cert.pem" "$home/certs/azure-iot-test-only.chain.ca.cert.pem" > "$d-full-chain.cert.pem"
done
t1=$(now)
openssl_issue=$(elapsed "$t0" "$t1")
openssl_issue_rate=$(echo "$BASELINE_DEVICES / $openssl_issue" | bc -l)

# ---- 2. RSA key generation ----------------------------------------------
rsa_rows=()
for bits in 2048 4096; do
  rh="$work/rsa$bits"
  "$IOTCA" --home "$rh" ca init -q --no-intermediate
  # One key per process, one after the other, as `openssl genpkey` below:
  # wall time per key (iotca searches for the two primes on two threads).
  t0=$(now)
  for i in $(seq 1 "$RSA_KEYS"); do
    "$IOTCA" --home "$rh" device create "rsa-$i" --algorithm "rsa$bits" -q
  done
  t1=$(now)
  ours=$(echo "($t1 - $t0) / $RSA_KEYS" | bc -l)
  t0=$(now)
  for i in $(seq 1 "$RSA_KEYS"); do
    openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" -out "$work/k$i.pem" 2>/dev/null
  done
  t1=$(now)
  theirs=$(echo "($t1 - $t0) / $RSA_KEYS" | bc -l)
  rsa_rows+=("$(printf '| RSA-%s key, wall time (s/key) | %.3f | %.3f | %sx |' "$bits" "$ours" "$theirs" "$(ratio "$theirs" "$ours")")")
done

# ---- 3. audit -------------------------------------------------------------
fleet="$work/fleet"
mkdir -p "$fleet"
# AUDIT leaf files: the issued devices' certificates, repeated under
# several directories when AUDIT > DEVICES.
n=0; batch=0
while [ "$n" -lt "$AUDIT" ]; do
  dir="$fleet/b$batch"; mkdir -p "$dir"
  take=$(( AUDIT - n < DEVICES ? AUDIT - n : DEVICES ))
  head -n "$take" "$work/ids.txt" | sed "s|^|$home/certs/|; s|$|.cert.pem|" | xargs cp -t "$dir"
  n=$(( n + take )); batch=$(( batch + 1 ))
done
sync
# warm the page cache for both tools alike
find "$fleet" -type f -exec cat {} + > /dev/null
t0=$(now)
/usr/bin/time -f "%M" -o "$work/rss" "$IOTCA" audit --ca "$ca" "$fleet" --format csv > "$work/audit.csv" || true
t1=$(now)
iotca_audit=$(elapsed "$t0" "$t1")
iotca_audit_rate=$(rate "$AUDIT" "$iotca_audit")
rss_mb=$(echo "$(cat "$work/rss") / 1024" | bc)
chained=$(grep -c ',true,' "$work/audit.csv" || true)

t0=$(now)
find "$fleet" -name '*.pem' -print0 | xargs -0 openssl verify -partial_chain -CAfile "$ca" > "$work/openssl-verify.txt" 2>&1 || true
t1=$(now)
openssl_audit=$(elapsed "$t0" "$t1")
openssl_ok=$(grep -c ': OK$' "$work/openssl-verify.txt" || true)

# ---- 4. bulk CSR signing --------------------------------------------------
# The CSRs (P-256, one key each) are made once by openssl, two at a time,
# outside the timed part; `device sign DIR` then verifies and signs them all.
csrs="$work/csrs"
mkdir -p "$csrs"
seq -f "se-dev-%05g" 1 "$CSRS" | xargs -P "$(nproc)" -I{} \
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$csrs/{}.key" -subj "/CN={}" -out "$csrs/{}.csr" 2>/dev/null
signhome="$work/signhome"
"$IOTCA" --home "$signhome" ca init -q
t0=$(now)
"$IOTCA" --home "$signhome" device sign "$csrs" -q
t1=$(now)
iotca_sign=$(elapsed "$t0" "$t1")
iotca_sign_rate=$(rate "$CSRS" "$iotca_sign")
signed=$(ls "$signhome/certs" | grep -c -- '-full-chain.cert.pem$' || true)
sca="$signhome/certs/azure-iot-test-only.intermediate.cert.pem"
scakey="$signhome/private/azure-iot-test-only.intermediate.key.pem"
t0=$(now)
for f in $(ls "$csrs"/*.csr | head -n "$BASELINE_DEVICES"); do
  openssl x509 -req -in "$f" -CA "$sca" -CAkey "$scakey" -CAcreateserial \
    -days 365 -sha256 -out "$f.cert.pem" 2>/dev/null
  cat "$f.cert.pem" "$signhome/certs/azure-iot-test-only.chain.ca.cert.pem" > "$f-full-chain.cert.pem"
done
t1=$(now)
openssl_sign_rate=$(echo "$BASELINE_DEVICES / $(elapsed "$t0" "$t1")" | bc -l)
# ---- 4. the local hub: many devices connected at once -----------------------
hub_name=bench-hub.azure-devices.net
head -n "$HUB_DEVICES" "$work/ids.txt" > "$work/hub-ids.txt"
while read -r id; do "$IOTCA" --home "$home" hub device add "$id" -q; done < "$work/hub-ids.txt"
"$IOTCA" --home "$home" dps serve --listen 127.0.0.1:0 --https-listen 127.0.0.1:0 --hub "$hub_name" \
  > "$work/serve.out" 2> "$work/serve.err" &
serve_pid=$!
for _ in $(seq 1 100); do grep -q 'listening on' "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
hub_addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$work/serve.out" | head -n 1)
hub_json=$("$here/target/release/examples/hub_load" "$home" "$hub_addr" "$hub_name" "$work/hub-ids.txt" "$HUB_MESSAGES")
hub_rss_mb=$(( $(awk '/^VmHWM/ {print $2}' "/proc/$serve_pid/status") / 1024 ))
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
hub_field() { echo "$hub_json" | sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }
hub_connected=$(hub_field connected); hub_acked=$(hub_field acked)
hub_expected=$(hub_field expected); hub_secs=$(hub_field seconds)

echo "| measure | iotca | openssl | ratio |"
echo "|---|---|---|---|"
printf '| P-256 devices issued per second (key, cert, full chain on disk) | %s | %.1f | %sx |\n' \
  "$iotca_issue_rate" "$openssl_issue_rate" "$(ratio "$iotca_issue_rate" "$openssl_issue_rate")"
for r in "${rsa_rows[@]}"; do echo "$r"; done
printf '| device sign: CSRs signed per second (%s CSRs in one directory; cert + full chain on disk) | %s | %.1f | %sx |\n' \
  "$CSRS" "$iotca_sign_rate" "$openssl_sign_rate" "$(ratio "$iotca_sign_rate" "$openssl_sign_rate")"
printf '| audit: P-256 device certificates verified per second | %s | %.0f | %sx |\n' \
  "$iotca_audit_rate" "$(echo "$AUDIT / $openssl_audit" | bc -l)" "$(ratio "$openssl_audit" "$iotca_audit")"
echo
echo "issued $DEVICES devices in ${iotca_issue}s (openssl: $BASELINE_DEVICES in ${openssl_issue}s)"
echo "audited $AUDIT files in ${iotca_audit}s, peak RSS ${rss_mb} MB, $chained chain (openssl verify: $openssl_ok OK in ${openssl_audit}s)"
echo "signed $signed of $CSRS CSRs in ${iotca_sign}s (openssl x509 -req: $BASELINE_DEVICES one process each)"
echo "hub: $hub_connected of $HUB_DEVICES devices connected at once, $hub_acked of $hub_expected QoS 1 messages acknowledged in ${hub_secs}s ($(rate "$hub_acked" "$hub_secs") per second), server peak RSS ${hub_rss_mb} MB"
echo "RSA ratio is openssl time / iotca time: above 1 means iotca is faster"
if [ "$hub_connected" != "$HUB_DEVICES" ] || [ "$hub_acked" != "$hub_expected" ]; then
  echo "WARNING: not every hub device connected or had every message acknowledged" >&2
fi
if [ "$chained" != "$AUDIT" ] || [ "$openssl_ok" != "$AUDIT" ]; then
  echo "WARNING: not every audited certificate verified; the comparison is not like for like" >&2
fi

echo
"$here/scripts/bench-deprovision.sh" "$IOTCA"

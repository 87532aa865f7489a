#!/usr/bin/env bash
# The main job on a fresh machine: build iotca, make a lab PKI (root,
# intermediate) and three devices in a fresh home, and check each device
# with openssl.
#
#   scripts/quickstart.sh [HOME_DIR]      default: ./pki-quickstart (must not exist)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
home=${1:-pki-quickstart}
usage="usage: scripts/quickstart.sh [HOME_DIR]   (default ./pki-quickstart; the directory must not exist)"
case "${1:-}" in -h | --help) echo "$usage"; exit 0 ;; esac
if [ $# -gt 1 ]; then
    echo "$usage" >&2
    exit 2
fi
if [ -e "$home" ]; then
    echo "quickstart: $home already exists; give a new directory" >&2
    echo "$usage" >&2
    exit 2
fi
cargo build --release --locked --quiet
iotca=target/release/iotca
"$iotca" --home "$home" ca init
"$iotca" --home "$home" device create sensor-thl-001 sensor-thl-002 sensor-thl-003
"$iotca" --home "$home" ca list
for d in sensor-thl-001 sensor-thl-002 sensor-thl-003; do
    openssl verify -x509_strict -purpose sslclient \
        -CAfile "$home/certs/azure-iot-test-only.root.ca.cert.pem" \
        -untrusted "$home/certs/azure-iot-test-only.intermediate.cert.pem" \
        "$home/certs/$d.cert.pem"
    "$iotca" verify "$home/certs/$d-full-chain.cert.pem" \
        --ca "$home/certs/azure-iot-test-only.root.ca.cert.pem" -q
done
echo "quickstart: a root, an intermediate and three devices in $home; every device chains (openssl and iotca agree)"

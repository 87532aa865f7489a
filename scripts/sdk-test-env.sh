#!/usr/bin/env bash
# Installs Microsoft's Azure IoT SDKs that the local-Azure tests
# (tests/dps_https.rs) use as clients of `iotca dps serve`:
#
#   target/pyenv-sdk   Python venv: azure-iot-device (device, MQTT),
#                      azure-iot-hub (+ six, which it imports without declaring),
#                      azure-iot-deviceprovisioning (DPS service client)
#   target/node-sdk    npm packages: the Node service and device clients
#
# Pinned exact versions; idempotent (a second run with everything in place
# only checks the versions). Needs python3 with venv and npm (Node 20).
#
#   scripts/sdk-test-env.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IOTCA_SDK_VENV:-$here/target/pyenv-sdk}"
node_dir="${IOTCA_NODE_SDK:-$here/target/node-sdk}"
python="${PYTHON:-python3}"

py_pins=(
    "azure-iot-device==2.14.0"
    "azure-iot-hub==2.7.0"
    "six==1.17.0"
    "azure-iot-deviceprovisioning==1.0.0b1"
)
node_pins=(
    "azure-iot-provisioning-service@1.11.2"
    "azure-iothub@1.16.6"
    "azure-iot-device@1.18.4"
    "azure-iot-device-mqtt@1.16.4"
    "azure-iot-provisioning-device@1.9.1"
    "azure-iot-provisioning-device-http@1.9.1"
    "azure-iot-provisioning-device-mqtt@1.8.1"
    "azure-iot-security-x509@1.7.12"
)

# --- Python -----------------------------------------------------------------
py_ok() {
    [ -x "$venv/bin/python" ] || return 1
    local pin name version
    for pin in "${py_pins[@]}"; do
        name="${pin%%==*}"
        version="${pin##*==}"
        "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$name') != '$version')" 2>/dev/null || return 1
    done
}

if py_ok; then
    echo "sdk-test-env: Python SDKs already in $venv"
else
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "sdk-test-env: $python not found; install Python 3 (with venv) first" >&2
        exit 1
    fi
    if [ ! -x "$venv/bin/python" ]; then
        mkdir -p "$(dirname "$venv")"
        "$python" -m venv "$venv" || {
            echo "sdk-test-env: '$python -m venv' failed; on Debian install python3-venv" >&2
            exit 1
        }
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${py_pins[@]}"
    # One venv holds all three: pip check fails if their requirements clash.
    "$venv/bin/python" -m pip check
    "$venv/bin/python" -c "import azure.iot.device, azure.iot.hub, azure.iot.deviceprovisioning; print('sdk-test-env: Python SDKs ready in $venv')"
fi

# --- Node -------------------------------------------------------------------
node_ok() {
    [ -f "$node_dir/package.json" ] || return 1
    local pin name version
    for pin in "${node_pins[@]}"; do
        name="${pin%@*}"
        version="${pin##*@}"
        [ -f "$node_dir/node_modules/$name/package.json" ] || return 1
        node -e "process.exit(require('$node_dir/node_modules/$name/package.json').version === '$version' ? 0 : 1)" || return 1
    done
}

if node_ok; then
    echo "sdk-test-env: Node SDKs already in $node_dir"
else
    if ! command -v npm >/dev/null 2>&1; then
        echo "sdk-test-env: npm not found; install Node.js 20 first" >&2
        exit 1
    fi
    mkdir -p "$node_dir"
    [ -f "$node_dir/package.json" ] ||
        printf '{"name":"iotca-sdk-tests","private":true}\n' >"$node_dir/package.json"
    (cd "$node_dir" && npm install --silent --no-audit --no-fund --save-exact "${node_pins[@]}")
    node_ok || { echo "sdk-test-env: Node SDK versions do not match the pins" >&2; exit 1; }
    echo "sdk-test-env: Node SDKs ready in $node_dir"
fi

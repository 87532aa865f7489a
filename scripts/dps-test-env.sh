#!/usr/bin/env bash
# Creates the Python virtual environment the `iotca dps serve` integration
# tests (tests/dps.rs) use as the device: the Azure IoT Python device SDK
# (azure-iot-device) in target/pyenv-dps. Idempotent: a second run with the
# SDK already installed does nothing.
#
#   scripts/dps-test-env.sh            # create / check target/pyenv-dps
#   IOTCA_DPS_VENV=/tmp/v scripts/dps-test-env.sh
#
# The tests find the interpreter at target/pyenv-dps/bin/python, or at
# $IOTCA_DPS_PYTHON when set.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IOTCA_DPS_VENV:-$here/target/pyenv-dps}"
sdk_version="${IOTCA_DPS_SDK_VERSION:-2.14.0}"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('azure-iot-device') != '$sdk_version')" 2>/dev/null; then
    echo "dps-test-env: azure-iot-device $sdk_version already in $venv"
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "dps-test-env: $python not found; install Python 3 (with venv) first" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv"; then
        echo "dps-test-env: '$python -m venv' failed; on Debian install python3-venv" >&2
        exit 1
    fi
fi

"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "azure-iot-device==$sdk_version"
"$venv/bin/python" -c "import azure.iot.device, paho.mqtt.client; print('dps-test-env: azure-iot-device', azure.iot.device.__version__ if hasattr(azure.iot.device, '__version__') else '$sdk_version', 'ready in $venv')"

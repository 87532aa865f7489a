#!/usr/bin/env bash
# The whole iotca test suite in one command: sets up the independent tools
# the tests check iotca with (idempotent, cached under target/), then runs
# the unit tests and the one integration test binary (tests/cli/).
#
#   scripts/test.sh                       everything
#   scripts/test.sh -- verify::           extra arguments go to `cargo test`
#
# Tools set up here (each by its own script, pinned versions):
#   target/pyenv-pki   DigiCert's pkilint and pyca/cryptography  (scripts/pki-test-env.sh)
#   target/pyenv-dps   the Azure IoT Python device SDK           (scripts/dps-test-env.sh)
#   target/pyenv-sdk,  Microsoft's Python and Node service and   (scripts/sdk-test-env.sh)
#   target/node-sdk    device SDKs
# A tool that cannot be installed (no network) makes its tests skip with a
# visible SKIPPED line on a developer's machine; with CI set, set-up
# failures and skipped tests are failures. IOTCA_TEST_NO_SETUP=1 skips the
# set-up and uses whatever is already installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

in_ci() { [ -n "${CI:-}" ] && [ "${CI:-}" != "0" ] && [ "${CI:-}" != "false" ]; }

setup() {
    local script="scripts/$1"
    [ -f "$script" ] || return 0
    if ! bash "$script"; then
        if in_ci; then
            echo "test.sh: $script failed, and CI needs what it installs" >&2
            exit 1
        fi
        echo "test.sh: WARNING: $script failed; the tests that need it will say SKIPPED" >&2
    fi
}

if [ -z "${IOTCA_TEST_NO_SETUP:-}" ]; then
    setup pki-test-env.sh
    setup dps-test-env.sh
    setup sdk-test-env.sh
fi

# pkilint and a python3 that has `cryptography` first on PATH.
if [ -x target/pyenv-pki/bin/python ]; then
    export PATH="$PWD/target/pyenv-pki/bin:$PATH"
fi

if in_ci; then
    # Every optional tool is required in CI: a missing one fails its test.
    export IOTCA_REQUIRE_PKILINT=1 IOTCA_DPS_REQUIRE_PYTHON=1
    # A CI checkout is built once: incremental state would only be written.
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

exec cargo test --all-targets "$@"

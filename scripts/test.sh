#!/usr/bin/env bash
# The whole iotca test suite, in one command: unit tests and the integration
# tests under tests/, which run the real binary and check its certificates
# with openssl (and with DigiCert's pkilint when `lint_pkix_cert` is on PATH
# or in the venv that .ci/run installs it into).
#
#   scripts/test.sh                      everything
#   scripts/test.sh --test foundation    extra arguments go to `cargo test`
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# pkilint's venv, when .ci/run (or a developer) made one.
venv="${IOTCA_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/iotca-ci/venv}"
if [ -x "$venv/bin/lint_pkix_cert" ]; then
    export PATH="$venv/bin:$PATH"
fi

# A CI checkout is built once: incremental state would only be written, never reused.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi

exec cargo test --all-targets "$@"

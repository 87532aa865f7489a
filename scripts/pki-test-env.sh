#!/usr/bin/env bash
# Creates the Python virtual environment tests/lifecycle.rs checks issued
# certificates and CSRs with: DigiCert's pkilint (lint_pkix_cert) and
# pyca/cryptography, pinned, in target/pyenv-pki. Idempotent: a second run
# with both installed does nothing.
#
#   scripts/pki-test-env.sh
#   IOTCA_PKI_VENV=/tmp/v scripts/pki-test-env.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${IOTCA_PKI_VENV:-$here/target/pyenv-pki}"
python="${PYTHON:-python3}"
pkilint_version="${IOTCA_PKILINT_VERSION:-0.13.3}"
cryptography_version="${IOTCA_CRYPTOGRAPHY_VERSION:-50.0.2}"

if [ -x "$venv/bin/lint_pkix_cert" ] && "$venv/bin/python" -c 'import pkilint, cryptography' 2>/dev/null; then
    echo "pki-test-env: pkilint and cryptography already in $venv"
    exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv"; then
        echo "pki-test-env: '$python -m venv' failed; on Debian install python3-venv" >&2
        exit 1
    fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    "pkilint==$pkilint_version" "cryptography==$cryptography_version"
"$venv/bin/lint_pkix_cert" --help > /dev/null
echo "pki-test-env: pkilint $pkilint_version and cryptography $cryptography_version ready in $venv"

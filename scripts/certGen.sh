#!/usr/bin/env bash
#
# certGen.sh, implemented with iotca.
#
# A drop-in for the certGen.sh of azure-iot-sdk-c (tools/CACertificates):
# the same subcommands, the same file names in the current directory, so a
# lab guide written for certGen.sh works unchanged. The work is done by
# `iotca --home .` (the current directory is the PKI home).
#
# What differs from the original, on purpose:
#   - Nothing is ever deleted. A second create_root_and_intermediate moves
#     the old CA files to archive/<UTC timestamp>/ (certGen.sh wiped the
#     directory), and every device command moves the previous new-device.*
#     (or new-edge-device.*) there before putting the new ones in place.
#   - certs/new-device-full-chain.cert.pem (leaf, then every CA up to the
#     root) is written for you; the PFX holds the CA chain too.
#   - CA keys are not encrypted with '1234' unless you ask for a passphrase
#     with IOTCA_PASSPHRASE; they are mode 0600 under a 0700 private/.
#     Existing certGen.sh directories (keys encrypted with '1234') work:
#     the passphrase defaults to '1234' when a CA key is encrypted.
#   - Validity is iotca's (root 3650 days, intermediate 1825, devices 365,
#     edge CA 90) unless CERTGEN_DAYS says otherwise; a certificate never
#     outlives its issuer.
#
# Environment:
#   CERTGEN_ALGORITHM   key algorithm: rsa4096 (default, as certGen.sh),
#                       rsa3072, rsa2048, p384 or p256
#   CERTGEN_DAYS        validity in days for every certificate issued
#   CERTGEN_PFX_LEGACY  1: PFX with PBE-SHA1-3DES for older Windows imports
#   IOTCA_PASSPHRASE    passphrase of the CA keys (encrypts them at
#                       create_root_and_intermediate when set)
#   IOTCA_BIN           the iotca binary to use; otherwise iotca is looked
#                       for on PATH, next to this script, then in
#                       ../target/{release,debug}/ relative to it
#
# These certificates are for tests and labs, not production.

# Run by sh (dash, busybox)? Re-run under bash, as certGen.sh needs it.
if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi

set -euo pipefail

readonly pfx_password="1234"
readonly default_ca_passphrase="1234"
readonly root_key="private/azure-iot-test-only.root.ca.key.pem"
readonly intermediate_key="private/azure-iot-test-only.intermediate.key.pem"
readonly chain_cert="certs/azure-iot-test-only.chain.ca.cert.pem"

algorithm="${CERTGEN_ALGORITHM:-rsa4096}"
days="${CERTGEN_DAYS:-}"
script_name="${0##*/}"
work_dir=""

usage() {
    cat <<EOF
Usage: create_root_and_intermediate                               # Creates a new root and intermediate certificates
       create_verification_certificate <subjectName>              # Creates a verification certificate, signed by the root, with CN <subjectName>
       create_device_certificate <subjectName>                    # Creates a device certificate signed by root with <subjectName>
       create_device_certificate_from_intermediate <subjectName>  # Creates a device certificate signed by intermediate with <subjectName>
       create_edge_device_certificate <subjectName>               # Creates an edge device CA certificate, signed by intermediate, with CN <subjectName>.ca

Run as: ${script_name} <command> [<subjectName>] in the directory that holds (or will hold) certs/ and private/.
Environment: CERTGEN_ALGORITHM (default rsa4096), CERTGEN_DAYS, CERTGEN_PFX_LEGACY=1, IOTCA_PASSPHRASE, IOTCA_BIN.
EOF
}

die() {
    local code="$1"
    shift
    printf '%s: error: %s\n' "$script_name" "$*" >&2
    exit "$code"
}

warn() {
    printf '%s: warning: %s\n' "$script_name" "$*" >&2
}

cleanup() {
    if [[ -n "$work_dir" ]]; then
        rm -rf -- "$work_dir"
    fi
}
trap cleanup EXIT

# Makes work_dir, a private scratch directory (mode 0700) for the PFX
# password and the edge template, removed on exit. Call it in the main shell
# (not in $(...)) so that the directory is known to the exit trap.
make_work_dir() {
    if [[ -z "$work_dir" ]]; then
        work_dir="$(mktemp -d "${TMPDIR:-/tmp}/certGen.XXXXXXXX")"
        chmod 700 "$work_dir"
    fi
}

# The iotca binary: $IOTCA_BIN, else PATH, else next to this script, else
# the newer of ../target/release/iotca and ../target/debug/iotca.
find_iotca() {
    if [[ -n "${IOTCA_BIN:-}" ]]; then
        [[ -x "$IOTCA_BIN" ]] || die 2 "IOTCA_BIN=$IOTCA_BIN is not an executable file"
        printf '%s' "$IOTCA_BIN"
        return
    fi
    local found
    if found="$(type -P iotca)"; then
        printf '%s' "$found"
        return
    fi
    # Next to the script as invoked, then next to the file it links to.
    local dirs=() here resolved
    here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
    dirs+=("$here")
    if resolved="$(readlink -f -- "${BASH_SOURCE[0]}" 2>/dev/null)"; then
        resolved="$(dirname -- "$resolved")"
        [[ "$resolved" == "$here" ]] || dirs+=("$resolved")
    fi
    for here in "${dirs[@]}"; do
        if [[ -x "$here/iotca" && ! -d "$here/iotca" ]]; then
            printf '%s' "$here/iotca"
            return
        fi
    done
    for here in "${dirs[@]}"; do
        local release="$here/../target/release/iotca" debug="$here/../target/debug/iotca"
        if [[ -x "$release" && -x "$debug" ]]; then
            if [[ "$release" -nt "$debug" ]]; then
                printf '%s' "$release"
            else
                printf '%s' "$debug"
            fi
            return
        fi
        for found in "$release" "$debug"; do
            if [[ -x "$found" ]]; then
                printf '%s' "$found"
                return
            fi
        done
    done
    die 2 "iotca not found: put it on PATH, next to this script, or set IOTCA_BIN=/path/to/iotca (build it with 'cargo build --release')"
}

# True when a PEM key file is encrypted (PKCS#8 or legacy OpenSSL PEM).
key_is_encrypted() {
    [[ -f "$1" ]] && grep -qs -e '-----BEGIN ENCRYPTED PRIVATE KEY-----' -e 'Proc-Type: 4,ENCRYPTED' -- "$1"
}

# Moves the existing files among "$@" to archive/<UTC timestamp>/, keeping
# their path relative to the home. Prints where they went.
archive_files() {
    local f existing=()
    for f in "$@"; do
        if [[ -e "$f" || -L "$f" ]]; then
            existing+=("$f")
        fi
    done
    if [[ ${#existing[@]} -eq 0 ]]; then
        return 0
    fi
    local stamp dir n=0
    stamp="$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p archive
    chmod 700 archive
    dir="archive/$stamp"
    until mkdir -m 700 -- "$dir" 2>/dev/null; do
        n=$((n + 1))
        [[ $n -lt 1000 ]] || die 2 "cannot create a directory under archive/ to keep the previous files"
        dir="archive/$stamp-$n"
    done
    for f in "${existing[@]}"; do
        mkdir -p -- "$dir/$(dirname -- "$f")" # inside the 0700 archive directory
        mv -- "$f" "$dir/$f"
    done
    printf 'archived the previous %s to %s\n' "${existing[*]}" "$dir"
}

# Copies $1 to $2 (mode $3) through a temporary file renamed into place.
place_copy() {
    local src="$1" dst="$2" mode="$3" tmp
    tmp="$(dirname -- "$dst")/.certgen-tmp-$$-${dst##*/}"
    (umask 077 && cp -- "$src" "$tmp")
    chmod "$mode" -- "$tmp"
    mv -f -- "$tmp" "$dst"
}

# Passes the passphrase to iotca for a signing CA whose key is encrypted:
# IOTCA_PASSPHRASE when set, else certGen.sh's '1234'.
export_passphrase_for() {
    if key_is_encrypted "$1" && [[ -z "${IOTCA_PASSPHRASE:-}" ]]; then
        export IOTCA_PASSPHRASE="$default_ca_passphrase"
    fi
}

days_args=()
set_days_args() {
    if [[ -n "$days" ]]; then
        [[ "$days" =~ ^[0-9]+$ ]] || die 2 "CERTGEN_DAYS='$days' is not a number of days"
        days_args=("$@" "$days")
    fi
}

not_for_production() {
    warn "these certificates are for tests and labs only, not for production."
}

# create_root_and_intermediate
create_root_and_intermediate() {
    local iotca
    iotca="$(find_iotca)"
    if [[ -n "$days" ]]; then
        set_days_args --days
        days_args+=(--intermediate-days "$days")
    fi
    echo "Creating the Root CA and the Intermediate CA ($algorithm)"
    echo "-----------------------------------"
    "$iotca" --home . ca init --algorithm "$algorithm" --force ${days_args[@]+"${days_args[@]}"}
    if [[ -n "${IOTCA_PASSPHRASE:-}" ]]; then
        echo "The CA keys are encrypted with the passphrase in IOTCA_PASSPHRASE."
    fi
    echo ""
    echo "CA Root Certificate Generated At:"
    echo "    certs/azure-iot-test-only.root.ca.cert.pem"
    echo "Intermediate CA Certificate Generated At:"
    echo "    certs/azure-iot-test-only.intermediate.cert.pem"
    echo "Root + Intermediate CA Chain Certificate Generated At:"
    echo "    $chain_cert"
    not_for_production
}

# create_verification_certificate <code>
create_verification_certificate() {
    local code="$1" iotca
    iotca="$(find_iotca)"
    export_passphrase_for "$root_key"
    echo "Creating the Verification Certificate (CN=$code), signed by the root"
    echo "-----------------------------------"
    "$iotca" --home . verification-cert --ca root --algorithm "$algorithm" -- "$code"
    echo ""
    echo "Verification Certificate Generated At:"
    echo "    certs/verification-code.cert.pem"
    not_for_production
}

# Issues a leaf for <id> signed by <ca> and puts it in place as new-device.*.
create_device() {
    local id="$1" ca="$2" what="$3" iotca
    iotca="$(find_iotca)"
    local prefix="new-device"
    local targets=("certs/$prefix.cert.pem" "certs/$prefix-full-chain.cert.pem"
        "private/$prefix.key.pem" "certs/$prefix.cert.pfx")
    local issued=("certs/$id.cert.pem" "certs/$id-full-chain.cert.pem"
        "private/$id.key.pem" "certs/$id.cert.pfx")
    local f
    if [[ "$id" == "$prefix" ]]; then
        archive_files "${targets[@]}"
    else
        for f in "${issued[@]}"; do
            if [[ -e "$f" || -L "$f" ]]; then
                die 2 "$f already exists (a device '$id' issued with iotca); this script writes new-device.* and will not touch it. Re-issue that device with 'iotca device create $id --force', or move its files away first"
            fi
        done
    fi
    if [[ "$ca" == "root" ]]; then
        export_passphrase_for "$root_key"
    else
        export_passphrase_for "$intermediate_key"
    fi
    set_days_args --days
    make_work_dir
    local pfx_args=(--pfx --pfx-password-file "$work_dir/pfx-password")
    (umask 077 && printf '%s\n' "$pfx_password" >"$work_dir/pfx-password")
    if [[ "${CERTGEN_PFX_LEGACY:-}" == "1" ]]; then
        pfx_args+=(--pfx-legacy)
    fi
    echo "Creating $what Certificate (CN=$id, $algorithm), signed by the $ca CA"
    echo "----------------------------------------"
    "$iotca" -q --home . device create --ca "$ca" --algorithm "$algorithm" \
        "${pfx_args[@]}" ${days_args[@]+"${days_args[@]}"} -- "$id"
    if [[ "$id" != "$prefix" ]]; then
        archive_files "${targets[@]}"
        local i
        for i in 0 1 2 3; do
            mv -- "${issued[$i]}" "${targets[$i]}"
        done
    fi
    echo ""
    echo "$what Certificate Generated At:"
    echo "    certs/$prefix.cert.pem"
    echo "    certs/$prefix-full-chain.cert.pem   (leaf, then every CA up to the root)"
    echo "    private/$prefix.key.pem"
    echo "$what PFX Certificate Generated At:"
    echo "    certs/$prefix.cert.pfx"
    warn "certs/$prefix.cert.pfx is protected with the password '$pfx_password', as certGen.sh does; anyone can open it. For real devices use 'iotca device create ID --pfx --pfx-password-file FILE'."
    not_for_production
}

# create_edge_device_certificate <name>: a CA with CN <name>.ca under the
# intermediate (iotca CA '<name>'), copied to new-edge-device.*.
create_edge_device_certificate() {
    local name="$1" iotca
    iotca="$(find_iotca)"
    local prefix="new-edge-device"
    make_work_dir
    local template="$work_dir/edge-ca.toml"
    "$iotca" template show edge-ca >"$template"
    if key_is_encrypted "$intermediate_key"; then
        export_passphrase_for "$intermediate_key"
    else
        unset IOTCA_PASSPHRASE
    fi
    set_days_args --days
    echo "Creating Edge Device CA Certificate (CN=$name.ca, $algorithm), signed by the intermediate CA"
    echo "----------------------------------------"
    # certGen.sh writes the edge CA key unencrypted (the IoT Edge runtime
    # reads it as is), even when the CA keys are encrypted.
    "$iotca" --home . ca intermediate "$name" --parent intermediate --cn "$name.ca" \
        --algorithm "$algorithm" --template "$template" --unencrypted-key --force \
        ${days_args[@]+"${days_args[@]}"}
    local src_cert="certs/$name.cert.pem" src_key="private/$name.key.pem"
    local src_chain="certs/$name.chain.cert.pem"
    local dst_cert="certs/$prefix.cert.pem" dst_key="private/$prefix.key.pem"
    local dst_chain="certs/$prefix-full-chain.cert.pem"
    local key_src="$src_key"
    if [[ "$name" == "$prefix" ]]; then
        archive_files "$dst_chain" "certs/$prefix.cert.pfx"
    else
        archive_files "$dst_cert" "$dst_key" "$dst_chain" "certs/$prefix.cert.pfx"
        place_copy "$src_cert" "$dst_cert" 644
        place_copy "$key_src" "$dst_key" 600
    fi
    place_copy "$src_chain" "$dst_chain" 644
    echo ""
    echo "Edge Device Certificate Generated At:"
    echo "    $dst_cert"
    echo "    $dst_chain   (edge CA, intermediate, root)"
    echo "    $dst_key"
    echo "The edge CA is also iotca CA '$name': issue downstream devices with 'iotca device create ID --ca $name'."
    not_for_production
}

need_subject() {
    if [[ $1 -ne 2 ]]; then
        echo "Usage: ${script_name} $2 <subjectName>" >&2
        exit 2
    fi
}

main() {
    local cmd="${1-}"
    case "$cmd" in
    create_root_and_intermediate)
        if [[ $# -ne 1 ]]; then
            echo "Usage: ${script_name} create_root_and_intermediate" >&2
            exit 2
        fi
        create_root_and_intermediate
        ;;
    create_verification_certificate)
        need_subject "$#" "$cmd"
        create_verification_certificate "$2"
        ;;
    create_device_certificate)
        need_subject "$#" "$cmd"
        create_device "$2" root "Leaf Device"
        ;;
    create_device_certificate_from_intermediate)
        need_subject "$#" "$cmd"
        create_device "$2" intermediate "Leaf Device"
        ;;
    create_edge_device_certificate)
        need_subject "$#" "$cmd"
        create_edge_device_certificate "$2"
        ;;
    -h | --help | help)
        usage
        ;;
    *)
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"

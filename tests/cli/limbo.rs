//! `iotca verify` against C2SP x509-limbo: the public suite that OpenSSL,
//! Go, rustls-webpki and pyca are measured with.
//!
//! Every testcase in `shared/conformance/x509-limbo/cases.json` (its README
//! says how the 100 were chosen) runs through the real binary as
//! `iotca verify PEER+UNTRUSTED --ca TRUSTED... --at VALIDATION_TIME --json`,
//! and iotca's verdict is compared with limbo's `expected_result`.
//!
//! Two of iotca's DPS rules are beside the point of limbo's cases, as the
//! suite's README says, and are not counted against a case:
//! `leaf_eku_lacks_client_auth` when limbo's leaf is a TLS server
//! certificate (EKU serverAuth without clientAuth), and
//! `leaf_missing_cn`/`leaf_multiple_cn` (limbo never requires a CN). Every
//! other problem counts, so a case limbo expects to fail agrees only when
//! iotca fails it for some reason other than those.
//!
//! Where iotca's documented rules differ from limbo on purpose, the case is
//! in [`DELIBERATE`] with its reason (the same table is in the README). The
//! test fails when a case outside the table disagrees, and when a case in
//! the table agrees (the row is stale).
//!
//! The folder is found via `IOTCA_LIMBO_DIR` or at `<repo>/../shared/...`;
//! when it is absent the test is skipped visibly, unless `CI` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Cases where iotca's verdict differs from limbo's on purpose: case id, reason.
const DELIBERATE: &[(&str, &str)] = &[
    // The leaf must not be a CA.
    (
        "rfc5280::ca-as-leaf",
        "the leaf is a CA (CA:TRUE); DPS device certificates are end entities, so iotca says leaf_is_ca",
    ),
    (
        "pathlen::validation-ignores-pathlen-in-leaf",
        "the leaf is a CA (CA:TRUE, pathlen:0); DPS device certificates are end entities, so iotca says leaf_is_ca",
    ),
    // AKI/SKI are not required: links are found by name and decided by signature.
    (
        "rfc5280::aki::leaf-missing-aki",
        "AKI is not required: iotca links by name and signature, AKI only orders candidates (openssl accepts it without -x509_strict)",
    ),
    (
        "rfc5280::aki::intermediate-missing-aki",
        "AKI is not required: iotca links by name and signature, AKI only orders candidates (openssl accepts it without -x509_strict)",
    ),
    (
        "rfc5280::aki::cross-signed-root-missing-aki",
        "AKI is not required, and a group CA is trusted as given whoever else cross-signed it",
    ),
    (
        "rfc5280::ski::root-missing-ski",
        "SKI is not required: iotca links by name and signature, SKI only orders candidates (openssl accepts it without -x509_strict)",
    ),
    (
        "rfc5280::ski::intermediate-missing-ski",
        "SKI is not required: iotca links by name and signature, SKI only orders candidates (openssl accepts it without -x509_strict)",
    ),
    (
        "webpki::aki::root-with-aki-missing-keyidentifier",
        "the group CA's own AKI is not read: a group CA is the trust anchor, its issuer fields do not matter (openssl agrees)",
    ),
    (
        "webpki::aki::root-with-aki-authoritycertissuer",
        "the group CA's own AKI is not read: a group CA is the trust anchor, its issuer fields do not matter",
    ),
    (
        "webpki::aki::root-with-aki-authoritycertserialnumber",
        "the group CA's own AKI is not read: a group CA is the trust anchor, its issuer fields do not matter",
    ),
    (
        "webpki::aki::root-with-aki-all-fields",
        "the group CA's own AKI is not read: a group CA is the trust anchor, its issuer fields do not matter",
    ),
    (
        "webpki::aki::root-with-aki-ski-mismatch",
        "the group CA's own AKI is not read: a group CA is the trust anchor, its issuer fields do not matter",
    ),
    // RSA sizes are accepted.
    (
        "webpki::forbidden-weak-rsa-key-in-root",
        "RSA 1024 to 8192 bits is accepted (below 2048 warns weak_rsa_key), as legacy device fleets need; openssl accepts it",
    ),
    (
        "webpki::forbidden-weak-rsa-in-leaf",
        "RSA 1024 to 8192 bits is accepted (below 2048 warns weak_rsa_key), as legacy device fleets need; openssl accepts it",
    ),
    (
        "webpki::forbidden-rsa-not-divisible-by-8-in-root",
        "any RSA size from 1024 to 8192 bits is accepted, not only multiples of 8; openssl accepts it",
    ),
    (
        "webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf",
        "any RSA size from 1024 to 8192 bits is accepted, not only multiples of 8; openssl accepts it",
    ),
    // Not checked by DESIGN's rules (section 5, "verify").
    (
        "rfc5280::leaf-ku-keycertsign",
        "the leaf's keyUsage is not checked (DESIGN's leaf rules: not a CA, one CN, clientAuth); openssl -x509_strict rejects it",
    ),
    (
        "rfc5280::serial::too-long",
        "serial numbers are not checked (a profile rule for issuers, not a path rule); openssl accepts it",
    ),
    (
        "rfc5280::serial::zero",
        "serial numbers are not checked (a profile rule for issuers, not a path rule); openssl accepts it",
    ),
    (
        "webpki::eku::ee-without-eku",
        "a leaf without EKU is accepted (RFC 5280 4.2.1.12: no EKU, no restriction); webpki's pedantic CABF rule; openssl accepts it",
    ),
    (
        "webpki::malformed-aia",
        "a non-critical extension iotca does not process is not decoded (AIA is not used); CABF rule; openssl accepts it",
    ),
    (
        "webpki::v1-cert",
        "the version field is not checked (CABF requires v3 for TLS servers); openssl accepts it",
    ),
];

const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

fn limbo_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("IOTCA_LIMBO_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/x509-limbo"),
    };
    if dir.join("cases.json").is_file() {
        return Some(dir);
    }
    let why = format!(
        "x509-limbo conformance cases not found at {} (set IOTCA_LIMBO_DIR)",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{why}; CI requires them");
    }
    eprintln!("SKIPPED: {why}");
    None
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What iotca says about one case: exit code and the problem codes that
/// count (the ones beside limbo's point left out).
struct Outcome {
    exit: i32,
    counted: Vec<String>,
    all: Vec<String>,
}

fn run_case(case: &Value, dir: &Path) -> Outcome {
    let peer = case["peer_certificate"].as_str().expect("peer_certificate");
    let mut chain = String::from(peer.trim_end());
    for u in strings(&case["untrusted_intermediates"]) {
        chain.push('\n');
        chain.push_str(u.trim_end());
    }
    chain.push('\n');
    let chain_path = dir.join("peer.pem");
    std::fs::write(&chain_path, chain).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iotca"));
    cmd.arg("verify").arg(&chain_path);
    for (i, t) in strings(&case["trusted_certs"]).into_iter().enumerate() {
        let p = dir.join(format!("trusted-{i}.pem"));
        std::fs::write(&p, t).unwrap();
        cmd.arg("--ca").arg(p);
    }
    if let Some(at) = case["validation_time"].as_str() {
        cmd.arg("--at").arg(at);
    }
    cmd.arg("--json");
    let out = cmd.output().expect("run iotca");
    let exit = out.status.code().unwrap_or(-1);
    let all: Vec<String> = serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|j| {
            j["problems"].as_array().map(|ps| {
                ps.iter()
                    .filter_map(|p| p["code"].as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default();
    let eku = strings(&case["leaf_eku"]);
    let server_leaf = eku.contains(&SERVER_AUTH) && !eku.contains(&CLIENT_AUTH);
    let counted = all
        .iter()
        .filter(|c| match c.as_str() {
            "leaf_missing_cn" | "leaf_multiple_cn" => false,
            "leaf_eku_lacks_client_auth" => !server_leaf,
            _ => true,
        })
        .cloned()
        .collect();
    Outcome { exit, counted, all }
}

#[test]
fn limbo_cases_agree_except_the_documented_differences() {
    let Some(dir) = limbo_dir() else { return };
    let json: Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let cases = json["testcases"].as_array().expect("testcases");
    assert!(!cases.is_empty(), "no testcases in cases.json");

    // The table names real cases, once each.
    let ids: Vec<&str> = cases.iter().filter_map(|c| c["id"].as_str()).collect();
    for (i, (id, why)) in DELIBERATE.iter().enumerate() {
        assert!(ids.contains(id), "DELIBERATE names {id}, not a limbo case");
        assert!(!why.is_empty());
        assert!(
            DELIBERATE[..i].iter().all(|(other, _)| other != id),
            "{id} is twice in DELIBERATE"
        );
    }

    let tmp = tempfile::tempdir().unwrap();
    let mut agree = 0;
    let mut applicable = 0;
    let mut filtered = Vec::new();
    let mut wrong = Vec::new();
    for (n, case) in cases.iter().enumerate() {
        let id = case["id"].as_str().unwrap();
        let expected = case["expected_result"].as_str().unwrap();
        let dir = tmp.path().join(n.to_string());
        std::fs::create_dir(&dir).unwrap();
        let o = run_case(case, &dir);
        assert!(
            o.exit == 0 || o.exit == 1,
            "{id}: iotca could not run (exit {})",
            o.exit
        );
        // Exit code and problems agree with each other.
        assert_eq!(o.exit == 0, o.all.is_empty(), "{id}: exit {}", o.exit);
        let iotca = if o.counted.is_empty() {
            "SUCCESS"
        } else {
            "FAILURE"
        };
        if o.exit == 1 && o.counted.is_empty() {
            filtered.push(id);
        }
        let agrees = iotca == expected;
        match DELIBERATE.iter().find(|(d, _)| *d == id) {
            Some((_, why)) => assert!(
                !agrees,
                "{id} is in DELIBERATE ({why}) but iotca now agrees with limbo ({expected}): drop the row here and in the README"
            ),
            None => {
                applicable += 1;
                if agrees {
                    agree += 1;
                } else {
                    wrong.push(format!("{id}: limbo {expected}, iotca {iotca} {:?}", o.all));
                }
            }
        }
    }
    eprintln!(
        "x509-limbo: {agree} of {applicable} applicable cases agree ({} cases, {} deliberate differences); \
         {} failed only on a rule beside limbo's point (server EKU, CN): {filtered:?}",
        cases.len(),
        DELIBERATE.len(),
        filtered.len()
    );
    assert!(
        wrong.is_empty(),
        "{} case(s) disagree with limbo:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The README's table of deliberate differences is this table.
#[test]
fn readme_lists_every_deliberate_difference() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    for (id, _) in DELIBERATE {
        assert!(
            readme.contains(&format!("| `{id}` |")),
            "README.md's table of deliberate x509-limbo differences lacks `{id}`"
        );
    }
    let rows = readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("::"))
        .count();
    assert_eq!(
        rows,
        DELIBERATE.len(),
        "README.md's x509-limbo table has {rows} rows, the test's table {}",
        DELIBERATE.len()
    );
}

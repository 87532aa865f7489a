//! Hardening tests (issue 7): the real `iotca` binary under concurrent
//! writers, a SIGKILL mid-issue, hostile input files, path tricks and
//! permissive umasks. One test per property; each can fail.
//!
//! Results are judged with independent tools: openssl (`verify`, `x509`),
//! ring (PKCS#8 keys), x509-parser (certificates) and the file system.
//! Timings and peak memory of the hostile-input runs are printed (run with
//! `--nocapture` to see them).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_iotca");

const ROOT_CERT: &str = "certs/azure-iot-test-only.root.ca.cert.pem";
const INT_CERT: &str = "certs/azure-iot-test-only.intermediate.cert.pem";
const INT_KEY: &str = "private/azure-iot-test-only.intermediate.key.pem";
const CHAIN: &str = "certs/azure-iot-test-only.chain.ca.cert.pem";

/// Wall-clock bound for one hostile-input run (the issue asks for "well
/// under a second or two"; the bound is generous for a loaded CI machine).
const HOSTILE_TIME_LIMIT: Duration = Duration::from_secs(10);
/// Peak resident memory bound for one hostile-input run.
const HOSTILE_RSS_LIMIT_KB: u64 = 300 * 1024;

// ---------------------------------------------------------------------------
// Running iotca
// ---------------------------------------------------------------------------

/// A temporary directory holding the home at `<tmp>/pki` (plus inputs
/// beside it, outside the home).
struct Fixture {
    tmp: TempDir,
    home: PathBuf,
}

impl Fixture {
    /// A home with a root and the default intermediate (`ca init`).
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = tmp.path().join("pki");
        let f = Fixture { tmp, home };
        f.ok(&["ca", "init"]);
        f
    }

    /// A file path beside the home (outside it).
    fn out(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// A path inside the home.
    fn p(&self, rel: &str) -> PathBuf {
        self.home.join(rel)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--home")
            .arg(&self.home)
            .env_remove("IOTCA_PASSPHRASE");
        c.env_remove("IOTCA_HOME");
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd().args(args).output().expect("run iotca")
    }

    fn ok(&self, args: &[&str]) -> std::process::Output {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "iotca {args:?} failed ({:?}):\n{}\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        no_panic(&o.stderr, &format!("{args:?}"));
        o
    }
}

fn no_panic(stderr: &[u8], what: &str) {
    let s = String::from_utf8_lossy(stderr);
    assert!(
        !s.contains("panicked") && !s.contains("RUST_BACKTRACE"),
        "{what}: iotca panicked:\n{s}"
    );
}

fn write_ids(path: &Path, ids: &[String]) {
    let mut text = ids.join("\n");
    text.push('\n');
    fs::write(path, text).unwrap();
}

fn openssl(args: &[&OsString]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed")
}

// ---------------------------------------------------------------------------
// Independent checks of keys and certificates
// ---------------------------------------------------------------------------

/// The DER of every PEM block of `label` in a file.
fn pem_blocks(path: &Path, label: &str) -> Vec<Vec<u8>> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let blocks = pem::parse_many(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    blocks
        .into_iter()
        .filter(|b| b.tag() == label)
        .map(|b| b.into_contents())
        .collect()
}

/// The single certificate in a PEM file, as DER, checked to parse.
fn cert_der(path: &Path) -> Vec<u8> {
    let certs = pem_blocks(path, "CERTIFICATE");
    assert_eq!(certs.len(), 1, "{}: one certificate", path.display());
    let der = certs.into_iter().next().unwrap();
    let (rest, _) = x509_parser::parse_x509_certificate(&der)
        .unwrap_or_else(|e| panic!("{}: torn or malformed certificate: {e}", path.display()));
    assert!(rest.is_empty(), "{}: trailing bytes", path.display());
    der
}

/// The public key point of a certificate (the SPKI bit string).
fn cert_public_key(der: &[u8]) -> Vec<u8> {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    c.public_key().subject_public_key.data.to_vec()
}

fn cert_serial(der: &[u8]) -> Vec<u8> {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    c.raw_serial().to_vec()
}

fn cert_cn(der: &[u8]) -> String {
    let (_, c) = x509_parser::parse_x509_certificate(der).unwrap();
    c.subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The public key point of a P-256 PKCS#8 PEM key, parsed by ring (which
/// rejects anything that is not a complete, consistent PKCS#8 EC key).
fn key_public_key(path: &Path) -> Vec<u8> {
    use ring::signature::KeyPair as _;
    let keys = pem_blocks(path, "PRIVATE KEY");
    assert_eq!(keys.len(), 1, "{}: one PKCS#8 key", path.display());
    let kp = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &keys[0],
        &ring::rand::SystemRandom::new(),
    )
    .unwrap_or_else(|e| panic!("{}: not a readable PKCS#8 P-256 key: {e}", path.display()));
    kp.public_key().as_ref().to_vec()
}

/// Runs `openssl verify` over many certificates at once; returns the files
/// that did not verify.
fn openssl_verify_all(root: &Path, untrusted: &Path, certs: &[PathBuf]) -> Vec<String> {
    let mut failed = Vec::new();
    for chunk in certs.chunks(2000) {
        let mut args: Vec<OsString> = vec![
            "verify".into(),
            "-CAfile".into(),
            root.into(),
            "-untrusted".into(),
            untrusted.into(),
        ];
        args.extend(chunk.iter().map(|p| p.as_os_str().to_owned()));
        let o = Command::new("openssl").args(&args).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let oks: HashSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_suffix(": OK"))
            .collect();
        for p in chunk {
            let s = p.to_string_lossy();
            if !oks.contains(s.as_ref()) {
                failed.push(format!(
                    "{s}: {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .find(|l| l.contains(s.as_ref()))
                        .unwrap_or("not verified")
                ));
            }
        }
    }
    failed
}

/// Checks that every ID has key, certificate and full chain, that they
/// match and that the chain is the certificate then the CA chain. Returns
/// the DER of each device certificate.
fn check_devices(f: &Fixture, ids: &[String]) -> Vec<Vec<u8>> {
    let ca_chain = pem_blocks(&f.p(CHAIN), "CERTIFICATE");
    let mut ders = Vec::with_capacity(ids.len());
    for id in ids {
        let key = f.p(&format!("private/{id}.key.pem"));
        let cert = f.p(&format!("certs/{id}.cert.pem"));
        let full = f.p(&format!("certs/{id}-full-chain.cert.pem"));
        let der = cert_der(&cert);
        assert_eq!(cert_cn(&der), *id, "{}: CN", cert.display());
        assert_eq!(
            key_public_key(&key),
            cert_public_key(&der),
            "{}: certificate does not match its key",
            cert.display()
        );
        let mut expected = vec![der.clone()];
        expected.extend(ca_chain.iter().cloned());
        assert_eq!(
            pem_blocks(&full, "CERTIFICATE"),
            expected,
            "{}: not the certificate then the CA chain",
            full.display()
        );
        ders.push(der);
    }
    let certs: Vec<PathBuf> = ids
        .iter()
        .map(|id| f.p(&format!("certs/{id}.cert.pem")))
        .collect();
    let failed = openssl_verify_all(&f.p(ROOT_CERT), &f.p(INT_CERT), &certs);
    assert!(
        failed.is_empty(),
        "{} certificates do not verify to the root, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    ders
}

// ---------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------

#[test]
fn concurrent_device_runs_and_a_ca_intermediate_all_succeed_without_reusing_a_serial() {
    let f = Fixture::new();
    let sets: Vec<Vec<String>> = (0..3)
        .map(|s| (0..200).map(|i| format!("conc-{s}-{i:04}")).collect())
        .collect();
    for (s, ids) in sets.iter().enumerate() {
        write_ids(&f.out(&format!("ids-{s}.txt")), ids);
    }
    let start = Instant::now();
    let mut children = Vec::new();
    for s in 0..3 {
        let file = f.out(&format!("ids-{s}.txt"));
        let mut c = f.cmd();
        c.args(["device", "create", "--ids-file"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        children.push((format!("device create set {s}"), c.spawn().unwrap()));
    }
    let mut c = f.cmd();
    c.args(["ca", "intermediate", "line-7"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    children.push(("ca intermediate line-7".into(), c.spawn().unwrap()));
    for (what, child) in children {
        let o = child.wait_with_output().unwrap();
        no_panic(&o.stderr, &what);
        assert!(
            o.status.success(),
            "{what} failed ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    eprintln!("concurrency: 600 devices + 1 CA in {:?}", start.elapsed());

    let all: Vec<String> = sets.concat();
    let mut ders = check_devices(&f, &all);
    // The new CA chains to the root and its chain file is complete.
    let line7 = f.p("certs/line-7.cert.pem");
    ders.push(cert_der(&line7));
    assert!(
        openssl_verify_all(
            &f.p(ROOT_CERT),
            &f.p(INT_CERT),
            std::slice::from_ref(&line7)
        )
        .is_empty(),
        "line-7 does not verify to the root"
    );
    assert_eq!(
        key_public_key(&f.p("private/line-7.key.pem")),
        cert_public_key(ders.last().unwrap())
    );
    for ca in [ROOT_CERT, INT_CERT] {
        ders.push(cert_der(&f.p(ca)));
    }
    let mut seen: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, d) in ders.iter().enumerate() {
        if let Some(j) = seen.insert(cert_serial(d), i) {
            panic!("serial reused by certificates #{j} and #{i}");
        }
    }
    // No leftovers of the atomic writes.
    for dir in ["certs", "private"] {
        let tmp: Vec<_> = fs::read_dir(f.p(dir))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".iotca-tmp"))
            .collect();
        assert!(tmp.is_empty(), "temporary files left in {dir}: {tmp:?}");
    }
}

#[test]
fn the_same_device_id_from_two_processes_one_wins_and_the_other_exits_2() {
    let f = Fixture::new();
    for round in 0..4 {
        let id = format!("race-{round}");
        let spawn = || {
            let mut c = f.cmd();
            c.args(["device", "create", &id])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().unwrap()
        };
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        no_panic(&a.stderr, "first");
        no_panic(&b.stderr, "second");
        let mut codes = [a.status.code(), b.status.code()];
        codes.sort();
        assert_eq!(
            codes,
            [Some(0), Some(2)],
            "round {round}: exactly one must win:\n{}\n{}",
            String::from_utf8_lossy(&a.stderr),
            String::from_utf8_lossy(&b.stderr)
        );
        let loser = if a.status.code() == Some(2) { &a } else { &b };
        assert!(
            String::from_utf8_lossy(&loser.stderr).contains("already exist"),
            "the loser says why: {}",
            String::from_utf8_lossy(&loser.stderr)
        );
        check_devices(&f, std::slice::from_ref(&id));
    }
}

// ---------------------------------------------------------------------------
// Crash safety
// ---------------------------------------------------------------------------

/// Every PEM file present parses completely: keys with ring as PKCS#8,
/// certificates with openssl. Returns (keys, certs, full chains) by ID.
fn no_torn_files(f: &Fixture) -> (HashSet<String>, HashSet<String>, HashSet<String>) {
    let mut keys = HashSet::new();
    for e in fs::read_dir(f.p("private")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".key.pem") {
            if !id.starts_with("azure-iot-test-only") {
                key_public_key(&e.path());
                keys.insert(id.to_string());
            }
        } else {
            assert!(
                name.starts_with(".iotca-tmp-"),
                "unexpected file in private/: {name}"
            );
            assert_eq!(
                e.metadata().unwrap().mode() & 0o077,
                0,
                "a leftover temporary key file is readable by others: {name}"
            );
        }
    }
    let mut certs = HashSet::new();
    let mut chains = HashSet::new();
    let mut cert_files = Vec::new();
    for e in fs::read_dir(f.p("certs")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("azure-iot-test-only") || name.starts_with(".iotca-tmp-") {
            continue;
        }
        if let Some(id) = name.strip_suffix("-full-chain.cert.pem") {
            let blocks = pem_blocks(&e.path(), "CERTIFICATE");
            assert_eq!(blocks.len(), 3, "{name}: torn full chain");
            chains.insert(id.to_string());
        } else if let Some(id) = name.strip_suffix(".cert.pem") {
            cert_der(&e.path());
            certs.insert(id.to_string());
            cert_files.push(e.path());
        } else {
            panic!("unexpected file in certs/: {name}");
        }
    }
    // openssl reads (and verifies) every certificate file too.
    let failed = openssl_verify_all(&f.p(ROOT_CERT), &f.p(INT_CERT), &cert_files);
    assert!(
        failed.is_empty(),
        "openssl cannot read or verify {} certificates, e.g. {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    (keys, certs, chains)
}

#[test]
fn a_device_run_killed_with_sigkill_leaves_no_torn_file_and_skip_existing_resumes_it() {
    let f = Fixture::new();
    let ids: Vec<String> = (0..3000).map(|i| format!("crash-{i:05}")).collect();
    let file = f.out("ids.txt");
    write_ids(&file, &ids);
    let mut child = f
        .cmd()
        .args(["device", "create", "-q", "--ids-file"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some devices exist, well before it can finish.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while Instant::now() < deadline {
        seen = fs::read_dir(f.p("certs")).map(|d| d.count()).unwrap_or(0);
        if seen >= 3 + 40 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    let (keys, certs, chains) = no_torn_files(&f);
    eprintln!(
        "crash: killed ({status:?}) after seeing {seen} entries; {} keys, {} certs, {} full chains on disk",
        keys.len(),
        certs.len(),
        chains.len()
    );
    assert!(
        status.code().is_none(),
        "the run finished before it could be killed; make it longer"
    );
    assert!(
        keys.len() < ids.len(),
        "the kill came too late to test anything"
    );
    for id in &certs {
        assert!(keys.contains(id), "certificate without its key: {id}");
        let der = cert_der(&f.p(&format!("certs/{id}.cert.pem")));
        assert_eq!(
            key_public_key(&f.p(&format!("private/{id}.key.pem"))),
            cert_public_key(&der),
            "{id}: certificate does not match its key"
        );
    }
    for id in &chains {
        assert!(certs.contains(id), "full chain without certificate: {id}");
    }

    // Make sure both half-written states are present, whatever the kill
    // left: a key without its certificate, and a certificate without its
    // full chain (what a kill between those writes leaves).
    let complete: Vec<&String> = ids.iter().filter(|id| chains.contains(*id)).collect();
    assert!(complete.len() >= 2, "need two complete devices to cut back");
    let key_only = complete[0].clone();
    let cert_only = complete[1].clone();
    fs::remove_file(f.p(&format!("certs/{key_only}-full-chain.cert.pem"))).unwrap();
    fs::remove_file(f.p(&format!("certs/{key_only}.cert.pem"))).unwrap();
    fs::remove_file(f.p(&format!("certs/{cert_only}-full-chain.cert.pem"))).unwrap();
    let kept_key = fs::read(f.p(&format!("private/{key_only}.key.pem"))).unwrap();
    let kept_cert = fs::read(f.p(&format!("certs/{cert_only}.cert.pem"))).unwrap();
    let all_keys: BTreeMap<String, Vec<u8>> = keys
        .iter()
        .map(|id| {
            (
                id.clone(),
                fs::read(f.p(&format!("private/{id}.key.pem"))).unwrap(),
            )
        })
        .collect();

    // Without --skip-existing the next run refuses (exit 2), writing nothing.
    let o = f
        .cmd()
        .args(["device", "create", "-q", "--ids-file"])
        .arg(&file)
        .output()
        .unwrap();
    no_panic(&o.stderr, "rerun");
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = f
        .cmd()
        .args(["device", "create", "-q", "--skip-existing", "--ids-file"])
        .arg(&file)
        .output()
        .unwrap();
    no_panic(&o.stderr, "resume");
    assert!(
        o.status.success(),
        "--skip-existing did not resume ({:?}): {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    check_devices(&f, &ids);
    // The resume reused every key it found: none lost, none replaced.
    for (id, bytes) in &all_keys {
        assert_eq!(
            &fs::read(f.p(&format!("private/{id}.key.pem"))).unwrap(),
            bytes,
            "{id}: the key was replaced"
        );
    }
    assert_eq!(
        fs::read(f.p(&format!("private/{key_only}.key.pem"))).unwrap(),
        kept_key
    );
    assert_eq!(
        fs::read(f.p(&format!("certs/{cert_only}.cert.pem"))).unwrap(),
        kept_cert,
        "a complete certificate was reissued"
    );
    let (keys, certs, chains) = no_torn_files(&f);
    assert_eq!((keys.len(), certs.len(), chains.len()), (3000, 3000, 3000));
}

// ---------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------

/// One bounded run of iotca: output to files (no pipe can fill up), a
/// deadline, and the peak RSS from GNU time when installed, else from
/// /proc polling.
struct Bounded {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    max_rss_kb: Option<u64>,
}

fn gnu_time() -> Option<&'static str> {
    let ok = Command::new("/usr/bin/time")
        .args(["-f", "%M", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some("/usr/bin/time")
}

fn proc_hwm_kb(pid: u32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn run_bounded(home: &Path, args: &[OsString], scratch: &Path, limit: Duration) -> Bounded {
    let out = scratch.join("stdout");
    let err = scratch.join("stderr");
    let rss = scratch.join("rss");
    let _ = fs::remove_file(&rss);
    let time = gnu_time();
    let mut c = match time {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg("-f").arg("%M").arg("-o").arg(&rss).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    c.arg("--home")
        .arg(home)
        .args(args)
        .env_remove("IOTCA_HOME")
        .env_remove("IOTCA_PASSPHRASE")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .process_group(0);
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let mut hwm = None;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if time.is_none() {
            hwm = proc_hwm_kb(child.id()).or(hwm);
        }
        if start.elapsed() > limit * 3 {
            // Hung: kill the whole group (GNU time and iotca).
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    let max_rss_kb = match time {
        Some(_) => fs::read_to_string(&rss)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok())),
        None => hwm,
    };
    Bounded {
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(&out).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&fs::read(&err).unwrap_or_default()).into_owned(),
        elapsed,
        max_rss_kb,
    }
}

/// The hostile files, made once per test in `dir`, with the exit codes each
/// command may answer for them.
struct HostileCase {
    name: &'static str,
    path: PathBuf,
    /// Allowed codes for (verify, inspect, audit, provision, enroll check).
    codes: [&'static [i32]; 5],
}

const BAD: &[i32] = &[1, 2];
const TWO: &[i32] = &[2];
const ONE: &[i32] = &[1];

/// A device certificate with a 10,000-character CN, signed by the home's
/// intermediate (rcgen does not limit the CN length).
fn long_cn_cert(f: &Fixture) -> String {
    let ca_pem = fs::read_to_string(f.p(INT_CERT)).unwrap();
    let ca_key = rcgen::KeyPair::from_pem(&fs::read_to_string(f.p(INT_KEY)).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "a".repeat(10_000));
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(30);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    cert.pem()
}

fn hostile_cases(f: &Fixture) -> Vec<HostileCase> {
    let dir = f.out("hostile");
    fs::create_dir_all(&dir).unwrap();
    f.ok(&["device", "create", "hostile-dev"]);
    let leaf_pem = fs::read_to_string(f.p("certs/hostile-dev.cert.pem")).unwrap();
    let leaf_der = cert_der(&f.p("certs/hostile-dev.cert.pem"));
    let chain_pem = fs::read_to_string(f.p("certs/hostile-dev-full-chain.cert.pem")).unwrap();
    let mut cases = Vec::new();
    let mut add = |name: &'static str, bytes: &[u8], codes: [&'static [i32]; 5]| {
        let path = dir.join(format!("{name}.pem"));
        fs::write(&path, bytes).unwrap();
        cases.push(HostileCase { name, path, codes });
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let random: Vec<u8> = (0..256 * 1024).map(|_| rng.r#gen()).collect();
    let nonpem = [BAD, TWO, ONE, BAD, BAD];
    add("random-bytes", &random, nonpem);
    add("zeros-8mb", &vec![0u8; 8 * 1024 * 1024], nonpem);
    add("empty", b"", nonpem);
    add(
        "bad-base64",
        b"-----BEGIN CERTIFICATE-----\nMIIB!!!not*base64@@@\n-----END CERTIFICATE-----\n",
        nonpem,
    );
    let body = leaf_pem
        .trim()
        .strip_prefix("-----BEGIN CERTIFICATE-----")
        .unwrap()
        .strip_suffix("-----END CERTIFICATE-----")
        .unwrap()
        .to_string();
    add(
        "mismatched-labels",
        format!("-----BEGIN CERTIFICATE-----{body}-----END PRIVATE KEY-----\n").as_bytes(),
        nonpem,
    );
    add(
        "unterminated-begins",
        "-----BEGIN CERTIFICATE-----\n".repeat(100_000).as_bytes(),
        nonpem,
    );
    // audit leaves files holding only keys out (counted as skipped_keys).
    add(
        "private-key",
        &fs::read(f.p("private/hostile-dev.key.pem")).unwrap(),
        [BAD, TWO, &[0, 1], BAD, BAD],
    );
    // BER indefinite-length nesting, 200,000 levels deep.
    add("deep-nesting", &[0x30u8, 0x80].repeat(200_000), nonpem);
    // Truncated DER.
    add("truncated-der", &leaf_der[..leaf_der.len() / 2], nonpem);
    // Bit flips in the outer length, the middle of the TBS, the signature.
    let inspect_either: &[i32] = &[0, 2];
    for (name, pos) in [
        ("flip-length", 1usize),
        ("flip-tbs", leaf_der.len() / 3),
        ("flip-signature", leaf_der.len() - 3),
    ] {
        let mut d = leaf_der.clone();
        d[pos] ^= 0x04;
        let mut text = pem::encode(&pem::Pem::new("CERTIFICATE", d));
        // The rest of the chain, as a device presents it.
        text.push_str(
            chain_pem
                .split_once("-----END CERTIFICATE-----\n")
                .unwrap()
                .1,
        );
        add(name, text.as_bytes(), [BAD, inspect_either, ONE, BAD, BAD]);
    }
    // 5,000 certificates: the leaf, then 5,000 copies of a rogue
    // intermediate with the real intermediate's name and another key.
    let rogue = Fixture::new();
    let rogue_int = fs::read_to_string(rogue.p(INT_CERT)).unwrap();
    let mut bundle = leaf_pem.clone();
    bundle.push_str(&rogue_int.repeat(5_000));
    // The leaf does not reach the root without the real intermediate; the
    // local group on the intermediate legitimately assigns it.
    add(
        "bundle-5000",
        bundle.as_bytes(),
        [ONE, &[0], ONE, &[0, 1], BAD],
    );
    // A CN of 10,000 characters, properly signed by the intermediate.
    let mut long = long_cn_cert(f);
    long.push_str(
        chain_pem
            .split_once("-----END CERTIFICATE-----\n")
            .unwrap()
            .1,
    );
    add(
        "cn-10000",
        long.as_bytes(),
        [&[0, 1], &[0], &[0, 1], BAD, BAD],
    );
    // Over the 16 MiB cap (sparse: nothing is really written).
    let big = dir.join("sparse-17mb.pem");
    fs::File::create(&big)
        .unwrap()
        .set_len(17 * 1024 * 1024)
        .unwrap();
    cases.push(HostileCase {
        name: "sparse-17mb",
        path: big,
        codes: [TWO, TWO, ONE, TWO, TWO],
    });
    cases
}

const COMMANDS: [&str; 5] = ["verify", "inspect", "audit", "provision", "enroll check"];

fn command_args(which: usize, f: &Fixture, file: &Path) -> Vec<OsString> {
    let root: OsString = f.p(ROOT_CERT).into();
    let file: OsString = file.into();
    let v: Vec<OsString> = match which {
        0 => vec!["verify".into(), file, "--ca".into(), root],
        1 => vec!["inspect".into(), file],
        2 => vec!["audit".into(), "--ca".into(), root, file],
        3 => vec!["provision".into(), file],
        _ => vec![
            "enroll".into(),
            "check".into(),
            "--enrollment-id".into(),
            "hostile-dev".into(),
            "--cert".into(),
            file,
            "--group-ca".into(),
            root,
        ],
    };
    v
}

/// Runs one command over every hostile case, then checks every bound,
/// reporting all failures at once.
fn hostile_input_to(which: usize) {
    let f = Fixture::new();
    let cases = hostile_cases(&f);
    // A local DPS store, so provision and audit consult it too.
    f.ok(&[
        "enroll",
        "group",
        "create",
        "hostile-group",
        "--ca",
        f.p(INT_CERT).to_str().unwrap(),
    ]);
    let scratch = f.out("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let args = command_args(which, &f, &case.path);
        let r = run_bounded(&f.home, &args, &scratch, HOSTILE_TIME_LIMIT);
        let rss = r
            .max_rss_kb
            .map_or("?".to_string(), |k| format!("{} MB", k / 1024));
        println!(
            "hostile {:<13} {:<20} exit {:?} in {:>6.3}s, peak RSS {rss}",
            COMMANDS[which],
            case.name,
            r.code,
            r.elapsed.as_secs_f64()
        );
        let allowed = case.codes[which];
        let mut bad = Vec::new();
        if !r.code.is_some_and(|c| allowed.contains(&c)) {
            bad.push(format!("exit {:?}, expected one of {allowed:?}", r.code));
        }
        if r.stderr.contains("panicked") || r.stderr.contains("RUST_BACKTRACE") {
            bad.push("panicked".into());
        }
        if r.elapsed >= HOSTILE_TIME_LIMIT {
            bad.push(format!("took {:?}", r.elapsed));
        }
        if r.max_rss_kb.is_some_and(|k| k >= HOSTILE_RSS_LIMIT_KB) {
            bad.push(format!("peak RSS {rss}"));
        }
        if r.code == Some(2) && !r.stderr.contains("error") {
            bad.push("exit 2 without an error sentence".into());
        }
        if !bad.is_empty() {
            failures.push(format!(
                "{} {}: {}\n  stderr: {}",
                COMMANDS[which],
                case.name,
                bad.join("; "),
                r.stderr.chars().take(400).collect::<String>()
            ));
        }
        let _ = r.stdout;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_input_to_verify() {
    hostile_input_to(0);
}

#[test]
fn hostile_input_to_inspect() {
    hostile_input_to(1);
}

#[test]
fn hostile_input_to_audit() {
    hostile_input_to(2);
}

#[test]
fn hostile_input_to_provision() {
    hostile_input_to(3);
}

#[test]
fn hostile_input_to_enroll_check() {
    hostile_input_to(4);
}

#[test]
fn hostile_records_in_the_local_store_never_panic_or_hang() {
    let f = Fixture::new();
    f.ok(&["device", "create", "victim-dev"]);
    let chain = f.p("certs/victim-dev-full-chain.cert.pem");
    let leaf_pem = fs::read_to_string(f.p("certs/victim-dev.cert.pem")).unwrap();
    let scratch = f.out("scratch");
    fs::create_dir_all(&scratch).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let random: Vec<u8> = (0..64 * 1024).map(|_| rng.r#gen()).collect();
    let good = serde_json::json!({
        "registrationId": "victim-dev",
        "attestation": {"type": "x509", "x509": {"clientCertificates": {"primary": {"certificate": leaf_pem}}}},
        "provisioningStatus": "disabled",
    });
    let with_cert = |c: &str| {
        let mut v = good.clone();
        v["attestation"]["x509"]["clientCertificates"]["primary"]["certificate"] = c.into();
        serde_json::to_vec(&v).unwrap()
    };
    let private_key = fs::read_to_string(f.p("private/victim-dev.key.pem")).unwrap();
    let records: Vec<(&str, Vec<u8>)> = vec![
        ("random-bytes", random),
        ("zeros-8mb", vec![0u8; 8 * 1024 * 1024]),
        ("empty", Vec::new()),
        ("deep-arrays", "[".repeat(1_000_000).into_bytes()),
        ("deep-objects", "{\"a\":".repeat(200_000).into_bytes()),
        (
            "truncated",
            serde_json::to_vec(&good).unwrap()[..40].to_vec(),
        ),
        ("not-an-object", b"[1,2,3]".to_vec()),
        (
            "bad-base64",
            with_cert("-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n"),
        ),
        ("key-as-cert", with_cert(&private_key)),
        ("huge-string", with_cert(&"A".repeat(900_000))),
        ("wrong-id", {
            let mut v = good.clone();
            v["registrationId"] = "../../etc/passwd".into();
            serde_json::to_vec(&v).unwrap()
        }),
        (
            "wrong-types",
            br#"{"registrationId": 7, "attestation": null}"#.to_vec(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes) in &records {
        for (dir, file) in [
            ("dps/enrollments", "victim-dev.json"),
            ("dps/enrollmentGroups", "some-group.json"),
            ("hub/devices", "victim-dev.json"),
        ] {
            let _ = fs::remove_dir_all(f.p("dps"));
            let _ = fs::remove_dir_all(f.p("hub"));
            fs::create_dir_all(f.p(dir)).unwrap();
            fs::write(f.p(&format!("{dir}/{file}")), bytes).unwrap();
            let runs: Vec<(&str, Vec<OsString>, &[i32])> = vec![
                ("enroll list", vec!["enroll".into(), "list".into()], &[2]),
                (
                    "enroll show",
                    vec!["enroll".into(), "show".into(), "victim-dev".into()],
                    &[1, 2],
                ),
                (
                    "provision",
                    vec!["provision".into(), chain.clone().into()],
                    &[1, 2],
                ),
                (
                    "hub device list",
                    vec!["hub".into(), "device".into(), "list".into()],
                    &[2],
                ),
                (
                    "hub device show",
                    vec![
                        "hub".into(),
                        "device".into(),
                        "show".into(),
                        "victim-dev".into(),
                    ],
                    &[1, 2],
                ),
                (
                    "audit",
                    vec![
                        "audit".into(),
                        "--ca".into(),
                        f.p(ROOT_CERT).into(),
                        chain.clone().into(),
                    ],
                    &[0, 1, 2],
                ),
            ];
            for (what, args, allowed) in runs {
                // A broken record elsewhere is not this command's business.
                let relevant = match what {
                    "enroll list" => dir.starts_with("dps"),
                    "enroll show" => dir == "dps/enrollments",
                    "hub device list" | "hub device show" => dir == "hub/devices",
                    "provision" => dir == "dps/enrollments",
                    _ => true,
                };
                let r = run_bounded(&f.home, &args, &scratch, HOSTILE_TIME_LIMIT);
                println!(
                    "store {name:<14} in {dir:<21} {what:<16} exit {:?} in {:.3}s, peak {} KB",
                    r.code,
                    r.elapsed.as_secs_f64(),
                    r.max_rss_kb.unwrap_or(0)
                );
                let mut bad = Vec::new();
                match r.code {
                    Some(c) if !relevant && (0..=2).contains(&c) => {}
                    Some(c) if allowed.contains(&c) => {}
                    other => bad.push(format!("exit {other:?}, expected {allowed:?}")),
                }
                if r.stderr.contains("panicked") {
                    bad.push("panicked".into());
                }
                if r.elapsed >= HOSTILE_TIME_LIMIT {
                    bad.push(format!("took {:?}", r.elapsed));
                }
                if r.max_rss_kb.is_some_and(|k| k >= HOSTILE_RSS_LIMIT_KB) {
                    bad.push(format!("peak RSS {:?} KB", r.max_rss_kb));
                }
                if !bad.is_empty() {
                    failures.push(format!(
                        "{what} with a {name} record in {dir}: {}\n  stderr: {}",
                        bad.join("; "),
                        r.stderr.chars().take(300).collect::<String>()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// Names and symlinks
// ---------------------------------------------------------------------------

/// Every path under `dir` (not following links) with its size, except
/// under `skip`.
fn snapshot(dir: &Path, skip: &Path) -> BTreeMap<PathBuf, (u64, u32)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p == skip {
                continue;
            }
            let m = fs::symlink_metadata(&p).unwrap();
            out.insert(p.clone(), (m.len(), m.mode()));
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

#[test]
fn no_name_can_reach_outside_the_home() {
    let f = Fixture::new();
    f.ok(&["device", "create", "named-dev"]);
    let cert = f.p("certs/named-dev.cert.pem");
    let chain = f.p("certs/named-dev-full-chain.cert.pem");
    let int = f.p(INT_CERT);
    let abs = f.out("abs-target");
    let abs_s = abs.to_str().unwrap().to_string();
    let parent = f.tmp.path().to_path_buf();
    let before = snapshot(&parent, &f.home);
    let home_before = snapshot(&f.home, Path::new("/nonexistent"));
    let bad_names = [
        "../escaped".to_string(),
        "../../escaped".to_string(),
        abs_s.clone(),
        "a/b".to_string(),
        "a\\b".to_string(),
        "..".to_string(),
        ".".to_string(),
        ".hidden".to_string(),
        "..\\escaped".to_string(),
        "x/../../escaped".to_string(),
    ];
    let c = cert.to_str().unwrap();
    let ch = chain.to_str().unwrap();
    let i = int.to_str().unwrap();
    let mut failures = Vec::new();
    for name in &bad_names {
        let n = name.as_str();
        let runs: Vec<(Vec<&str>, &[i32])> = vec![
            (vec!["device", "create", n], &[2]),
            (vec!["device", "create", n, "--allow-any-cn"], &[2]),
            (vec!["device", "create", n, "--force"], &[2]),
            (vec!["device", "create", "ok-dev", "--ca", n], &[2]),
            (vec!["ca", "intermediate", n], &[2]),
            (vec!["ca", "intermediate", "ok-ca", "--parent", n], &[2]),
            (vec!["verification-cert", "CODE1", "--ca", n], &[2]),
            (
                vec!["enroll", "create", "--enrollment-id", n, "--cert", c],
                &[1, 2],
            ),
            (
                vec![
                    "enroll",
                    "create",
                    "--enrollment-id",
                    n,
                    "--cert",
                    c,
                    "--status",
                    "disabled",
                ],
                &[1, 2],
            ),
            (vec!["enroll", "group", "create", n, "--ca", i], &[1, 2]),
            (vec!["enroll", "show", n], &[1, 2]),
            (vec!["enroll", "delete", n], &[1, 2]),
            (vec!["hub", "device", "add", n, "--cert", c], &[1, 2]),
            (vec!["hub", "device", "show", n], &[1, 2]),
            (vec!["hub", "device", "delete", n], &[1, 2]),
            (vec!["deprovision", n, "--cert", ch], &[1, 2]),
        ];
        for (args, allowed) in runs {
            let o = f.run(&args);
            let code = o.status.code();
            if !code.is_some_and(|c| allowed.contains(&c)) {
                failures.push(format!(
                    "{args:?}: exit {code:?}, expected {allowed:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            if String::from_utf8_lossy(&o.stderr).contains("panicked") {
                failures.push(format!("{args:?} panicked"));
            }
        }
    }
    // A NUL byte cannot be passed in argv; an IDs file can hold one.
    for (label, content) in [
        ("nul", b"good-one\nbad\0id\n".to_vec()),
        ("dotdot", b"good-one\n../escaped\n".to_vec()),
        ("abs", format!("good-one\n{abs_s}\n").into_bytes()),
        ("backslash", b"good-one\n..\\escaped\n".to_vec()),
        ("slash", b"good-one\nsub/dir\n".to_vec()),
        ("cr", b"good-one\r\nbad\rid\r\n".to_vec()),
        ("non-utf8", b"good-one\n\xff\xfe\n".to_vec()),
    ] {
        let ids = f.out(&format!("ids-{label}.txt"));
        fs::write(&ids, &content).unwrap();
        for extra in [&[][..], &["--allow-any-cn"][..], &["--skip-existing"][..]] {
            let mut args = vec!["device", "create", "--ids-file", ids.to_str().unwrap()];
            args.extend_from_slice(extra);
            let o = f.run(&args);
            if o.status.code() != Some(2) {
                failures.push(format!(
                    "ids file {label} {extra:?}: exit {:?}, expected 2",
                    o.status.code()
                ));
            }
        }
        fs::remove_file(&ids).unwrap();
    }
    assert!(
        !f.p("certs/good-one.cert.pem").exists(),
        "a refused IDs file still issued its good IDs"
    );
    let after = snapshot(&parent, &f.home);
    assert_eq!(
        before, after,
        "something was created or changed outside the home"
    );
    assert!(!abs.exists());
    // Inside the home, nothing but the lock and empty store directories changed.
    let home_after = snapshot(&f.home, Path::new("/nonexistent"));
    let new: Vec<_> = home_after
        .keys()
        .filter(|p| !home_before.contains_key(*p))
        .filter(|p| !fs::symlink_metadata(p).unwrap().is_dir())
        .collect();
    assert!(new.is_empty(), "files written for refused names: {new:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_planted_symlink_is_never_followed_when_writing() {
    let f = Fixture::new();
    f.ok(&["device", "create", "linked-dev"]);
    let cert = f.p("certs/linked-dev.cert.pem");
    let chain = f.p("certs/linked-dev-full-chain.cert.pem");
    let target = f.out("outside-target");
    fs::write(&target, b"keep me").unwrap();
    let dangling = f.out("dangling-target");
    let check = |what: &str| {
        assert_eq!(
            fs::read(&target).unwrap(),
            b"keep me",
            "{what}: the file outside the home was written through a symlink"
        );
        assert!(
            !dangling.exists(),
            "{what}: a dangling symlink's target was created"
        );
    };
    let c = cert.to_str().unwrap();
    let ch = chain.to_str().unwrap();
    let ids = ["planted-a", "planted-b"];

    // private/<id>.key.pem
    for (id, to) in ids.iter().zip([&target, &dangling]) {
        std::os::unix::fs::symlink(to, f.p(&format!("private/{id}.key.pem"))).unwrap();
        for extra in [&[][..], &["--skip-existing"][..], &["--force"][..]] {
            let mut args = vec!["device", "create", id];
            args.extend_from_slice(extra);
            let o = f.run(&args);
            no_panic(&o.stderr, "device create over a symlink");
            check(&format!("device create {id} {extra:?}"));
        }
    }
    // A --force run archives the link itself (rename does not follow it).

    // dps/enrollments/<id>.json and hub/devices/<id>.json
    fs::create_dir_all(f.p("dps/enrollments")).unwrap();
    fs::create_dir_all(f.p("hub/devices")).unwrap();
    for (i, to) in [&target, &dangling].into_iter().enumerate() {
        let _ = fs::remove_file(f.p("dps/enrollments/linked-dev.json"));
        let _ = fs::remove_file(f.p("hub/devices/linked-dev.json"));
        std::os::unix::fs::symlink(to, f.p("dps/enrollments/linked-dev.json")).unwrap();
        std::os::unix::fs::symlink(to, f.p("hub/devices/linked-dev.json")).unwrap();
        let runs: Vec<Vec<&str>> = vec![
            vec![
                "enroll",
                "create",
                "--enrollment-id",
                "linked-dev",
                "--cert",
                c,
            ],
            vec![
                "enroll",
                "create",
                "--enrollment-id",
                "linked-dev",
                "--cert",
                c,
                "--status",
                "disabled",
            ],
            vec!["hub", "device", "add", "linked-dev", "--cert", c],
            vec!["hub", "device", "add", "linked-dev"],
            vec!["deprovision", "linked-dev", "--cert", ch],
            vec!["provision", ch, "--register"],
            vec!["enroll", "delete", "linked-dev"],
            vec!["hub", "device", "delete", "linked-dev"],
            vec![
                "enroll",
                "create",
                "--enrollment-id",
                "linked-dev",
                "--cert",
                c,
            ],
        ];
        for args in runs {
            let o = f.run(&args);
            no_panic(&o.stderr, &format!("{args:?}"));
            check(&format!("{args:?} (link {i})"));
        }
    }
    // The group store too.
    fs::create_dir_all(f.p("dps/enrollmentGroups")).unwrap();
    std::os::unix::fs::symlink(&target, f.p("dps/enrollmentGroups/linked-group.json")).unwrap();
    let o = f.run(&[
        "enroll",
        "group",
        "create",
        "linked-group",
        "--ca",
        f.p(INT_CERT).to_str().unwrap(),
    ]);
    no_panic(&o.stderr, "group create over a symlink");
    check("enroll group create");
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

fn sh_umask_000(home: &Path, args: &str) -> std::process::Output {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!("umask 000; exec \"$0\" --home \"$1\" {args}"))
        .arg(BIN)
        .arg(home)
        .env_remove("IOTCA_HOME")
        .env_remove("IOTCA_PASSPHRASE")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "umask 000 iotca {args}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn keys_are_0600_under_a_0700_private_dir_even_with_umask_000() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("pki");
    fs::write(tmp.path().join("pfx.txt"), "pfx-pass\n").unwrap();
    let pfx = tmp.path().join("pfx.txt");
    sh_umask_000(&home, "ca init");
    sh_umask_000(&home, "ca intermediate line-7");
    sh_umask_000(&home, "device create d1 d2 --ca line-7");
    sh_umask_000(
        &home,
        &format!(
            "device create d3 --pfx --pfx-password-file '{}'",
            pfx.display()
        ),
    );
    sh_umask_000(&home, "device create d1 --force --ca line-7");
    sh_umask_000(&home, "verification-cert ABC123");
    sh_umask_000(&home, "verification-cert ABC124");
    let mut failures = Vec::new();
    let mut keys = 0;
    let mut stack = vec![home.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let mode = m.mode() & 0o777;
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if m.is_dir() {
                if (name == "private" || p.parent().is_some_and(|q| q.ends_with("archive")))
                    && mode != 0o700
                {
                    failures.push(format!(
                        "{}: directory mode {mode:o}, want 700",
                        p.display()
                    ));
                }
                stack.push(p);
                continue;
            }
            if name.ends_with(".key.pem") || name.ends_with(".pfx") {
                keys += 1;
                if mode != 0o600 {
                    failures.push(format!("{}: key mode {mode:o}, want 600", p.display()));
                }
                // A key lives under a 0700 directory; a PFX (0600 itself)
                // sits in certs/, which stays 0755 (issue 12: --pfx once
                // turned certs/ into 0700).
                let dir = p.parent().unwrap();
                let dir_mode = fs::metadata(dir).unwrap().mode() & 0o777;
                if name.ends_with(".pfx") && dir.file_name().is_some_and(|n| n == "certs") {
                    if dir_mode != 0o755 {
                        failures.push(format!(
                            "{}: certs/ has mode {dir_mode:o} after --pfx, want 755",
                            p.display()
                        ));
                    }
                } else if dir_mode & 0o077 != 0 {
                    failures.push(format!(
                        "{}: a key in a directory with mode {dir_mode:o}",
                        p.display()
                    ));
                }
            } else if name.ends_with(".pem") && mode != 0o644 {
                failures.push(format!(
                    "{}: certificate mode {mode:o}, want 644",
                    p.display()
                ));
            }
        }
    }
    assert!(
        keys >= 8,
        "expected the CA, device, PFX and archived keys, found {keys}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn nothing_in_the_home_is_writable_by_others_even_with_umask_000() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("pki");
    sh_umask_000(&home, "ca init");
    sh_umask_000(&home, "device create d1");
    sh_umask_000(
        &home,
        &format!(
            "enroll group create g1 --ca '{}'",
            home.join(INT_CERT).display()
        ),
    );
    let mut bad = Vec::new();
    let mut stack = vec![home.clone()];
    bad.extend(
        [&home]
            .iter()
            .filter(|p| fs::metadata(p).unwrap().mode() & 0o022 != 0)
            .map(|p| {
                format!(
                    "{}: {:o}",
                    p.display(),
                    fs::metadata(p).unwrap().mode() & 0o777
                )
            }),
    );
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.mode() & 0o022 != 0 {
                bad.push(format!("{}: {:o}", p.display(), m.mode() & 0o777));
            }
            if m.is_dir() {
                stack.push(p);
            }
        }
    }
    assert!(bad.is_empty(), "writable by group or others: {bad:?}");
}

#[test]
fn passphrases_and_private_keys_never_appear_in_any_output() {
    const PASS: &str = "Zq7-unmistakable-passphrase-41xv";
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("pki");
    let pass = tmp.path().join("pass.txt");
    let wrong = tmp.path().join("wrong.txt");
    fs::write(&pass, format!("{PASS}\n")).unwrap();
    fs::write(&wrong, format!("{PASS}-wrong\n")).unwrap();
    let p = pass.to_str().unwrap().to_string();
    let w = wrong.to_str().unwrap().to_string();
    let h = |rel: &str| home.join(rel).to_str().unwrap().to_string();
    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    let mut run = |args: &[&str], env: Option<&str>| {
        let mut c = Command::new(BIN);
        c.arg("--home")
            .arg(&home)
            .args(args)
            .env_remove("IOTCA_HOME")
            .env_remove("IOTCA_PASSPHRASE")
            .stdin(Stdio::null());
        if let Some(e) = env {
            c.env("IOTCA_PASSPHRASE", e);
        }
        for json in [false, true] {
            let mut c2 = Command::new(c.get_program());
            c2.args(c.get_args());
            for (k, v) in c.get_envs() {
                match v {
                    Some(v) => c2.env(k, v),
                    None => c2.env_remove(k),
                };
            }
            if json {
                c2.arg("--json");
            }
            let o = c2.stdin(Stdio::null()).output().unwrap();
            let mut all = o.stdout.clone();
            all.extend_from_slice(&o.stderr);
            outputs.push((format!("{args:?} json={json}"), all));
        }
    };
    run(&["ca", "init", "--passphrase-file", &p], None);
    let wrong_env = format!("{PASS}-env-wrong");
    run(&["device", "create", "s1", "--passphrase-file", &p], None);
    run(&["device", "create", "s2", "--passphrase-file", &w], None);
    run(&["device", "create", "s3"], Some(&wrong_env));
    run(&["device", "create", "s4"], None);
    run(&["device", "create", "s5"], Some(PASS));
    run(
        &["ca", "intermediate", "line-7", "--passphrase-file", &p],
        None,
    );
    run(
        &["ca", "intermediate", "line-8", "--passphrase-file", &w],
        None,
    );
    run(&["ca", "intermediate", "line-9"], Some(&wrong_env));
    run(
        &["verification-cert", "CODE42", "--passphrase-file", &w],
        None,
    );
    run(
        &["verification-cert", "CODE43", "--passphrase-file", &p],
        None,
    );
    run(&["ca", "list"], None);
    run(&["ca", "init", "--passphrase-file", &w], None);
    // Keys where certificates belong: the error must not echo the key.
    let keys: Vec<String> = [
        "private/azure-iot-test-only.root.ca.key.pem",
        "private/azure-iot-test-only.intermediate.key.pem",
        "private/s1.key.pem",
        "private/line-7.key.pem",
    ]
    .iter()
    .map(|k| h(k))
    .collect();
    for k in &keys {
        run(&["inspect", k], None);
        run(&["verify", k, "--ca", k], None);
        run(&["audit", "--ca", &h(ROOT_CERT), k], None);
        run(&["provision", k], None);
        run(
            &["enroll", "check", "--enrollment-id", "s1", "--cert", k],
            None,
        );
        run(
            &["enroll", "create", "--enrollment-id", "s1", "--cert", k],
            None,
        );
        run(&["hub", "device", "add", "s1", "--cert", k], None);
        run(&["deprovision", "s1", "--cert", k], None);
    }
    run(&["audit", "--ca", &h(ROOT_CERT), &h("private")], None);
    run(
        &["audit", "--ca", &h(ROOT_CERT), home.to_str().unwrap()],
        None,
    );

    // Every base64 line of every key (encrypted or not) is secret material.
    let mut secrets: Vec<String> = vec![PASS.to_string()];
    for e in fs::read_dir(home.join("private")).unwrap() {
        let text = fs::read_to_string(e.unwrap().path()).unwrap();
        secrets.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(str::to_string),
        );
        // Also each line cut at 24 characters, in case output rewraps it.
        secrets.extend(
            text.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 24)
                .map(|l| l[..24].to_string()),
        );
    }
    assert!(secrets.len() > 10);
    assert!(outputs.len() > 60);
    let mut leaks = Vec::new();
    for (what, out) in &outputs {
        let text = String::from_utf8_lossy(out);
        assert!(!text.contains("panicked"), "{what} panicked: {text}");
        for s in &secrets {
            if text.contains(s.as_str()) {
                leaks.push(format!("{what} printed secret material '{s}'"));
            }
        }
        if text.contains("PRIVATE KEY-----") {
            leaks.push(format!("{what} printed a PEM private key armour"));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    // The key files really are encrypted with the passphrase.
    let root_key =
        fs::read_to_string(home.join("private/azure-iot-test-only.root.ca.key.pem")).unwrap();
    assert!(root_key.contains("ENCRYPTED PRIVATE KEY"));
    let o = openssl(&[
        &"pkey".into(),
        &"-noout".into(),
        &"-in".into(),
        &home
            .join("private/azure-iot-test-only.root.ca.key.pem")
            .into(),
        &"-passin".into(),
        &format!("file:{p}").into(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let _ = std::io::stdout().flush();
}

/// Issue 12: a template's `days` is bounded like `--days`; 3,000,000 days
/// once panicked in the time arithmetic (exit 101 with a backtrace).
#[test]
fn a_template_with_absurd_days_is_refused_not_a_panic() {
    let f = Fixture::new();
    let t = f.out("long.toml");
    let base = String::from_utf8(f.ok(&["template", "show", "device"]).stdout).unwrap();
    let patched: String = base
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("days") {
                "days = 3000000"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(patched.contains("days = 3000000"), "{base}");
    fs::write(&t, patched).unwrap();
    let o = f.run(&["device", "create", "d1", "--template", t.to_str().unwrap()]);
    no_panic(&o.stderr, "template days");
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("long.toml") && e.contains("out of range"), "{e}");
    assert!(!f.p("certs/d1.cert.pem").exists());
}

/// Issue 12: inputs over DESIGN section 3's bounds are refused naming the
/// file and the bound, without reading the rest (sparse files: nothing is
/// really written).
#[test]
fn oversized_keys_passphrases_templates_and_id_lists_are_refused_naming_the_bound() {
    let f = Fixture::new();
    let sparse = |name: &str, len: u64| {
        let p = f.out(name);
        fs::File::create(&p).unwrap().set_len(len).unwrap();
        p
    };
    let pass = sparse("pass.txt", 2 * 1024 * 1024);
    let o = f.run(&[
        "ca",
        "intermediate",
        "x",
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("pass.txt") && e.contains("1 MiB"), "{e}");

    let tpl = sparse("big.toml", 2 * 1024 * 1024);
    let o = f.run(&[
        "device",
        "create",
        "d1",
        "--template",
        tpl.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("big.toml") && e.contains("1 MiB"), "{e}");

    let ids = f.out("ids.txt");
    let mut text = String::from("good-1\n");
    text.push_str(&"x".repeat(5000));
    text.push('\n');
    fs::write(&ids, text).unwrap();
    let o = f.run(&["device", "create", "--ids-file", ids.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("ids.txt: line 2") && e.contains("1024 bytes"),
        "{e}"
    );
    assert!(!f.p("certs/good-1.cert.pem").exists(), "nothing is written");

    // A key file over the bound (the intermediate's key replaced by a big one).
    let key = f.p("private/azure-iot-test-only.intermediate.key.pem");
    fs::remove_file(&key).unwrap();
    fs::File::create(&key)
        .unwrap()
        .set_len(3 * 1024 * 1024)
        .unwrap();
    let o = f.run(&["device", "create", "d2"]);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("intermediate.key.pem") && e.contains("1 MiB"),
        "{e}"
    );
}

/// Issue 12: a CN with terminal control characters is escaped in text
/// output (JSON stays exact).
#[test]
fn control_characters_in_a_certificate_never_reach_the_terminal_raw() {
    let f = Fixture::new();
    let cert = f.out("evil.pem");
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=evil\u{1b}[2J\u{7}x",
            "-keyout",
        ])
        .arg(f.out("evil.key"))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = f.ok(&["inspect", cert.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
    assert!(text.contains("evil\\u{1b}[2J\\u{7}x"), "{text}");
    let o = f.ok(&["inspect", cert.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["cn"], "evil\u{1b}[2J\u{7}x");
}

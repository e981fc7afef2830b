//! TLS between Runnel and PostgreSQL, against a private cluster of each test's own (initdb +
//! pg_ctl, see `postgres_failover.rs`) with `ssl=on` and a certificate from `runnel gencert`:
//! the modes that must connect do, and encrypt; those that must not refuse at start with a
//! message that names the cause, within the connect timeout.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::harness::TestServer;
use crate::postgres_failover::{PrivateCluster, path_str};

/// The longest a `runnel migrate` or a refused `runnel serve` may take: far above the connect
/// timeout the tests give, so reaching it means a hang.
const HUNG_AFTER: Duration = Duration::from_secs(30);

/// `runnel <args>` with its output, killed (and the test failed) if it runs past
/// [`HUNG_AFTER`].
fn runnel_bounded(args: &[&str]) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let err = dir.path().join("err");
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .env_remove("RUNNEL_POSTGRES_URL")
        .env_remove("RUNNEL_POSTGRES_CA_CERT")
        .env_remove("RUNNEL_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("the runnel binary runs");
    let deadline = Instant::now() + HUNG_AFTER;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("runnel {args:?} still ran after {HUNG_AFTER:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = format!(
        "{}{}",
        std::fs::read_to_string(&out).unwrap_or_default(),
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    (status, said)
}

/// A cluster serving TLS with a certificate for `names` (`--ip`/`--dns` arguments of
/// `runnel gencert node`), signed by a CA of its own whose certificate is returned.
struct TlsCluster {
    cluster: PrivateCluster,
    ca_cert: PathBuf,
}

impl TlsCluster {
    fn start(bin_dir: PathBuf, names: &[&str]) -> Self {
        let mut cluster = PrivateCluster::initialised(bin_dir);
        let ca_dir = cluster.dir().join("ca");
        let node_dir = cluster.dir().join("node");
        gencert(&["ca", "--out", path_str(&ca_dir)]);
        let ca_cert = ca_dir.join("ca.crt");
        let ca_key = ca_dir.join("ca.key");
        let mut node = vec![
            "node",
            "--ca-cert",
            path_str(&ca_cert),
            "--ca-key",
            path_str(&ca_key),
            "--out",
            path_str(&node_dir),
        ];
        node.extend_from_slice(names);
        gencert(&node);
        // PostgreSQL reads its key only when it owns it and no one else may read it.
        let key = node_dir.join("node.key");
        let cert = node_dir.join("node.crt");
        for path in [&node_dir, &key, &cert] {
            cluster.give_to_server(path);
        }
        set_mode(&key, 0o600);
        cluster.start_with(&format!(
            "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
            cert.display(),
            key.display()
        ));
        Self { cluster, ca_cert }
    }

    fn url(&self, sslmode: &str) -> String {
        format!("{}?sslmode={sslmode}", self.cluster.url())
    }
}

fn gencert(args: &[&str]) {
    let mut all = vec!["gencert"];
    all.extend_from_slice(args);
    let (status, said) = runnel_bounded(&all);
    assert!(status.success(), "runnel {all:?}: {said}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn bin_dir_or_skip(test: &str) -> Option<PathBuf> {
    let found = PrivateCluster::bin_dir();
    if found.is_none() {
        eprintln!(
            "\n######## SKIPPED {test}: no PostgreSQL binaries (initdb, pg_ctl) in \
             /usr/lib/postgresql/*/bin; install the postgresql package to run this test ########\n"
        );
    }
    found
}

/// How many of Runnel's sessions on the cluster are encrypted, and how many are not (asked
/// over a plain connection of the test's own, which the cluster also accepts).
async fn runnel_sessions(cluster: &PrivateCluster) -> (i64, i64) {
    let (client, connection) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_postgres::connect(
            &format!("{}?sslmode=disable", cluster.url()),
            tokio_postgres::NoTls,
        ),
    )
    .await
    .expect("the cluster answers in time")
    .expect("the cluster accepts a plain connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'runnel'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    (row.get(0), row.get(1))
}

async fn append_and_read_back(server: &TestServer) {
    server.append_n("order/o-1", "Placed", 3).await;
    let (status, page) = server.get_json("/streams/order/o-1/events").await;
    assert_eq!(status, 200, "{page}");
    let revisions: Vec<u64> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|event| event["revision"].as_u64().expect("revision"))
        .collect();
    assert_eq!(revisions, [0, 1, 2]);
}

/// `runnel serve` on `url` must refuse to start, with exit code 2; returns what it said.
fn serve_refused(url: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut args = vec![
        "serve",
        "--postgres",
        url,
        "--postgres-connect-timeout-ms",
        "5000",
        "--data-dir",
        path_str(&data_dir),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let (status, said) = runnel_bounded(&args);
    assert_eq!(status.code(), Some(2), "{said}");
    said
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_servers_ca_migrates_serves_appends_and_reads_over_tls() {
    let Some(bin_dir) = bin_dir_or_skip("verify_full_with_the_servers_ca…") else {
        return;
    };
    let tls = TlsCluster::start(bin_dir, &["--ip", "127.0.0.1"]);
    let url = tls.url("verify-full");
    let ca = path_str(&tls.ca_cert);
    let (status, said) = runnel_bounded(&["migrate", "--postgres", &url, "--postgres-ca-cert", ca]);
    assert!(status.success(), "{said}");
    assert!(said.contains("applied migration(s) 1"), "{said}");

    let server = TestServer::start_with(&["--postgres", &url, "--postgres-ca-cert", ca]).await;
    append_and_read_back(&server).await;
    let (encrypted, plain) = runnel_sessions(&tls.cluster).await;
    assert!(
        encrypted >= 2,
        "the writer and the listener at least: {encrypted}"
    );
    assert_eq!(plain, 0, "every Runnel session is encrypted");

    // The URL's `sslrootcert` does the same as the flag.
    let with_root = format!("{url}&sslrootcert={ca}");
    let (status, said) = runnel_bounded(&["migrate", "--postgres", &with_root]);
    assert!(status.success(), "{said}");
    assert!(said.contains("up to date"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_without_a_ca_encrypts_without_checking_the_certificate() {
    let Some(bin_dir) = bin_dir_or_skip("require_without_a_ca…") else {
        return;
    };
    // A certificate for another name, from a CA nobody trusts: `require` takes it anyway.
    let tls = TlsCluster::start(bin_dir, &["--dns", "db.example"]);
    let url = tls.url("require");
    let (status, said) = runnel_bounded(&["migrate", "--postgres", &url]);
    assert!(status.success(), "{said}");
    let server = TestServer::start_with(&["--postgres", &url]).await;
    append_and_read_back(&server).await;
    let (encrypted, plain) = runnel_sessions(&tls.cluster).await;
    assert!(encrypted >= 2, "{encrypted}");
    assert_eq!(plain, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_without_the_servers_ca_refuses_to_start_naming_certificate_verification() {
    let Some(bin_dir) = bin_dir_or_skip("verify_full_without_the_servers_ca…") else {
        return;
    };
    let tls = TlsCluster::start(bin_dir, &["--ip", "127.0.0.1"]);
    let url = tls.url("verify-full");
    // Migrate with the right CA, so that serve's refusal can only be about the certificate.
    let (status, said) = runnel_bounded(&[
        "migrate",
        "--postgres",
        &url,
        "--postgres-ca-cert",
        path_str(&tls.ca_cert),
    ]);
    assert!(status.success(), "{said}");

    // The system's roots do not know the cluster's CA (or there are none).
    let said = serve_refused(&url, &[]);
    assert!(
        said.contains("certificate verification failed") && said.contains("system's trusted roots")
            || said.contains("no trusted roots found"),
        "{said}"
    );

    // Nor does another CA.
    let other = tempfile::tempdir().expect("temp dir");
    gencert(&["ca", "--out", path_str(other.path())]);
    let other_ca = other.path().join("ca.crt");
    let said = serve_refused(&url, &["--postgres-ca-cert", path_str(&other_ca)]);
    assert!(said.contains("certificate verification failed"), "{said}");
    assert!(
        said.contains(path_str(&other_ca)),
        "names the CA file: {said}"
    );

    let (status, said) = runnel_bounded(&[
        "migrate",
        "--postgres",
        &url,
        "--postgres-ca-cert",
        path_str(&other_ca),
    ]);
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("certificate verification failed"), "{said}");

    // A CA file that is not there is refused by the setting's name before connecting.
    let said = serve_refused(&url, &["--postgres-ca-cert", "/nonexistent/ca.crt"]);
    assert!(said.contains("postgres_ca_cert"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_ca_ignores_the_host_name_and_verify_full_does_not() {
    let Some(bin_dir) = bin_dir_or_skip("verify_ca_ignores_the_host_name…") else {
        return;
    };
    let tls = TlsCluster::start(bin_dir, &["--dns", "db.example"]);
    let ca = path_str(&tls.ca_cert);
    let (status, said) = runnel_bounded(&[
        "migrate",
        "--postgres",
        &tls.url("verify-ca"),
        "--postgres-ca-cert",
        ca,
    ]);
    assert!(status.success(), "{said}");

    let said = serve_refused(&tls.url("verify-full"), &["--postgres-ca-cert", ca]);
    assert!(said.contains("certificate verification failed"), "{said}");
    assert!(said.contains("not valid for name"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_refuses_to_start_and_says_so() {
    let Some(bin_dir) = bin_dir_or_skip("require_against_a_server_without_tls…") else {
        return;
    };
    let mut cluster = PrivateCluster::initialised(bin_dir);
    cluster.start_with("-c ssl=off");
    let url = format!("postgres://postgres:s3cret@{}/postgres", cluster.address());

    let (status, said) =
        runnel_bounded(&["migrate", "--postgres", &format!("{url}?sslmode=require")]);
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("server does not support TLS"), "{said}");
    assert!(
        !said.contains("s3cret"),
        "the password is never printed: {said}"
    );

    let said = serve_refused(&format!("{url}?sslmode=verify-full"), &[]);
    assert!(said.contains("does not support TLS"), "{said}");
    assert!(!said.contains("s3cret"), "{said}");

    // `prefer` falls back to a plain session; an unknown mode is refused by name.
    let (status, said) =
        runnel_bounded(&["migrate", "--postgres", &format!("{url}?sslmode=prefer")]);
    assert!(status.success(), "{said}");
    let (status, said) = runnel_bounded(&[
        "migrate",
        "--postgres",
        &format!("{url}?sslmode=verify_full"),
    ]);
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("sslmode must be"), "{said}");
}

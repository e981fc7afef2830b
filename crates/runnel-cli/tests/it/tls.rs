//! HTTPS end to end: `runnel gencert` makes the certificates, `runnel serve` serves them, and
//! clients (reqwest, and the `runnel` client commands) trust the CA or are turned away.

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::TestServer;

/// Runs the `runnel` binary to completion.
fn runnel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .env_remove("RUNNEL_CONFIG")
        .env_remove("RUNNEL_URL")
        .env_remove("RUNNEL_CA_CERT")
        .stdin(Stdio::null())
        .output()
        .expect("the runnel binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn succeed(args: &[&str]) -> Output {
    let output = runnel(args);
    assert!(
        output.status.success(),
        "runnel {args:?} failed: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

/// A CA, a node certificate for 127.0.0.1 and localhost, and a client certificate, in a
/// temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        pki.make_ca("ca");
        pki.make_node("ca", "node");
        succeed(&[
            "gencert",
            "client",
            "--name",
            "alice",
            "--ca-cert",
            pki.path("ca/ca.crt").to_str().expect("utf-8"),
            "--ca-key",
            pki.path("ca/ca.key").to_str().expect("utf-8"),
            "--out",
            pki.path("client").to_str().expect("utf-8"),
        ]);
        pki
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub(crate) fn arg(&self, relative: &str) -> String {
        self.path(relative).to_str().expect("utf-8").to_owned()
    }

    fn make_ca(&self, dir: &str) {
        succeed(&["gencert", "ca", "--out", &self.arg(dir)]);
    }

    /// A node certificate signed by the CA in `ca_dir`, written to `out` (replacing one there).
    fn make_node(&self, ca_dir: &str, out: &str) {
        succeed(&[
            "gencert",
            "node",
            "--ca-cert",
            &self.arg(&format!("{ca_dir}/ca.crt")),
            "--ca-key",
            &self.arg(&format!("{ca_dir}/ca.key")),
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
            "--out",
            &self.arg(out),
            "--force",
        ]);
    }

    /// `serve` flags for HTTPS with the node certificate.
    pub(crate) fn serve_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.arg("node/node.crt"),
            "--tls-key".into(),
            self.arg("node/node.key"),
        ]
    }

    pub(crate) fn read(&self, relative: &str) -> Vec<u8> {
        std::fs::read(self.path(relative)).expect("PEM file")
    }
}

/// A client that trusts `ca` (a PEM path relative to the PKI) and presents `identity`, with no
/// connection pool, so each request makes a new TLS handshake.
pub(crate) fn https_client(pki: &Pki, ca: Option<&str>, identity: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .pool_max_idle_per_host(0);
    if let Some(ca) = ca {
        let roots = reqwest::Certificate::from_pem_bundle(&pki.read(ca)).expect("CA PEM");
        builder = builder.tls_certs_only(roots);
    }
    if let Some(stem) = identity {
        let mut pem = pki.read(&format!("{stem}.crt"));
        pem.extend(pki.read(&format!("{stem}.key")));
        builder = builder.identity(reqwest::Identity::from_pem(&pem).expect("identity PEM"));
    }
    builder.build().expect("client")
}

async fn start_tls(pki: &Pki, extra: &[&str]) -> TestServer {
    let mut args: Vec<String> = pki.serve_args();
    // Authentication is tested elsewhere; here only the transport matters.
    args.push("--insecure".into());
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let identity = extra
        .contains(&"--tls-client-ca")
        .then_some("client/client");
    TestServer::start_with_client(&args, https_client(pki, Some("ca/ca.crt"), identity)).await
}

#[test]
fn gencert_writes_private_keys_for_the_owner_only_and_never_overwrites_without_force() {
    let pki = Pki::new();
    for key in ["ca/ca.key", "node/node.key", "client/client.key"] {
        let mode = std::fs::metadata(pki.path(key))
            .expect("key written")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key} has mode {mode:o}");
    }
    let before = pki.read("ca/ca.key");
    let again = runnel(&["gencert", "ca", "--out", &pki.arg("ca")]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(pki.read("ca/ca.key"), before, "the CA key was replaced");
    succeed(&["gencert", "ca", "--out", &pki.arg("ca"), "--force"]);
    assert_ne!(
        pki.read("ca/ca.key"),
        before,
        "--force did not replace the key"
    );

    let nameless = runnel(&[
        "gencert",
        "node",
        "--ca-cert",
        &pki.arg("ca/ca.crt"),
        "--ca-key",
        &pki.arg("ca/ca.key"),
        "--out",
        &pki.arg("other"),
    ]);
    assert_eq!(nameless.status.code(), Some(2));
    assert!(
        text(&nameless.stderr).contains("--ip") && text(&nameless.stderr).contains("--dns"),
        "{}",
        text(&nameless.stderr)
    );
    // The node key was made before the CA was replaced: a pair that does not match is named.
    let mismatched = runnel(&[
        "gencert",
        "client",
        "--name",
        "bob",
        "--ca-cert",
        &pki.arg("ca/ca.crt"),
        "--ca-key",
        &pki.arg("node/node.key"),
        "--out",
        &pki.arg("bob"),
    ]);
    assert_eq!(mismatched.status.code(), Some(2));
    assert!(
        text(&mismatched.stderr).contains("is not the key of --ca-cert"),
        "{}",
        text(&mismatched.stderr)
    );
}

#[tokio::test]
async fn https_with_the_ca_succeeds_and_without_it_fails() {
    let pki = Pki::new();
    let server = start_tls(&pki, &[]).await;
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );

    let trusted = https_client(&pki, Some("ca/ca.crt"), None);
    let response = trusted
        .get(server.url("/health/live"))
        .send()
        .await
        .expect("a client with the CA connects");
    assert_eq!(response.status(), 200);
    // The certificate names localhost too.
    let by_name = server.base.replace("127.0.0.1", "localhost");
    let response = trusted
        .get(format!("{by_name}/health/live"))
        .send()
        .await
        .expect("localhost is in the certificate");
    assert_eq!(response.status(), 200);

    let untrusting = https_client(&pki, None, None);
    let error = untrusting
        .get(server.url("/health/live"))
        .send()
        .await
        .expect_err("a client without the CA must not trust the server");
    assert!(error.is_connect(), "{error:?}");

    // Plain HTTP to the HTTPS port gets no answer worth the name.
    let plain = server.base.replace("https://", "http://");
    let plain_answer = reqwest::Client::new()
        .get(format!("{plain}/health/live"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain_answer.is_err(),
        "plain HTTP was served: {plain_answer:?}"
    );

    // The command-line client: --ca-cert makes it work, without it it cannot reach the server.
    let with_ca = runnel(&[
        "streams",
        "--url",
        &server.base,
        "--ca-cert",
        &pki.arg("ca/ca.crt"),
    ]);
    assert!(with_ca.status.success(), "{}", text(&with_ca.stderr));
    let without = runnel(&["streams", "--url", &server.base]);
    assert_eq!(without.status.code(), Some(3), "{}", text(&without.stderr));
    assert!(
        text(&without.stderr).contains("certificate"),
        "{}",
        text(&without.stderr)
    );
}

#[tokio::test]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let pki = Pki::new();
    let ca = pki.arg("ca/ca.crt");
    let server = start_tls(&pki, &["--tls-client-ca", &ca]).await;

    let with_certificate = https_client(&pki, Some("ca/ca.crt"), Some("client/client"));
    let response = with_certificate
        .get(server.url("/streams"))
        .send()
        .await
        .expect("a client certificate from the CA is accepted");
    assert_eq!(response.status(), 200);

    let anonymous = https_client(&pki, Some("ca/ca.crt"), None);
    let refused = anonymous.get(server.url("/streams")).send().await;
    assert!(refused.is_err(), "no client certificate, yet {refused:?}");

    // A certificate from another CA is no better than none.
    succeed(&["gencert", "ca", "--out", &pki.arg("other-ca")]);
    succeed(&[
        "gencert",
        "client",
        "--name",
        "mallory",
        "--ca-cert",
        &pki.arg("other-ca/ca.crt"),
        "--ca-key",
        &pki.arg("other-ca/ca.key"),
        "--out",
        &pki.arg("mallory"),
    ]);
    let stranger = https_client(&pki, Some("ca/ca.crt"), Some("mallory/client"));
    let refused = stranger.get(server.url("/streams")).send().await;
    assert!(
        refused.is_err(),
        "a certificate from another CA, yet {refused:?}"
    );

    // The command-line client presents one with --client-cert and --client-key.
    let cli = runnel(&[
        "streams",
        "--url",
        &server.base,
        "--ca-cert",
        &ca,
        "--client-cert",
        &pki.arg("client/client.crt"),
        "--client-key",
        &pki.arg("client/client.key"),
    ]);
    assert!(cli.status.success(), "{}", text(&cli.stderr));
    let cli = runnel(&["streams", "--url", &server.base, "--ca-cert", &ca]);
    assert_eq!(cli.status.code(), Some(3), "{}", text(&cli.stderr));
}

/// Polls until a fresh connection of `client` gets an answer from `url` (true) or `within`
/// passes (false).
async fn connects_within(client: &reqwest::Client, url: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if client.get(url).send().await.is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let pki = Pki::new();
    let server = start_tls(&pki, &["--tls-reload-interval-ms", "100"]).await;
    let url = server.url("/health/live");
    let old_ca = https_client(&pki, Some("ca/ca.crt"), None);
    assert!(old_ca.get(&url).send().await.is_ok());

    // A broken file (a half-copied certificate, say) is refused; the old one stays in use.
    let good = pki.read("node/node.crt");
    std::fs::write(pki.path("node/node.crt"), &good[..good.len() / 2]).expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("cannot be used") {
        assert!(
            Instant::now() < deadline,
            "the broken file was not reported; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        old_ca.get(&url).send().await.is_ok(),
        "the old certificate must still be served"
    );

    // A new certificate from a new CA: clients of the new CA get in, those of the old one not.
    pki.make_ca("ca2");
    pki.make_node("ca2", "node");
    let new_ca = https_client(&pki, Some("ca2/ca.crt"), None);
    assert!(
        connects_within(&new_ca, &url, Duration::from_secs(10)).await,
        "the new certificate was not picked up; log:\n{}",
        server.log()
    );
    assert!(old_ca.get(&url).send().await.is_err());
    assert!(server.log().contains("reloaded the TLS files"));
}

#[tokio::test]
async fn serving_plain_http_on_a_network_address_is_refused_with_both_ways_out() {
    let data = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(data.path().join("data"))
        .env_remove("RUNNEL_CONFIG")
        .env_remove("RUNNEL_INSECURE")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    let stderr = text(&output.stderr);
    for words in ["0.0.0.0", "--tls-cert", "--tls-key", "--insecure"] {
        assert!(stderr.contains(words), "{words} missing in: {stderr}");
    }
    assert!(
        !text(&output.stdout).contains("listening"),
        "{}",
        text(&output.stdout)
    );
    // Refused before the store is opened: a large one would take a while to recover first.
    assert!(!data.path().join("data").exists(), "the store was opened");
}

#[test]
fn tls_settings_come_in_pairs() {
    let pki = Pki::new();
    let output = runnel(&["serve", "--tls-cert", &pki.arg("node/node.crt")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("--tls-key"),
        "{}",
        text(&output.stderr)
    );
}

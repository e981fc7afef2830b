//! `runnel gencert`: a private certificate authority and the certificates signed by it, for
//! HTTPS (`runnel serve --tls-cert/--tls-key`) and mutual TLS (`--tls-client-ca`, and the
//! clients' `--client-cert/--client-key`).
//!
//! Keys are ECDSA P-256, written with 0600 permissions. Every file is written beside its final
//! name and renamed into place, so a server that reloads its certificate never reads half a
//! file. Existing files are never overwritten without `--force`.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::CommandResult;

#[derive(Debug, clap::Args)]
pub(crate) struct GencertArgs {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Debug, clap::Subcommand)]
enum Kind {
    /// A certificate authority: writes ca.crt (give it to clients with --ca-cert, and to servers
    /// with --tls-client-ca for mutual TLS) and ca.key (keep it safe, offline if you can).
    Ca {
        /// The directory to write ca.crt and ca.key into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "Runnel CA")]
        name: String,
        /// Days until the CA certificate expires.
        #[arg(long, default_value_t = 1825)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// A server certificate signed by the CA: writes node.crt and node.key for
    /// `runnel serve --tls-cert node.crt --tls-key node.key`.
    Node {
        #[command(flatten)]
        ca: CaFiles,
        /// An IP address clients use to reach the server (repeatable).
        #[arg(long, value_name = "IP")]
        ip: Vec<IpAddr>,
        /// A DNS name clients use to reach the server (repeatable).
        #[arg(long, value_name = "NAME")]
        dns: Vec<String>,
        /// The directory to write node.crt and node.key into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days until the certificate expires.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// A client certificate signed by the CA, for servers that require one (mutual TLS):
    /// writes client.crt and client.key for `--client-cert` and `--client-key`.
    Client {
        /// Who the client is (the certificate's common name).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        ca: CaFiles,
        /// The directory to write client.crt and client.key into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Days until the certificate expires.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
}

/// The CA that signs node and client certificates.
#[derive(Debug, clap::Args)]
struct CaFiles {
    /// The CA certificate (PEM), as written by `runnel gencert ca`.
    #[arg(long, value_name = "FILE")]
    ca_cert: PathBuf,
    /// The CA's private key (PEM).
    #[arg(long, value_name = "FILE")]
    ca_key: PathBuf,
}

/// Certificates are valid from a little before now, so that a client whose clock runs behind
/// the machine that made them still accepts them.
const BACKDATE: time::Duration = time::Duration::hours(1);

/// The longest validity accepted: beyond it, expiry stops being a safety net.
const MAX_DAYS: u32 = 36_500;

pub(crate) async fn run(args: GencertArgs) -> CommandResult {
    // Key generation and file writes are quick; no need to leave the async thread.
    match args.kind {
        Kind::Ca {
            out,
            name,
            days,
            force,
        } => {
            let validity = Validity::days(days)?;
            let key = KeyPair::generate().context("cannot generate a key")?;
            let mut params = validity.params(&name);
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let certificate = params
                .self_signed(&key)
                .context("cannot sign the CA certificate")?;
            let written = write_pair(&out, "ca", &certificate.pem(), &key, force)?;
            report(&written, "the CA certificate and key");
        }
        Kind::Node {
            ca,
            ip,
            dns,
            out,
            days,
            force,
        } => {
            if ip.is_empty() && dns.is_empty() {
                bail!(
                    "give at least one --ip or --dns: clients check that the certificate names the address they connect to"
                );
            }
            let validity = Validity::days(days)?;
            let common_name = dns
                .first()
                .cloned()
                .or_else(|| ip.first().map(IpAddr::to_string))
                .unwrap_or_default();
            let mut params = validity.params(&common_name);
            params.subject_alt_names = ip.iter().copied().map(SanType::IpAddress).collect();
            for name in &dns {
                let name = name
                    .as_str()
                    .try_into()
                    .with_context(|| format!("--dns {name:?} is not a valid DNS name"))?;
                params.subject_alt_names.push(SanType::DnsName(name));
            }
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            // Client authentication too, so nodes can present the same certificate to each
            // other.
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let written = sign_and_write(&ca, params, &out, "node", force)?;
            report(&written, "the server certificate and key");
        }
        Kind::Client {
            name,
            ca,
            out,
            days,
            force,
        } => {
            if name.trim().is_empty() {
                bail!("--name must not be empty");
            }
            let validity = Validity::days(days)?;
            let mut params = validity.params(&name);
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            let written = sign_and_write(&ca, params, &out, "client", force)?;
            report(&written, "the client certificate and key");
        }
    }
    Ok(ExitCode::SUCCESS)
}

struct Validity {
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
}

impl Validity {
    fn days(days: u32) -> anyhow::Result<Self> {
        if !(1..=MAX_DAYS).contains(&days) {
            bail!("--days must be from 1 to {MAX_DAYS}, not {days}");
        }
        let now = time::OffsetDateTime::now_utc();
        Ok(Self {
            not_before: now - BACKDATE,
            not_after: now + time::Duration::days(i64::from(days)),
        })
    }

    /// Parameters with this validity, a common name, and a fresh serial number.
    fn params(&self, common_name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        // Unique per certificate (RFC 5280 requires it per CA); a UUIDv7 is 16 random-enough,
        // time-ordered bytes.
        params.serial_number = Some(SerialNumber::from_slice(uuid::Uuid::now_v7().as_bytes()));
        params.use_authority_key_identifier_extension = true;
        params
    }
}

/// Loads the CA, signs `params` with it under a new key, and writes `{stem}.crt`/`{stem}.key`.
fn sign_and_write(
    ca: &CaFiles,
    params: CertificateParams,
    out: &Path,
    stem: &str,
    force: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let ca_cert_pem = std::fs::read_to_string(&ca.ca_cert)
        .with_context(|| format!("cannot read --ca-cert {}", ca.ca_cert.display()))?;
    let ca_key_pem = std::fs::read_to_string(&ca.ca_key)
        .with_context(|| format!("cannot read --ca-key {}", ca.ca_key.display()))?;
    check_pair(&ca_cert_pem, &ca_key_pem).with_context(|| {
        format!(
            "--ca-key {} is not the key of --ca-cert {}",
            ca.ca_key.display(),
            ca.ca_cert.display()
        )
    })?;
    let ca_key = KeyPair::from_pem(&ca_key_pem)
        .with_context(|| format!("--ca-key {} is not a usable key", ca.ca_key.display()))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).with_context(|| {
        format!(
            "--ca-cert {} is not a usable certificate",
            ca.ca_cert.display()
        )
    })?;
    let key = KeyPair::generate().context("cannot generate a key")?;
    let certificate = params
        .signed_by(&key, &issuer)
        .context("cannot sign the certificate")?;
    write_pair(out, stem, &certificate.pem(), &key, force)
}

/// Fails unless the private key belongs to the certificate: a mismatch would sign certificates
/// that nobody trusting the CA accepts, which is hard to diagnose later.
fn check_pair(cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
    let certificate = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|error| anyhow::anyhow!("the certificate is not valid PEM: {error}"))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|error| anyhow::anyhow!("the key is not valid PEM: {error}"))?;
    rustls::sign::CertifiedKey::from_der(vec![certificate], key, &runnel_server::crypto_provider())
        .map(drop)
        .map_err(|error| anyhow::anyhow!("{error}"))
}

/// Writes `{stem}.crt` and `{stem}.key` (0600) into `out`, refusing to replace either file
/// unless `force`; returns the paths written.
fn write_pair(
    out: &Path,
    stem: &str,
    certificate_pem: &str,
    key: &KeyPair,
    force: bool,
) -> anyhow::Result<Vec<PathBuf>> {
    let cert_path = out.join(format!("{stem}.crt"));
    let key_path = out.join(format!("{stem}.key"));
    if !force {
        // Both are checked before either is written: half a pair is worse than none.
        for path in [&cert_path, &key_path] {
            if path.exists() {
                bail!("{} exists; pass --force to replace it", path.display());
            }
        }
    }
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the directory {}", out.display()))?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(&cert_path, certificate_pem.as_bytes(), 0o644)?;
    Ok(vec![cert_path, key_path])
}

/// Writes beside `path` and renames into place, so readers see the old file or the new one.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            // Created with the final mode: a key is never readable by others, not even for a
            // moment.
            .mode(mode)
            .open(&temp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        // The mode given at creation is narrowed by the umask; set it exactly.
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&temp, path)
    })();
    if let Err(error) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(error).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

fn report(written: &[PathBuf], what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "wrote {what}:");
    for path in written {
        let _ = writeln!(out, "  {}", path.display());
    }
}

//! The servers under test, each started fresh on a free 127.0.0.1 port with its data in a
//! scratch directory, and stopped when its guard is dropped (also on an error or a panic).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long a server may take to become ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping server gets before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A child process that is asked to stop (SIGTERM), then killed, when dropped.
#[derive(Debug)]
pub(crate) struct Guard {
    name: &'static str,
    child: Child,
}

impl Guard {
    pub(crate) fn new(name: &'static str, child: Child) -> Self {
        Self { name, child }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{} did not stop within {STOP_TIMEOUT:?}; killing it",
            self.name
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago (servers that cannot pick their own take this).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Starts `runnel serve` on a port of its choosing and returns it with the address it printed.
pub(crate) fn start_runnel(
    binary: &Path,
    data_dir: &Path,
    extra_args: &[String],
    log: &Path,
) -> anyhow::Result<(Guard, std::net::SocketAddr, String)> {
    let child = Command::new(binary)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let mut guard = Guard::new("runnel serve", child);
    let stdout = guard
        .child
        .stdout
        .take()
        .context("runnel serve has no stdout")?;
    // The first line says where it listens: "Runnel 0.1.0 listening on http://127.0.0.1:PORT".
    let (lines, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = lines.send(line);
        // Keep draining, so that the server never blocks on a full pipe.
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = first.recv_timeout(START_TIMEOUT).with_context(|| {
        format!(
            "runnel serve printed nothing within {START_TIMEOUT:?}; see {}",
            log.display()
        )
    })?;
    let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
        bail!(
            "runnel serve did not say where it listens (\"{}\"); see {}",
            line.trim(),
            log.display()
        );
    };
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .with_context(|| format!("the address in {url}"))?;
    Ok((guard, addr, line.trim().to_owned()))
}

/// Starts a nats-server with JetStream on file storage that fsyncs every write.
pub(crate) fn start_nats(binary: &Path, dir: &Path) -> anyhow::Result<(Guard, u16)> {
    start_nats_syncing(binary, dir, true)
}

/// Starts a nats-server with JetStream on file storage in `dir/store`: fsyncing every write
/// when `sync_always`, else with nats-server's default (a sync every two minutes), which only
/// loading a backlog quickly may use; the same store can then be served again syncing always.
pub(crate) fn start_nats_syncing(
    binary: &Path,
    dir: &Path,
    sync_always: bool,
) -> anyhow::Result<(Guard, u16)> {
    let port = free_port()?;
    std::fs::create_dir_all(dir)?;
    let config = dir.join("nats.conf");
    let store = dir.join("store");
    let sync = if sync_always {
        "  sync_interval: always\n"
    } else {
        ""
    };
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n{sync}}}\n",
            store.display()
        ),
    )?;
    let child = Command::new(binary)
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("nats.log"))?)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let guard = Guard::new("nats-server", child);
    wait_for_port(port, &dir.join("nats.log"))?;
    Ok((guard, port))
}

fn wait_for_port(port: u16, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!(
        "nothing listens on port {port} after {START_TIMEOUT:?}; see {}",
        log.display()
    )
}

/// A throwaway PostgreSQL cluster, stopped (fast) when dropped.
#[derive(Debug)]
pub(crate) struct Postgres {
    pub(crate) bin_dir: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) port: u16,
    /// PostgreSQL refuses to run as root; then its commands run as this user.
    run_as: Option<String>,
}

impl Postgres {
    /// `initdb` and start, with `fsync` and `synchronous_commit` on (PostgreSQL's defaults,
    /// spelled out because they are what makes the comparison fair).
    pub(crate) fn start(bin_dir: &Path, dir: &Path) -> anyhow::Result<Self> {
        let run_as = is_root().then(|| "postgres".to_owned());
        std::fs::create_dir_all(dir)?;
        if let Some(user) = &run_as {
            let status = Command::new("chown").arg(user).arg(dir).status()?;
            if !status.success() {
                bail!("cannot give {} to the user {user}", dir.display());
            }
        }
        let data_dir = dir.join("cluster");
        let port = free_port()?;
        let pg = Self {
            bin_dir: bin_dir.to_owned(),
            data_dir,
            port,
            run_as,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data_dir.to_string_lossy(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on \
             -c max_connections=200",
            dir.display()
        );
        pg.run(
            "pg_ctl",
            &[
                "-D",
                &pg.data_dir.to_string_lossy(),
                "-l",
                &dir.join("postgres.log").to_string_lossy(),
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        )?;
        Ok(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin_dir.join(tool);
        let mut command = match &self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command.args(["-u", user, "--"]).arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Runs SQL with psql as the superuser, stopping at the first error.
    pub(crate) fn psql(&self, sql: &str) -> anyhow::Result<String> {
        let output = Command::new(self.bin_dir.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
                "postgres",
            ])
            .stdin(Stdio::null())
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!("psql failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data_dir = self.data_dir.to_string_lossy().into_owned();
        if let Err(error) = self.run("pg_ctl", &["-D", &data_dir, "-m", "fast", "-w", "stop"]) {
            eprintln!("stopping PostgreSQL: {error}");
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The first line a `--version` prints.
pub(crate) fn version_of(binary: &Path) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .map(|line| line.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown version".to_owned())
}

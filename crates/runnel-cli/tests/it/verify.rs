//! `runnel verify DATA_DIR`, and a server that refuses to start on a corrupt log.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::TestServer;

/// Runs `runnel` to completion, killing it if it runs longer than a check should.
fn runnel(args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runnel runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

#[tokio::test]
async fn verify_passes_a_sound_directory_and_exits_1_on_corruption() {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let mut server = TestServer::start_in(&data_dir, &[]).await;
    for n in 0..3 {
        server
            .append_n(&format!("order/o-{n}"), "OrderPlaced", 5)
            .await;
    }
    assert_eq!(server.terminate(Duration::from_secs(10)).code(), Some(0));
    drop(server);
    let dir = data_dir.to_str().expect("utf-8 path");

    let sound = runnel(&["verify", dir]);
    let report = String::from_utf8_lossy(&sound.stdout);
    assert_eq!(
        sound.status.code(),
        Some(0),
        "{report}{}",
        String::from_utf8_lossy(&sound.stderr)
    );
    assert!(report.contains("15 events"), "{report}");

    // Flip a byte inside the first of three batches: corruption in the middle of the log.
    let segment = data_dir.join("log").join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).expect("segment");
    bytes[4096 + 100] ^= 0xFF;
    std::fs::write(&segment, bytes).expect("write back");

    let corrupt = runnel(&["verify", dir]);
    let message = String::from_utf8_lossy(&corrupt.stderr);
    assert_eq!(corrupt.status.code(), Some(1), "{message}");
    assert!(message.contains("00000000000000000000.seg"), "{message}");

    let refused = runnel(&["serve", "--data-dir", dir, "--listen", "127.0.0.1:0"]);
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "serve started on a corrupt log");
    assert!(message.contains("00000000000000000000.seg"), "{message}");
}

#[tokio::test]
async fn verify_of_a_missing_directory_is_an_error_not_a_pass() {
    let temp = tempfile::tempdir().expect("temp dir");
    let missing = temp.path().join("nothing-here");
    let output = runnel(&["verify", missing.to_str().expect("utf-8 path")]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

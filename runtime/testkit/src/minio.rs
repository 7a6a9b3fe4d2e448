//! A MinIO server for one test: started from the binary `e2e/minio.sh install` puts in
//! `${SPATE_TOOLS:-/var/tmp/spate-tools}/bin` (or `$SPATE_MINIO`), on a free loopback port with a
//! temporary data directory and fixed credentials, killed when dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use spate_checkpoint::object_store::path::Path as StorePath;
use spate_checkpoint::{CheckpointStorage, RetryPolicy, StorageOptions};
use tempfile::TempDir;

pub const ACCESS_KEY: &str = "spate-test";
pub const SECRET_KEY: &str = "spate-test-secret";
pub const BUCKET: &str = "spate";
pub const REGION: &str = "us-east-1";
const STARTUP: Duration = Duration::from_secs(60);

pub struct Minio {
    child: Child,
    dir: TempDir,
    port: u16,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Minio {
    /// A running MinIO, or `None` (after saying why) when its binary is missing outside CI.
    /// In CI (`CI=true`) a missing binary fails the test: there it must have been installed.
    pub fn start() -> Option<Minio> {
        let binary = binary();
        if !binary.is_file() {
            let message = format!(
                "MinIO binary {} not found; run `bash e2e/minio.sh install` (or set SPATE_MINIO)",
                binary.display()
            );
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("{message}");
            }
            eprintln!("skipping the MinIO test: {message}");
            return None;
        }
        let dir = data_root()
            .map_or_else(tempfile::tempdir, tempfile::tempdir_in)
            .expect("temporary directory for MinIO");
        let data = dir.path().join("data");
        // A top-level directory of a fresh data directory is served as a bucket: this creates
        // the bucket without an S3 client that can sign bucket requests.
        std::fs::create_dir_all(data.join(BUCKET)).expect("bucket directory");
        std::fs::write(
            dir.path().join("credentials"),
            format!("aws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
        )
        .expect("credentials file");
        let port = free_port();
        let child = spawn(&binary, dir.path(), port);
        let mut minio = Minio {
            child,
            dir,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        minio.wait_until_live(port);
        Some(minio)
    }

    /// Kills the server (SIGKILL, as a crashed machine would stop it): clients find nothing
    /// listening until [`Minio::restart`].
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and data, after [`Minio::kill`], and waits until
    /// it is live.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&binary(), self.dir.path(), self.port);
        self.wait_until_live(self.port);
    }

    fn wait_until_live(&mut self, port: u16) {
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("MinIO exited with {status} while starting:\n{}", self.log());
            }
            if health_status(port) == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("MinIO was not live after {STARTUP:?}:\n{}", self.log());
    }

    /// The server's log so far, for a failing assertion's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("minio.log")).unwrap_or_default()
    }

    /// A credentials file (the `credentials_file` storage option) with this server's keys.
    pub fn credentials_file(&self) -> PathBuf {
        self.dir.path().join("credentials")
    }

    /// The storage URL `s3://spate/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// The storage options to reach this server, as `spate run --storage-option KEY=VALUE`
    /// takes them: path-style requests over plain HTTP, credentials from the credentials file.
    pub fn storage_options(&self) -> BTreeMap<String, String> {
        [
            ("endpoint", self.endpoint.clone()),
            ("region", REGION.to_string()),
            ("virtual_hosted_style_request", "false".to_string()),
            ("allow_http", "true".to_string()),
            (
                "credentials_file",
                self.credentials_file().display().to_string(),
            ),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }

    /// Storage at `s3://spate/<prefix>` on this server, path-style over plain HTTP, with the
    /// credentials in a credentials file; `options` gives everything else (retries are capped
    /// at 3 attempts).
    pub async fn storage(&self, prefix: &str, options: StorageOptions) -> CheckpointStorage {
        let options = StorageOptions {
            endpoint: Some(self.endpoint.clone()),
            region: Some(REGION.into()),
            virtual_hosted_style_request: Some(false),
            allow_http: Some(true),
            credentials_file: Some(self.credentials_file()),
            retry: RetryPolicy {
                max_attempts: 3,
                ..options.retry
            },
            ..options
        };
        CheckpointStorage::open(&self.url(prefix), &options)
            .await
            .expect("opening MinIO storage")
    }
}

impl Drop for Minio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every object under `prefix` of `storage` (listed through the object store, not MinIO's
/// data directory), as paths relative to the storage root.
pub async fn listing(storage: &CheckpointStorage, prefix: &str) -> BTreeSet<String> {
    storage
        .list(&StorePath::from(prefix))
        .await
        .unwrap_or_else(|e| panic!("listing {}: {e}", storage.url_of(&prefix.into())))
        .into_iter()
        .map(|object| object.location.to_string())
        .collect()
}

/// Starts MinIO on `port` serving `dir`/data, its output appended to `dir`/minio.log.
fn spawn(binary: &Path, dir: &Path, port: u16) -> Child {
    let log = File::options()
        .create(true)
        .append(true)
        .open(dir.join("minio.log"))
        .expect("MinIO log file");
    let mut command = Command::new(binary);
    command
        .arg("server")
        .arg(dir.join("data"))
        .arg("--address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--quiet")
        .env("MINIO_ROOT_USER", ACCESS_KEY)
        .env("MINIO_ROOT_PASSWORD", SECRET_KEY)
        .env("MINIO_BROWSER", "off")
        .env("MINIO_UPDATE", "off")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("MinIO log file"))
        .stderr(log);
    // SAFETY: prctl is async-signal-safe; it makes the kernel kill MinIO if the test process
    // dies without running Drop (a killed or aborted test run).
    #[cfg(target_os = "linux")]
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command.spawn().expect("starting MinIO")
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SPATE_MINIO") {
        return PathBuf::from(path);
    }
    let tools = std::env::var_os("SPATE_TOOLS").unwrap_or_else(|| "/var/tmp/spate-tools".into());
    PathBuf::from(tools).join("bin").join("minio")
}

/// MinIO refuses writes once its drive is 99% full, which a shared build machine's disk can
/// be; memory-backed /dev/shm, where there is one, keeps that from failing the test.
fn data_root() -> Option<&'static Path> {
    let shm = Path::new("/dev/shm");
    shm.is_dir().then_some(shm)
}

/// A free loopback port below Linux's ephemeral range (32768 and up), where the source port of
/// an outgoing connection can never take it while the server is down between `kill` and
/// `restart`.
fn free_port() -> u16 {
    let mut draw = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    for _ in 0..1000 {
        draw = draw
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let port = 10_000 + (draw >> 33) as u16 % 22_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port below 32000")
}

/// The HTTP status of MinIO's liveness probe, if it answers.
fn health_status(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET /minio/health/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

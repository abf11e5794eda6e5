//! Helpers for end-to-end tests: build the `backwaters` binary, start real node processes on
//! free loopback ports, kill (SIGKILL) and restart them, and clean up.
//!
//! # Layout
//! - this file: [`TestNode`] and port/binary helpers.
//! - [`member`]: a librdkafka consumer-group member (in-process, or the `group_member` binary).
//! - [`raw`]: a raw Kafka protocol client for bad input.
//! - `tests/`: one file per area: Kafka clients (librdkafka), crash recovery, bad input on raw
//!   sockets, the gRPC API.

pub mod member;
pub mod raw;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the `backwaters` binary, built once per test process (a no-op when fresh).
pub fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("BACKWATERS_BIN") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo).args(["build", "-q", "-p", "backwaters", "--bin", "backwaters"]).current_dir(&root).status().expect("run cargo build");
        assert!(status.success(), "building the backwaters binary failed");
        let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target"));
        target.join("debug").join("backwaters")
    })
    .clone()
}

/// A free TCP port on 127.0.0.1 (bound and released; collisions are retried by the caller).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A node process with its own data dir and ports.
pub struct TestNode {
    pub dir: tempfile::TempDir,
    pub kafka: String,
    pub grpc: String,
    pub metrics: String,
    pub config: PathBuf,
    child: Option<Child>,
}

impl TestNode {
    /// Starts a single-node cluster; `extra` is appended to the config's top level sections.
    pub fn start() -> TestNode {
        Self::start_with("")
    }

    pub fn start_with(extra_toml: &str) -> TestNode {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("cluster.toml");
        let mut n = TestNode { dir, kafka: String::new(), grpc: String::new(), metrics: String::new(), config, child: None };
        // A free port can be taken by another test between probing and binding: retry with
        // fresh ports when that happens.
        for _ in 0..5 {
            // Three distinct ports (the OS may hand a just-released port out again).
            let k = free_port();
            let g = std::iter::repeat_with(free_port).find(|p| *p != k).expect("a port");
            let m = std::iter::repeat_with(free_port).find(|p| *p != k && *p != g).expect("a port");
            (n.kafka, n.grpc, n.metrics) = (format!("127.0.0.1:{k}"), format!("127.0.0.1:{g}"), format!("127.0.0.1:{m}"));
            let text = format!(
                "cluster_name = \"test\"\n{extra_toml}\n[[nodes]]\nid = 1\nzone = \"east\"\nkafka = \"{}\"\ngrpc = \"{}\"\nmetrics = \"{}\"\ndata_dir = \"data\"\n",
                n.kafka, n.grpc, n.metrics
            );
            std::fs::write(&n.config, text).expect("write config");
            if n.try_spawn() {
                return n;
            }
        }
        panic!("no free ports after 5 tries; log:\n{}", n.log());
    }

    /// Starts the process; false when it could not bind its ports (the caller picks others).
    fn try_spawn(&mut self) -> bool {
        self.launch();
        match self.wait_ready() {
            Ok(()) => true,
            Err(log) if log.contains("Address already in use") => {
                let _ = std::fs::remove_file(self.dir.path().join("node.log"));
                false
            }
            Err(log) => panic!("node exited early; log:\n{log}"),
        }
    }

    fn spawn(&mut self) {
        // A restart keeps its ports; one still held for a moment is retried.
        for _ in 0..20 {
            if self.try_spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("node could not bind its ports again; log:\n{}", self.log());
    }

    fn launch(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.path().join("node.log")).expect("log file");
        let child = Command::new(binary())
            .args(["node", "--config"])
            .arg(&self.config)
            .args(["--node", "1"])
            .env("RUST_LOG", std::env::var("BACKWATERS_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start backwaters");
        self.child = Some(child);
    }

    /// Waits until both listeners answer; `Err(log)` when the process exited first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return Err(self.log());
                }
            }
            if TcpStream::connect(&self.kafka).is_ok() && TcpStream::connect(&self.grpc).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node did not start listening within 30 s; log:\n{}", self.log());
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no last flush.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("node running");
        unsafe_sigterm(c.id());
        c.wait().expect("wait for node")
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- node log ({}) ---\n{}", self.dir.path().display(), self.log());
        }
    }
}

/// Runs a command to completion, killing it (and failing) after `limit`.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("command did not finish within {limit:?}; stdout:\n{}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

//! Any service as operators run it: a `patroli serve <service>` child process
//! with a clean environment, reached over its HTTP endpoints.

use std::ffi::OsStr;
use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ServiceProcess {
    pub child: Child,
    /// `/healthz`, `/readyz` and `/metrics`.
    pub http_port: u16,
    /// Everything the service wrote to stderr so far (its logs and its
    /// exit error), so a test can assert why it stopped.
    stderr: Arc<Mutex<String>>,
}

impl ServiceProcess {
    /// `patroli serve <service>` with only PATH and RUST_LOG (default `warn`)
    /// from this process, its HTTP endpoints on a free port, then `env`.
    pub fn spawn<K, V>(service: &str, env: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let http_port = super::free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_patroli"))
            .args(["serve", service])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("PATROLI_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .envs(env)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn patroli serve {service}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, kept) = (child.stderr.take().expect("piped stderr"), stderr.clone());
        // Kept for assertions and still shown, as when it was inherited. Ends
        // at the service's exit (end of the pipe).
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                eprintln!("{line}");
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        ServiceProcess {
            child,
            http_port,
            stderr,
        }
    }

    /// What the service wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Ends the service if it still runs (clean-up; see `sigkill` for a kill
    /// a test relies on).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILLs the service and reaps it. Fails the test unless it was still
    /// running and died of that signal: a kill that lands on a process that
    /// had already exited proves nothing about crash safety.
    pub fn sigkill(&mut self) {
        use std::os::unix::process::ExitStatusExt;
        if let Some(status) = self.child.try_wait().expect("poll the service") {
            panic!(
                "the service had already exited ({status}) before the SIGKILL; its stderr:\n{}",
                self.stderr()
            );
        }
        self.child.kill().expect("SIGKILL the service");
        let status = self.child.wait().expect("reap the service");
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "the service ended with {status}, not by the SIGKILL"
        );
    }

    /// Waits for the service to exit by itself within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the service") {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "the service was still running after {limit:?}; its stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.child.wait().expect("wait for the service")
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path)
    }

    /// Value of an unlabelled or fully-labelled metric line, e.g.
    /// `patroli_assigned_partitions` or `patroli_dlq_total{reason="not_json"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn wait_for_metric(
        &self,
        series: &str,
        want: impl Fn(f64) -> bool,
        limit: Duration,
    ) -> f64 {
        let started = Instant::now();
        loop {
            if let Some(v) = self.metric(series) {
                if want(v) {
                    return v;
                }
            }
            assert!(
                started.elapsed() < limit,
                "{series} did not reach the expected value within {limit:?} (last {:?})",
                self.metric(series)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `/readyz` answers `status`; fails if the service exits.
    pub fn wait_readyz(&mut self, status: u16, limit: Duration) {
        let started = Instant::now();
        loop {
            if let Some(exit) = self.child.try_wait().expect("poll the service") {
                panic!("the service exited early with {exit}");
            }
            if self.get("/readyz").is_some_and(|(s, _)| s == status) {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "/readyz did not answer {status} within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

/// Gives a service-specific wrapper the `ServiceProcess` methods.
macro_rules! service_wrapper {
    ($wrapper:ty, $field:tt) => {
        impl std::ops::Deref for $wrapper {
            type Target = $crate::common::ServiceProcess;
            fn deref(&self) -> &Self::Target {
                &self.$field
            }
        }
        impl std::ops::DerefMut for $wrapper {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.$field
            }
        }
    };
}
pub(crate) use service_wrapper;

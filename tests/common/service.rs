//! Any service as operators run it: a `patroli serve <service>` child process
//! with a clean environment, reached over its HTTP endpoints.

use std::ffi::OsStr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct ServiceProcess {
    pub child: Child,
    /// `/healthz`, `/readyz` and `/metrics`.
    pub http_port: u16,
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
        let child = Command::new(env!("CARGO_BIN_EXE_patroli"))
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
            .spawn()
            .unwrap_or_else(|e| panic!("spawn patroli serve {service}: {e}"));
        ServiceProcess { child, http_port }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

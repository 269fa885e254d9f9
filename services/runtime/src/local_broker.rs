//! A throwaway tansu broker on a free loopback port, for `patroli up` and the
//! integration tests. Installation is shared with `deploy/local/broker.sh`
//! (one place knows the pinned package); the process itself is owned here so
//! it dies with its owner.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot install the local broker with {script}: {detail}")]
    Install { script: PathBuf, detail: String },
    #[error("cannot start the local broker {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        source: std::io::Error,
    },
    #[error("the local broker did not answer on {addr} within {waited:?}")]
    NotAnswering { addr: SocketAddr, waited: Duration },
    #[error("the local broker exited during start-up with {status}")]
    Exited { status: std::process::ExitStatus },
    #[error("no free loopback port: {0}")]
    NoPort(std::io::Error),
}

pub struct LocalBroker {
    child: Child,
    addr: SocketAddr,
}

impl LocalBroker {
    /// Installs tansu if needed (via `<repo>/deploy/local/broker.sh install`,
    /// or `PATROLI_TANSU_BIN` if set) and starts it on a free port.
    pub fn start(repo_root: &Path) -> Result<Self, BrokerError> {
        let bin = match std::env::var_os("PATROLI_TANSU_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => install(repo_root)?,
        };
        // The port is chosen by binding port 0 and releasing it, so another
        // process can grab it in between: retry with a fresh port then.
        let mut last_error = None;
        for _ in 0..3 {
            match Self::start_on_free_port(&bin) {
                Ok(broker) => return Ok(broker),
                Err(e @ BrokerError::Exited { .. }) => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("three attempts failed"))
    }

    fn start_on_free_port(bin: &Path) -> Result<Self, BrokerError> {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(BrokerError::NoPort)?;
        let url = format!("tcp://{addr}");
        let log = std::env::var_os("PATROLI_BROKER_LOG")
            .and_then(|path| std::fs::File::create(path).ok())
            .map(Stdio::from)
            .unwrap_or_else(Stdio::null);
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
            ])
            .arg(&url)
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| BrokerError::Spawn {
                bin: bin.to_owned(),
                source,
            })?;
        let mut broker = LocalBroker { child, addr };
        broker.wait_until_answering(Duration::from_secs(10))?;
        Ok(broker)
    }

    fn wait_until_answering(&mut self, limit: Duration) -> Result<(), BrokerError> {
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(BrokerError::Exited { status });
            }
            if started.elapsed() > limit {
                return Err(BrokerError::NotAnswering {
                    addr: self.addr,
                    waited: limit,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn install(repo_root: &Path) -> Result<PathBuf, BrokerError> {
    let script = repo_root.join("deploy/local/broker.sh");
    let failed = |detail: String| BrokerError::Install {
        script: script.clone(),
        detail,
    };
    let output = Command::new("bash")
        .arg(&script)
        .arg("install")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(String::from_utf8_lossy(&output.stderr).into_owned()));
    }
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    Ok(PathBuf::from(path))
}

/// The repository root: the nearest ancestor of `start` holding the broker
/// script, so `patroli up` works from any folder inside a checkout.
pub fn find_repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("deploy/local/broker.sh").is_file())
        .map(Path::to_owned)
}

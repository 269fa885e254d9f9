//! size: one broker process's lifecycle (ports, start, SASL, kill, restart on the same data).
//!
//! A throwaway Apache Kafka broker (single-node KRaft) on free loopback ports,
//! for `patroli up` and the integration tests. How the broker is installed,
//! configured and formatted lives in one place, `deploy/local/kafka.sh`; this
//! file owns the process: it picks the ports and the data folder, waits until
//! the broker serves metadata, and can SIGKILL and restart it on the same data
//! (the broker-crash tests).
//!
//! `start_secured` runs the same broker with SASL/SCRAM and the StandardAuthorizer: one
//! SCRAM user per principal of `patroli_contracts::access` (random passwords, made per
//! broker), plus an admin super user that creates the table's ACLs (`crate::acl`).
//!
//! The broker is spawned from a keeper thread that lives exactly as long as
//! the `LocalBroker`, with `PR_SET_PDEATHSIG`, so the JVM dies with its owner
//! even when the owner is SIGKILLed or is a test binary's never-dropped
//! static (the death signal fires when the *spawning thread* ends).

use crate::KafkaConfig;
use patroli_contracts::access::Principal;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SCRIPT: &str = "deploy/local/kafka.sh";
/// A cold JVM on a busy 2-core machine (parallel test binaries, a compiler)
/// has been seen taking 20 s; a minute means something is wrong.
const START_LIMIT: Duration = Duration::from_secs(90);

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot install Apache Kafka with {script}: {detail}")]
    Install { script: PathBuf, detail: String },
    #[error("cannot start Apache Kafka ({script}): {source}")]
    Spawn {
        script: PathBuf,
        source: std::io::Error,
    },
    #[error("Apache Kafka did not serve metadata on {addr} within {waited:?}; its log: {log}")]
    NotAnswering {
        addr: SocketAddr,
        waited: Duration,
        log: PathBuf,
    },
    #[error("Apache Kafka exited during start-up with {status}; last lines of {log}:\n{tail}")]
    Exited {
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("no free loopback port: {0}")]
    NoPort(std::io::Error),
    #[error("cannot prepare the broker's data folder {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the ACLs of the local broker: {0}")]
    Acls(#[from] crate::acl::AclError),
}

/// The SCRAM user every secured local broker has as its only (client-side) super user.
pub const LOCAL_ADMIN: &str = "patroli-admin";

/// What the keeper thread is asked to do with the broker process.
enum Order {
    Spawn(mpsc::Sender<std::io::Result<()>>),
    Kill(mpsc::Sender<()>),
    Status(mpsc::Sender<Option<std::process::ExitStatus>>),
}

pub struct LocalBroker {
    orders: mpsc::Sender<Order>,
    keeper: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
    data_dir: PathBuf,
    /// SCRAM users and passwords, the admin first; empty for a plaintext broker.
    users: Vec<(String, String)>,
}

impl LocalBroker {
    /// Installs Kafka if needed (`deploy/local/kafka.sh install`, Maven
    /// Central) and starts a fresh plaintext broker in a new temporary data folder.
    pub fn start(repo_root: &Path) -> Result<Self, BrokerError> {
        Self::start_with(repo_root, Vec::new())
    }

    /// A fresh broker whose client port needs SASL/SCRAM-SHA-512 and whose authorizer allows
    /// each of `principals` exactly its grants (and the admin everything).
    pub fn start_secured(repo_root: &Path, principals: &[Principal]) -> Result<Self, BrokerError> {
        let users = std::iter::once((LOCAL_ADMIN.to_owned(), hex_token()))
            .chain(principals.iter().map(|p| (p.name.to_owned(), hex_token())))
            .collect();
        let broker = Self::start_with(repo_root, users)?;
        crate::acl::create_acls(&broker.kafka_config(), principals)?;
        Ok(broker)
    }

    fn start_with(repo_root: &Path, users: Vec<(String, String)>) -> Result<Self, BrokerError> {
        let script = repo_root.join(SCRIPT);
        install(&script)?;
        // The ports are chosen by binding port 0 and releasing it, so another
        // process can grab one in between: retry with fresh ports then.
        let mut last_error = None;
        for _ in 0..3 {
            let data_dir = fresh_data_dir()?;
            match Self::start_in(&script, data_dir.clone(), users.clone()) {
                Ok(broker) => return Ok(broker),
                Err(e @ BrokerError::Exited { .. }) => {
                    let _ = std::fs::remove_dir_all(&data_dir);
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.expect("three attempts failed"))
    }

    fn start_in(
        script: &Path,
        data_dir: PathBuf,
        users: Vec<(String, String)>,
    ) -> Result<Self, BrokerError> {
        let port = free_port()?;
        let controller_port = free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = data_dir.join("broker.log");
        let mut command = Command::new("bash");
        command
            .arg(script)
            .arg("run")
            .arg(&data_dir)
            .arg(port.to_string())
            .arg(controller_port.to_string())
            .stdin(Stdio::null());
        if !users.is_empty() {
            command.arg(write_users(&data_dir, &users)?);
        }
        let (orders, keeper) = spawn_keeper(command, log.clone());
        let mut broker = LocalBroker {
            orders,
            keeper: Some(keeper),
            addr,
            data_dir,
            users,
        };
        broker
            .spawn_process()
            .map_err(|source| BrokerError::Spawn {
                script: script.to_owned(),
                source,
            })?;
        broker.wait_until_serving(START_LIMIT)?;
        Ok(broker)
    }

    /// How a client reaches this broker: plaintext, or as the admin super user when secured.
    pub fn kafka_config(&self) -> KafkaConfig {
        match self.users.first() {
            Some((admin, _)) => self.kafka_config_as(admin).expect("the admin is a user"),
            None => KafkaConfig {
                brokers: self.bootstrap_servers(),
                ..KafkaConfig::default()
            },
        }
    }

    /// How `principal` reaches this secured broker (`None` on a plaintext broker or for a
    /// name it has no user for).
    pub fn kafka_config_as(&self, principal: &str) -> Option<KafkaConfig> {
        let (name, password) = self.users.iter().find(|(name, _)| name == principal)?;
        Some(KafkaConfig {
            brokers: self.bootstrap_servers(),
            security_protocol: Some("sasl_plaintext".into()),
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some(name.clone()),
            sasl_password: Some(password.clone()),
            ..KafkaConfig::default()
        })
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's log, kept in its data folder.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("broker.log")
    }

    /// SIGKILLs the broker, as a machine crash would; the data stays.
    pub fn kill(&mut self) {
        let (done, wait) = mpsc::channel();
        if self.orders.send(Order::Kill(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// Starts the broker again on the same data folder and port, after
    /// `kill`, and waits until it serves metadata.
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.kill();
        self.spawn_process().map_err(|source| BrokerError::Spawn {
            script: PathBuf::from(SCRIPT),
            source,
        })?;
        self.wait_until_serving(START_LIMIT)
    }

    fn spawn_process(&self) -> std::io::Result<()> {
        let (done, wait) = mpsc::channel();
        self.orders
            .send(Order::Spawn(done))
            .map_err(|_| std::io::Error::other("the broker's keeper thread is gone"))?;
        wait.recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the broker's keeper thread is gone")))
    }

    fn exit_status(&self) -> Option<std::process::ExitStatus> {
        let (done, wait) = mpsc::channel();
        self.orders.send(Order::Status(done)).ok()?;
        wait.recv().ok().flatten()
    }

    /// Ready means a client gets metadata naming this broker: the port alone
    /// opens before the KRaft controller has elected itself.
    fn wait_until_serving(&mut self, limit: Duration) -> Result<(), BrokerError> {
        let started = Instant::now();
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok()
                && serves_metadata(&self.kafka_config())
            {
                return Ok(());
            }
            if let Some(status) = self.exit_status() {
                return Err(BrokerError::Exited {
                    status,
                    tail: log_tail(&self.log_path(), 40),
                    log: self.log_path(),
                });
            }
            if started.elapsed() > limit {
                return Err(BrokerError::NotAnswering {
                    addr: self.addr,
                    waited: limit,
                    log: self.log_path(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for LocalBroker {
    fn drop(&mut self) {
        self.kill();
        // Dropping the sender ends the keeper thread.
        let (orders, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.orders, orders));
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
        if std::thread::panicking() {
            // A failing test keeps the broker's log for whoever reads it.
            eprintln!(
                "Apache Kafka's log is kept at {}",
                self.log_path().display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// The thread that spawns, kills and reaps the broker process: see the
/// module comment for why it must be one long-lived thread.
fn spawn_keeper(
    mut command: Command,
    log: PathBuf,
) -> (mpsc::Sender<Order>, std::thread::JoinHandle<()>) {
    let (orders, inbox) = mpsc::channel::<Order>();
    let keeper = std::thread::Builder::new()
        .name("kafka-keeper".into())
        .spawn(move || {
            let mut child: Option<Child> = None;
            for order in inbox {
                match order {
                    Order::Spawn(done) => {
                        let spawned = spawn_dying_with_this_thread(&mut command, &log);
                        let result = spawned.map(|c| child = Some(c));
                        let _ = done.send(result);
                    }
                    Order::Kill(done) => {
                        if let Some(mut c) = child.take() {
                            let _ = c.kill();
                            let _ = c.wait();
                        }
                        let _ = done.send(());
                    }
                    Order::Status(done) => {
                        let status = child.as_mut().and_then(|c| c.try_wait().ok().flatten());
                        let _ = done.send(status);
                    }
                }
            }
            if let Some(mut c) = child {
                let _ = c.kill();
                let _ = c.wait();
            }
        })
        .expect("spawn the kafka keeper thread");
    (orders, keeper)
}

fn spawn_dying_with_this_thread(command: &mut Command, log: &Path) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    command.stdout(out.try_clone()?).stderr(out);
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

fn serves_metadata(kafka: &KafkaConfig) -> bool {
    let consumer: Result<BaseConsumer, _> =
        kafka.client_config("patroli-local-broker-probe").create();
    let Ok(consumer) = consumer else {
        return false;
    };
    consumer
        .fetch_metadata(None, Duration::from_secs(2))
        .map(|metadata| !metadata.brokers().is_empty())
        .unwrap_or(false)
}

/// 128 random bits in hex: a SCRAM password (no character the broker's config quoting or
/// the script's `name password` lines would have to escape).
fn hex_token() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `name password` lines `kafka.sh run` reads, readable by this user only.
fn write_users(data_dir: &Path, users: &[(String, String)]) -> Result<PathBuf, BrokerError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("scram-users");
    let failed = |source| BrokerError::DataDir {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(failed)?;
    for (name, password) in users {
        writeln!(file, "{name} {password}").map_err(failed)?;
    }
    Ok(path)
}

fn install(script: &Path) -> Result<(), BrokerError> {
    let failed = |detail: String| BrokerError::Install {
        script: script.to_owned(),
        detail,
    };
    // The script's progress and errors (a missing Java, Maven's log) go
    // straight to the terminal: a first install takes a while.
    let status = Command::new("bash")
        .arg(script)
        .arg("install")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(format!(
            "it exited with {status}; its output is above"
        )));
    }
    Ok(())
}

fn free_port() -> Result<u16, BrokerError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BrokerError::NoPort)
}

fn fresh_data_dir() -> Result<PathBuf, BrokerError> {
    let base = std::env::temp_dir();
    remove_orphaned_data_dirs(&base);
    let name = format!(
        "patroli-kafka-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let path = base.join(name);
    std::fs::create_dir_all(&path).map_err(|source| BrokerError::DataDir {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// A test binary's shared broker is a static that is never dropped, so its
/// folder outlives it; the next broker removes folders whose owner is gone.
fn remove_orphaned_data_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix("patroli-kafka-"))
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(owner).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn log_tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The repository root: the nearest ancestor of `start` holding the broker
/// script, so `patroli up` works from any folder inside a checkout.
pub fn find_repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join(SCRIPT).is_file())
        .map(Path::to_owned)
}

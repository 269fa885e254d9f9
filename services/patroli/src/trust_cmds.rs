//! `patroli keys generate` (the dashboard's decision signing key and the takedown service's
//! verifying keys) and `patroli audit verify` (the audit topic's hash chains).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use patroli_contracts::{topics, DecisionSigner, DecisionVerifier};
use patroli_runtime::KafkaConfig;
use patroli_takedown::audit_chain::ChainCheck;

#[derive(clap::Subcommand)]
pub enum KeysCommand {
    /// Make a decision signing key (for the dashboard's Secret only) and add its public key to
    /// the takedown service's verifying keys file (created if absent; a rotation keeps the
    /// old keys there until decisions signed with them no longer need checking).
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    /// Names the key in every signature, e.g. `dashboard-2024-02`.
    #[arg(long)]
    pub key_id: String,
    /// Where to write the private key (must not exist; written readable by its owner only).
    #[arg(long)]
    pub signing_key: PathBuf,
    /// The verifying keys file to add the public key to.
    #[arg(long)]
    pub verifying_keys: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Read the audit topic from its start to its end and recompute every partition's hash
    /// chain; exits non-zero naming the first broken link of each broken partition.
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[arg(long, env = "PATROLI_KAFKA__BROKERS")]
    pub brokers: String,
    #[arg(long, default_value = topics::TAKEDOWN_AUDIT)]
    pub topic: String,
}

pub fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Generate(args) = command;
    generate(&args.key_id, &args.signing_key, &args.verifying_keys)?;
    println!(
        "signing key {} written to {} (the dashboard's decision_signing_key_file); public key added to {} (the takedown service's decision_keys_file)",
        args.key_id,
        args.signing_key.display(),
        args.verifying_keys.display()
    );
    Ok(())
}

/// Writes a new signing key to `signing_key` and adds its public key to `verifying_keys`.
pub fn generate(key_id: &str, signing_key: &Path, verifying_keys: &Path) -> anyhow::Result<()> {
    let signer = DecisionSigner::generate(key_id)?;
    let existing = match std::fs::read_to_string(verifying_keys) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", verifying_keys.display())),
    };
    let updated =
        DecisionVerifier::add_to(&existing, &signer, &verifying_keys.display().to_string())?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(signing_key)
        .with_context(|| {
            format!(
                "creating {} (an existing key is never overwritten)",
                signing_key.display()
            )
        })?;
    file.write_all(signer.to_toml().as_bytes())
        .with_context(|| format!("writing {}", signing_key.display()))?;
    std::fs::write(verifying_keys, updated)
        .with_context(|| format!("writing {}", verifying_keys.display()))?;
    Ok(())
}

pub fn audit(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify(args) = command;
    let kafka = KafkaConfig {
        brokers: args.brokers.clone(),
        ..KafkaConfig::default()
    };
    let mut check = ChainCheck::default();
    let mut records = 0u64;
    let group = format!("patroli-audit-verify-{}", std::process::id());
    let cell = std::cell::RefCell::new(&mut check);
    patroli_takedown::service::read_to_end(
        &kafka,
        &group,
        &args.topic,
        None,
        |partition, low, _| cell.borrow_mut().partition(partition, low),
        |message| {
            use rdkafka::message::Message;
            records += 1;
            cell.borrow_mut()
                .record(message.partition(), message.offset(), message.payload());
            Ok(())
        },
    )
    .with_context(|| format!("reading {}", args.topic))?;
    for line in check.summary() {
        println!("{}: {line}", args.topic);
    }
    let broken = check.broken();
    if !broken.is_empty() {
        for link in &broken {
            eprintln!("{}: broken link at {link}", args.topic);
        }
        bail!(
            "{}: {} partition(s) with a broken chain",
            args.topic,
            broken.len()
        );
    }
    println!("{}: {records} record(s), every chain intact", args.topic);
    Ok(())
}

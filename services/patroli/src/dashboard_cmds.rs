//! `patroli dashboard-user`: the accounts-file entry for a reviewer or viewer.

use anyhow::{bail, Context};
use std::io::BufRead;

#[derive(clap::Args)]
pub struct UserArgs {
    /// The name the person signs in with; recorded on every decision they make.
    #[arg(long)]
    user: String,
    /// `reviewer` (may confirm or reject) or `viewer`.
    #[arg(long, value_parser = ["reviewer", "viewer"])]
    role: String,
}

/// Reads the password from the first line of stdin (so it stays out of the shell history and
/// the process list) and prints the entry to add to the accounts file.
pub fn user(args: UserArgs) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 12 {
        bail!("the password must be at least 12 characters");
    }
    println!(
        "[[users]]\nuser = {:?}\npassword_hash = \"{}\"\nrole = \"{}\"",
        args.user,
        patroli_dashboard::hash_password(password),
        args.role
    );
    Ok(())
}

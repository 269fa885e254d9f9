//! Finding a model directory named by a relative path (the default
//! `models/patroli-id-v7`, or `--model models/...`) from any working
//! directory: the shipped models live in the patroli checkout's `models/`
//! folder, not wherever a command happens to be run.

use std::path::{Path, PathBuf};

use crate::spec::SPEC_FILE;
use crate::ModelError;

/// The patroli checkout (or an installed copy of its `models/` folder's
/// parent) that relative model paths are also looked up in.
pub const HOME_ENV: &str = "PATROLI_HOME";

/// The file that marks a patroli checkout, and installs the base encoder.
const INSTALL_BASE: &str = "models/install-base.sh";

/// `dir` if it is absolute; else the first of these that holds a model
/// (`patroli.json`): `dir` under the working directory, under
/// `$PATROLI_HOME`, under the checkout holding this binary, under the
/// checkout it was built from. The error lists every place tried.
pub fn locate_model_dir(dir: &Path) -> Result<PathBuf, ModelError> {
    if dir.is_absolute() {
        return Ok(dir.to_path_buf());
    }
    let mut tried: Vec<(PathBuf, &'static str)> = Vec::new();
    let mut consider = |root: PathBuf, what: &'static str| {
        let candidate = root.join(dir);
        if !tried.iter().any(|(seen, _)| *seen == candidate) {
            tried.push((candidate, what));
        }
    };
    if let Ok(cwd) = std::env::current_dir() {
        consider(cwd, "the working directory");
    }
    if let Some(home) = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty()) {
        consider(PathBuf::from(home), HOME_ENV);
    }
    let checkout_of = |start: &Path| {
        start
            .ancestors()
            .find(|a| a.join(INSTALL_BASE).is_file())
            .map(Path::to_path_buf)
    };
    if let Some(root) = std::env::current_exe()
        .ok()
        .and_then(|exe| checkout_of(&exe))
    {
        consider(root, "the checkout holding this binary");
    }
    if let Some(root) = checkout_of(Path::new(env!("CARGO_MANIFEST_DIR"))) {
        consider(root, "the checkout this binary was built from");
    }
    match tried
        .iter()
        .find(|(candidate, _)| candidate.join(SPEC_FILE).is_file())
    {
        Some((found, _)) => Ok(found.clone()),
        None => Err(ModelError::NotFound {
            dir: dir.to_path_buf(),
            tried,
        }),
    }
}

/// The `NotFound` error's text: each place tried, then how to get a model.
pub(crate) fn not_found_message(dir: &Path, tried: &[(PathBuf, &'static str)]) -> String {
    let places: String = tried
        .iter()
        .map(|(path, what)| format!("\n  {} ({what})", path.display()))
        .collect();
    format!(
        "no model {} ({SPEC_FILE}) in any of:{places}\nthe trained models ship in the \
         patroli checkout's models/ folder: run from it, set {HOME_ENV} to it, or pass the \
         model directory; the base encoder they need is installed by {INSTALL_BASE}",
        dir.display()
    )
}

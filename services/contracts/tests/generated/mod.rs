//! Files under `deploy/` rendered from a table in this crate: the committed copy must be what
//! the table renders today, and an environment variable rewrites it.

use std::path::Path;

/// Asserts `deploy/<file>` holds `expected`; with `update_var` set, writes it first.
pub fn assert_committed(file: &str, expected: &str, update_var: &str, table: &str, test: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file);
    if std::env::var_os(update_var).is_some() {
        std::fs::write(&path, expected).unwrap_or_else(|e| panic!("write {file}: {e}"));
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} differs from {table}; rewrite it with \
         `{update_var}=1 cargo test -p patroli-contracts --test {test}`",
        path.display()
    );
}

//! `deploy/k8s/base/kafkausers.yaml` is generated from the ACL table: a change to one without
//! the other fails here. `UPDATE_KAFKA_USERS=1` rewrites the file.

use std::path::Path;

#[test]
fn the_committed_kafka_users_are_the_acl_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/base/kafkausers.yaml");
    let expected = patroli_contracts::access::strimzi_users();
    if std::env::var_os("UPDATE_KAFKA_USERS").is_some() {
        std::fs::write(&path, &expected).expect("write kafkausers.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == expected,
        "{} differs from patroli_contracts::access::PRINCIPALS; rewrite it with \
         `UPDATE_KAFKA_USERS=1 cargo test -p patroli-contracts --test kafka_users`",
        path.display()
    );
}

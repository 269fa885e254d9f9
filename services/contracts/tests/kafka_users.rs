//! `deploy/k8s/base/kafkausers.yaml` is generated from the ACL table: a change to one without
//! the other fails here. `UPDATE_KAFKA_USERS=1` rewrites the file.

mod generated;

#[test]
fn the_committed_kafka_users_are_the_acl_table() {
    generated::assert_committed(
        "k8s/base/kafkausers.yaml",
        &patroli_contracts::access::strimzi_users(),
        "UPDATE_KAFKA_USERS",
        "patroli_contracts::access::PRINCIPALS",
        "kafka_users",
    );
}

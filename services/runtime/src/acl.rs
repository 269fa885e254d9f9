//! Creates the ACLs of `patroli_contracts::access` on a broker through Kafka's admin API
//! (CreateAcls). rust-rdkafka wraps no ACL call, so this drives librdkafka's C API directly;
//! every pointer it creates is owned by a guard that frees it. The secured local broker uses
//! it; production clusters get the same table as Strimzi `KafkaUser`s.

use crate::KafkaConfig;
use patroli_contracts::access::{Operation, Principal, Resource};
use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use std::ffi::{c_char, CStr, CString};
use std::time::Duration;

const ANSWER_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot create the admin client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("librdkafka refused the ACL `{binding}`: {detail}")]
    Binding { binding: String, detail: String },
    #[error("the broker did not answer CreateAcls within {0:?}")]
    NoAnswer(Duration),
    #[error("CreateAcls failed: {0}")]
    Request(String),
    #[error("the broker refused the ACL `{binding}`: {detail}")]
    Refused { binding: String, detail: String },
}

/// One allowed (principal, operation, resource), as Kafka stores ACLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRow {
    pub principal: String,
    pub operation: Operation,
    pub resource: Resource,
}

impl std::fmt::Display for AclRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = match self.resource {
            Resource::Topic(name) => format!("Topic:{name}"),
            Resource::Group(name) => format!("Group:{name}"),
            Resource::TransactionalIdPrefix(prefix) => format!("TransactionalId:{prefix}*"),
            Resource::Cluster => "Cluster".to_owned(),
        };
        write!(
            f,
            "User:{} {} {resource}",
            self.principal,
            self.operation.name()
        )
    }
}

/// Every ACL the table grants, one row per operation.
pub fn acl_rows(principals: &[Principal]) -> Vec<AclRow> {
    principals
        .iter()
        .flat_map(|p| {
            p.grants.iter().flat_map(move |grant| {
                grant.operations.iter().map(move |&operation| AclRow {
                    principal: p.name.to_owned(),
                    operation,
                    resource: grant.resource,
                })
            })
        })
        .collect()
}

/// Allows exactly the table's rows on the broker `kafka` reaches (as a super user).
pub fn create_acls(kafka: &KafkaConfig, principals: &[Principal]) -> Result<(), AclError> {
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config("patroli-acl-admin").create()?;
    let rk = admin.inner().native_ptr();
    let rows = acl_rows(principals);
    let bindings = rows
        .iter()
        .map(Binding::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut raw: Vec<*mut rd::rd_kafka_AclBinding_t> = bindings.iter().map(|b| b.0).collect();
    // SAFETY: `rk` lives as long as `admin`; the queue, options and event are freed by their
    // guards before `admin` drops; librdkafka copies the bindings it is given.
    unsafe {
        let queue = Guard(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
        let options = Guard(
            rd::rd_kafka_AdminOptions_new(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            ),
            rd::rd_kafka_AdminOptions_destroy,
        );
        rd::rd_kafka_CreateAcls(rk, raw.as_mut_ptr(), raw.len(), options.0, queue.0);
        let event = rd::rd_kafka_queue_poll(queue.0, ANSWER_LIMIT.as_millis() as i32);
        if event.is_null() {
            return Err(AclError::NoAnswer(ANSWER_LIMIT));
        }
        let event = Guard(event, rd::rd_kafka_event_destroy);
        if rd::rd_kafka_event_error(event.0) != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        {
            return Err(AclError::Request(text(rd::rd_kafka_event_error_string(
                event.0,
            ))));
        }
        let result = rd::rd_kafka_event_CreateAcls_result(event.0);
        if result.is_null() {
            return Err(AclError::Request(
                "the answer is not a CreateAcls result".into(),
            ));
        }
        let mut count = 0usize;
        let results = rd::rd_kafka_CreateAcls_result_acls(result, &mut count);
        if count != rows.len() {
            return Err(AclError::Request(format!(
                "{count} results for {} ACLs",
                rows.len()
            )));
        }
        for (i, row) in rows.iter().enumerate() {
            let error = rd::rd_kafka_acl_result_error(*results.add(i));
            if !error.is_null() {
                return Err(AclError::Refused {
                    binding: row.to_string(),
                    detail: text(rd::rd_kafka_error_string(error)),
                });
            }
        }
    }
    Ok(())
}

/// A librdkafka object freed by `1` when dropped.
struct Guard<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Guard<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from librdkafka's matching constructor and is freed once.
        unsafe { (self.1)(self.0) }
    }
}

struct Binding(*mut rd::rd_kafka_AclBinding_t);

impl Binding {
    fn new(row: &AclRow) -> Result<Self, AclError> {
        use rd::rd_kafka_ResourcePatternType_t as Pattern;
        use rd::rd_kafka_ResourceType_t as Kind;
        let refused = |detail: String| AclError::Binding {
            binding: row.to_string(),
            detail,
        };
        let (kind, name, pattern) = match row.resource {
            Resource::Topic(name) => (
                Kind::RD_KAFKA_RESOURCE_TOPIC,
                name,
                Pattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            ),
            Resource::Group(name) => (
                Kind::RD_KAFKA_RESOURCE_GROUP,
                name,
                Pattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            ),
            Resource::TransactionalIdPrefix(prefix) => (
                Kind::RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
                prefix,
                Pattern::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
            ),
            Resource::Cluster => (
                Kind::RD_KAFKA_RESOURCE_BROKER,
                "kafka-cluster",
                Pattern::RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            ),
        };
        let operation = match row.operation {
            Operation::Read => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_READ,
            Operation::Write => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE,
            Operation::Describe => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE,
            Operation::IdempotentWrite => {
                rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE
            }
        };
        let c = |s: &str| CString::new(s).map_err(|e| refused(e.to_string()));
        let (name, principal, host) = (c(name)?, c(&format!("User:{}", row.principal))?, c("*")?);
        let mut errstr = [0 as c_char; 512];
        // SAFETY: every string outlives the call (librdkafka copies them); errstr is a
        // buffer of the size passed.
        let binding = unsafe {
            rd::rd_kafka_AclBinding_new(
                kind,
                name.as_ptr(),
                pattern,
                principal.as_ptr(),
                host.as_ptr(),
                operation,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if binding.is_null() {
            // SAFETY: librdkafka NUL-terminates errstr within its length.
            return Err(refused(unsafe { text(errstr.as_ptr()) }));
        }
        Ok(Binding(binding))
    }
}

impl Drop for Binding {
    fn drop(&mut self) {
        // SAFETY: made by rd_kafka_AclBinding_new, freed once.
        unsafe { rd::rd_kafka_AclBinding_destroy(self.0) }
    }
}

/// A C string librdkafka owns, copied.
unsafe fn text(s: *const c_char) -> String {
    if s.is_null() {
        return String::new();
    }
    CStr::from_ptr(s).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use patroli_contracts::access::{principal, KEDA};

    #[test]
    fn each_operation_of_a_grant_is_one_acl() {
        let rows = acl_rows(std::slice::from_ref(principal(KEDA).unwrap()));
        let shown: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "User:patroli-keda Describe Topic:posts.raw.v1",
                "User:patroli-keda Describe Group:patroli-classifier",
            ]
        );
    }
}

//! What a failed produce means, shared by every service that writes to Kafka, so the classifier
//! and the takedown service react to the same broker answer the same way.

use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// The kind of a failed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The broker or the network may recover: produce it again.
    Transient,
    /// This record can never be written: replace it by a dead letter saying so.
    Rejected,
    /// Nothing will be written until someone fixes topics or permissions.
    Fatal,
}

pub fn classify(error: &KafkaError) -> Failure {
    use RDKafkaErrorCode as Code;
    match error.rdkafka_error_code() {
        Some(Code::MessageSizeTooLarge | Code::InvalidMessageSize | Code::InvalidRecord) => {
            Failure::Rejected
        }
        Some(
            Code::TopicAuthorizationFailed
            | Code::ClusterAuthorizationFailed
            | Code::TransactionalIdAuthorizationFailed
            | Code::SaslAuthenticationFailed
            | Code::Authentication
            | Code::UnknownTopicOrPartition
            | Code::UnknownTopic
            | Code::UnknownPartition
            | Code::Fatal,
        ) => Failure::Fatal,
        _ => Failure::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::KafkaError;

    #[test]
    fn broker_answers_are_classified() {
        let produce = |code| KafkaError::MessageProduction(code);
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::MessageSizeTooLarge)),
            Failure::Rejected
        );
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::TopicAuthorizationFailed)),
            Failure::Fatal
        );
        assert_eq!(
            classify(&produce(RDKafkaErrorCode::NotEnoughReplicas)),
            Failure::Transient
        );
        assert_eq!(classify(&KafkaError::Canceled), Failure::Transient);
    }
}

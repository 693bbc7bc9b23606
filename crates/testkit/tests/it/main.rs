//! Foundation integration tests: the local stack really answers, and the
//! shared pieces (migrations, Kafka via rdkafka, Redis) work against it.

mod kafka;
mod mysql;
mod redis_rt;

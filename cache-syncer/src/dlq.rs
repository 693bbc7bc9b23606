//! The dead-letter topic (`<prefix>.dlq`): where a message goes that cannot
//! be planned (`invalid envelope: …`, an ill-typed row) or applied
//! (`apply: …`, after its retries), so the stream never stalls on one change.
//!
//! A dead letter is the original message — key, payload and headers — plus
//! `sluice.dlq.reason` and `sluice.dlq.origin` (`topic/partition@offset`).
//! It is written (idempotent producer, `acks=all`) before the offsets past
//! it are stored, so a crash in between sends it again rather than losing
//! it. With `dlq` off, a message that would be dead-lettered stops the
//! syncer instead ([`Error::Poison`]).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::config::Settings;
use crate::error::{Error, Result};
use crate::metrics as m;

/// Writes dead letters.
pub(crate) struct DeadLetters {
    producer: FutureProducer,
    /// `<prefix>.dlq`.
    topic: String,
    /// Off: a message that would be dead-lettered is an error instead.
    enabled: bool,
}

impl DeadLetters {
    pub fn new(settings: &Settings) -> Result<Self> {
        let mut cfg = ClientConfig::new();
        for (k, v) in settings.kafka.client_properties() {
            cfg.set(k, v);
        }
        let producer: FutureProducer = cfg
            .set("acks", "all")
            // Idempotent: a retried dead letter is written once.
            .set("enable.idempotence", "true")
            .create()?;
        Ok(Self {
            producer,
            topic: cdc_event::topic::dlq_topic(&settings.kafka.topic_prefix),
            enabled: settings.dlq,
        })
    }

    /// Writes `msg` to the dead-letter topic with `reason` (whose part
    /// before the first `:` labels the metric).
    pub async fn send(&self, msg: &OwnedMessage, reason: &str) -> Result<()> {
        if !self.enabled {
            return Err(Error::Poison(format!(
                "{} partition {} offset {}: {reason} (dlq disabled)",
                msg.topic(),
                msg.partition(),
                msg.offset()
            )));
        }
        tracing::warn!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            reason,
            "dead-lettering message"
        );
        let origin = format!("{}/{}@{}", msg.topic(), msg.partition(), msg.offset());
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: cdc_event::HEADER_DLQ_REASON,
                value: Some(reason),
            })
            .insert(Header {
                key: "sluice.dlq.origin",
                value: Some(&origin),
            });
        if let Some(h) = msg.headers() {
            for h in h.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let mut record = FutureRecord::to(&self.topic).headers(headers);
        if let Some(k) = msg.key() {
            record = record.key(k);
        }
        if let Some(p) = msg.payload() {
            record = record.payload(p);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| Error::Kafka(e))?;
        let kind = reason.split(':').next().unwrap_or("unknown").to_owned();
        metrics::counter!(m::DLQ_TOTAL, "reason" => kind).increment(1);
        Ok(())
    }
}

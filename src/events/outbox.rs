//! The durable outbox: what an accepted event looks like on the Cloudflare Queue, and the seam the
//! intake sends through (the Queue binding in the worker, a vector in native tests).

use serde::{Deserialize, Serialize};

use serde_json::Value;

/// One queue message per accepted event. Carries everything delivery needs, and nothing raw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedEvent {
    /// Message format version.
    pub v: u8,
    pub site: String,
    pub pixel_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    /// The dedup claim this event holds (released if the send fails).
    pub claim_key: String,
    pub accepted_at_ms: i64,
    /// The Meta server event as it will be sent (hashed `user_data`). Kept as JSON: the consumer
    /// forwards it as is and reads only its name and id.
    pub event: Value,
    /// Meta already has the event; only its fate (delivered marker, books) is left to write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_ms: Option<i64>,
    /// A dead letter waiting for room in the dead-letter store: why it is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead: Option<String>,
    /// Times the worker put the event back on the queue itself (its own misconfiguration, the
    /// store down) rather than spend one of the queue's retries.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub held: u32,
    /// When it was last put back: a later transient failure backs off from then, not from its
    /// acceptance (an event held three minutes for a revoked token is not three minutes into
    /// Meta's retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_at_ms: Option<i64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl QueuedEvent {
    pub fn event_id(&self) -> &str {
        self.event.get("event_id").and_then(Value::as_str).unwrap_or("")
    }

    pub fn event_name(&self) -> &str {
        self.event.get("event_name").and_then(Value::as_str).unwrap_or("")
    }
}

#[allow(async_fn_in_trait)]
pub trait EventSink {
    /// Sends all messages or fails as a whole (the Queue's `sendBatch` semantics).
    async fn send_batch(&self, messages: &[QueuedEvent]) -> Result<(), String>;
}

//! The Queue side of the glue: the `EVENTS` binding as the intake's sink, and the consumer handing
//! batches to delivery (or, from the dead-letter queue, to storage as dead letters).

use worker::{console_log, event, Context, Env, MessageExt, QueueRetryOptionsBuilder};

use super::{isolate, WorkerOutbound};
use crate::capi::deliver::{self, Fate, Item};
use crate::events::outbox::{EventSink, QueuedEvent};

/// The `EVENTS` Queue binding as the intake's sink.
pub struct QueueSink<'a>(pub &'a Env);

impl EventSink for QueueSink<'_> {
    async fn send_batch(&self, messages: &[QueuedEvent]) -> Result<(), String> {
        let queue = self.0.queue("EVENTS").map_err(|e| format!("EVENTS queue binding: {e}"))?;
        // As JSON text: serde_wasm_bindgen would turn maps into JS Maps, which do not survive the trip.
        let bodies: Vec<String> = messages.iter().map(|m| serde_json::to_string(m).unwrap_or_default()).collect();
        queue.send_batch(bodies).await.map_err(|e| e.to_string())
    }
}

/// The queue consumer: `edgekeeper-events` batches go to Meta; `edgekeeper-events-dlq` (messages the
/// queue gave up on after max_retries) are stored as dead letters. Each message is acked only when
/// its fate is final; everything else is retried with a delay, so nothing accepted is lost.
#[event(queue)]
async fn queue(batch: worker::MessageBatch<()>, env: Env, _ctx: Context) -> worker::Result<()> {
    let parsed = super::config(&env);
    let cfg = match &*parsed {
        Ok(c) => c,
        Err(errors) => {
            let names: Vec<_> = errors.iter().map(|e| e.variable).collect();
            console_log!("{{\"level\":\"error\",\"msg\":\"queue batch retried: configuration invalid\",\"variables\":{:?}}}", names);
            batch.retry_all_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(60).build());
            return Ok(());
        }
    };
    // Bodies are JSON text (see QueueSink): read them raw, without a JS → serde round trip.
    let messages: Vec<worker::RawMessage> = batch.raw_iter().collect();
    let now = js_sys::Date::now();
    let mut items = Vec::with_capacity(messages.len());
    let mut slots = Vec::with_capacity(messages.len());
    for m in &messages {
        let parsed = m.body().as_string().ok_or_else(|| "the body is not JSON text".to_string()).and_then(|t| serde_json::from_str::<QueuedEvent>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(msg) => {
                slots.push(Some(items.len()));
                items.push(Item { age_ms: (now - msg.accepted_at_ms as f64).max(0.0), msg });
            }
            Err(e) => {
                // Not ours or corrupted: nothing to deliver, nothing personal to keep.
                console_log!("{{\"level\":\"error\",\"msg\":\"unreadable queue message dropped\",\"error\":{:?}}}", e);
                slots.push(None);
            }
        }
    }
    let report = if batch.queue().ends_with("-dlq") {
        deliver::bury(&items, "the queue gave up after its max_retries", cfg, &WorkerOutbound, isolate()).await
    } else {
        deliver::deliver(&items, cfg, &WorkerOutbound, isolate()).await
    };
    let mut tally = [0u32; 4];
    for (m, slot) in messages.iter().zip(slots) {
        match slot.and_then(|i| report.fates[i].clone()) {
            None => m.ack(),
            Some(Fate::Retry { delay_secs, .. }) => {
                tally[2] += 1;
                m.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay_secs).build());
            }
            Some(Fate::DeadLettered { .. }) => {
                tally[3] += 1;
                m.ack();
            }
            Some(Fate::Delivered) | Some(Fate::AlreadyDelivered) => {
                tally[0] += 1;
                m.ack();
            }
        }
    }
    tally[1] = report.capi_requests;
    console_log!(
        "{{\"level\":\"info\",\"msg\":\"queue batch\",\"queue\":{:?},\"messages\":{},\"delivered\":{},\"capi_requests\":{},\"retried\":{},\"dead_lettered\":{}}}",
        batch.queue(), messages.len(), tally[0], tally[1], tally[2], tally[3]
    );
    Ok(())
}

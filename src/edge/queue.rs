//! The Queue side of the glue: the `EVENTS` binding as the intake's sink, and the consumer handing
//! batches to delivery (or, from the dead-letter queue, to storage as dead letters), then carrying
//! out each message's fate: ack, retry, or hold (a new message with a delay, then ack).

use worker::{console_log, event, Context, Env, MessageBuilder, MessageExt, QueueRetryOptionsBuilder};

use super::{isolate, WorkerOutbound};
use crate::capi::deliver::{self, Fate, Item, Report, Then};
use crate::events::outbox::{EventSink, QueuedEvent};

/// The `EVENTS` Queue binding as the intake's sink.
pub struct QueueSink<'a>(pub &'a Env);

impl EventSink for QueueSink<'_> {
    async fn send_batch(&self, messages: &[QueuedEvent]) -> Result<(), String> {
        send(self.0, "EVENTS", messages.iter().map(|m| (m, 0)).collect()).await
    }
}

/// Messages as JSON text (serde_wasm_bindgen would turn maps into JS Maps, which do not survive the
/// trip), each with its delay.
async fn send(env: &Env, binding: &str, messages: Vec<(&QueuedEvent, u32)>) -> Result<(), String> {
    let queue = env.queue(binding).map_err(|e| format!("{binding} queue binding: {e}"))?;
    let bodies: Vec<_> = messages
        .into_iter()
        .map(|(m, delay)| {
            let text = serde_json::to_string(m).unwrap_or_default();
            if delay == 0 { MessageBuilder::new(text).build() } else { MessageBuilder::new(text).delay_seconds(delay).build() }
        })
        .collect();
    queue.send_batch(bodies).await.map_err(|e| e.to_string())
}

/// The queue consumer: `edgekeeper-events` batches go to Meta; `edgekeeper-events-dlq` (messages the
/// queue gave up on after max_retries) are stored as dead letters. A message is acked only when its
/// fate is final or it is safely back on its queue; what our own side keeps from finishing (an
/// invalid setting, the store, Meta refusing our token) never spends the queue's retries.
#[event(queue)]
async fn queue(batch: worker::MessageBatch<()>, env: Env, _ctx: Context) -> worker::Result<()> {
    let dlq = batch.queue().ends_with("-dlq");
    // Held messages go back to the queue they came from.
    let binding = if dlq { "EVENTS_DLQ" } else { "EVENTS" };
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
                items.push(Item { age_ms: (now - msg.accepted_at_ms as f64).max(0.0), msg, lease_id: m.id() });
            }
            Err(e) => {
                // Not ours or corrupted: nothing to deliver, nothing personal to keep.
                console_log!("{{\"level\":\"error\",\"msg\":\"unreadable queue message dropped\",\"error\":{:?}}}", e);
                slots.push(None);
            }
        }
    }
    let parsed = super::config(&env);
    let report = match &*parsed {
        Ok(cfg) if dlq => deliver::bury(&items, "the queue gave up after its max_retries", cfg, &WorkerOutbound, isolate()).await,
        Ok(cfg) => deliver::deliver(&items, cfg, &WorkerOutbound, isolate()).await,
        // Our own mistake, not the events': they wait, without spending retries, until it is fixed.
        Err(errors) => {
            let names: Vec<_> = errors.iter().map(|e| e.variable).collect();
            console_log!("{{\"level\":\"error\",\"msg\":\"queue batch held: configuration invalid\",\"variables\":{:?}}}", names);
            let reason = "configuration invalid".to_string();
            let then = |i: &Item| if dlq { Then::Bury(i.msg.dead.clone().unwrap_or_else(|| "the queue gave up after its max_retries".into())) } else { Then::Deliver };
            // QUEUE_HOLD_SECS itself may be the invalid one: then five minutes.
            let delay_secs = env.var("QUEUE_HOLD_SECS").ok().and_then(|v| v.to_string().parse().ok()).filter(|s| (1..=43_200).contains(s)).unwrap_or(300);
            Report { fates: items.iter().map(|i| Some(Fate::Hold { delay_secs, reason: reason.clone(), then: then(i) })).collect(), capi_requests: 0 }
        }
    };
    let held: Vec<(usize, (QueuedEvent, u32))> = (0..items.len()).filter_map(|i| report.held_message(i, &items[i], now).map(|h| (i, h))).collect();
    let held_ok = held.is_empty() || send(&env, binding, held.iter().map(|(_, (m, d))| (m, *d)).collect()).await.is_ok();
    let mut tally = [0u32; 5];
    for (m, slot) in messages.iter().zip(slots) {
        let retry = |delay: u32| m.retry_with_options(&QueueRetryOptionsBuilder::new().with_delay_seconds(delay).build());
        match slot.and_then(|i| report.fates[i].clone()) {
            None => m.ack(),
            Some(Fate::Retry { delay_secs, .. }) => {
                tally[2] += 1;
                retry(delay_secs);
            }
            // Back on the queue as a new message: this one is done. If the queue refused it, the
            // queue keeps this one instead.
            Some(Fate::Hold { delay_secs, .. }) => {
                tally[4] += 1;
                if held_ok {
                    m.ack()
                } else {
                    retry(delay_secs)
                }
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
        "{{\"level\":\"info\",\"msg\":\"queue batch\",\"queue\":{:?},\"messages\":{},\"delivered\":{},\"capi_requests\":{},\"retried\":{},\"dead_lettered\":{},\"held\":{},\"hold_sent\":{}}}",
        batch.queue(), messages.len(), tally[0], tally[1], tally[2], tally[3], tally[4], held_ok
    );
    Ok(())
}

//! Native cost of one event through the intake: parse, validate against the catalog, normalise and
//! hash `user_data`, and serialise the queue message. Regressions show up here before they show up
//! as CPU time at the edge.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use edgekeeper::config::CollectLimits;
use edgekeeper::events::catalog::Catalog;
use edgekeeper::events::intake::{parse, RequestFacts};

fn purchase() -> Vec<u8> {
    serde_json::json!({
        "event_name": "Purchase",
        "event_id": "ord-123456",
        "event_source_url": "https://shop.example/checkout/done?fbclid=IwAR2AbC_xyz",
        "user_data": { "em": " Jane.Roe@Example.COM ", "ph": "+44 (0)20 7946 0958", "fn": "Zoë", "ln": "O'Brien",
                       "ct": "São Paulo", "st": "California", "zp": "94025-1234", "country": "US", "db": "1990-01-15",
                       "ge": "Female", "external_id": "user-42" },
        "custom_data": { "value": 49.5, "currency": "EUR", "content_ids": ["sku-42", "sku-7"], "num_items": 2 }
    })
    .to_string()
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let body = purchase();
    let catalog = Catalog::new(vec![]);
    let limits = CollectLimits { max_events: 50, max_bytes: 65_536 };
    let facts = RequestFacts {
        now_ms: 1_764_000_000_000.0,
        client_ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 (bench)".into()),
        ..Default::default()
    };
    c.bench_function("intake: parse + validate + normalise + hash + serialise (1 Purchase)", |b| {
        b.iter(|| {
            let parsed = parse(black_box(&body), &catalog, limits, &facts).expect("valid");
            let event = parsed.events.into_iter().next().expect("one").expect("accepted");
            black_box(serde_json::to_vec(&event.event).expect("json"))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Conversion events: the catalog, intake (validation, normalisation, hashing), admission (rate
//! limit + dedup claims) and the durable outbox they are queued to.

pub mod catalog;
pub mod collect;
pub mod currency;
pub mod dedup;
pub mod intake;
pub mod normalize;
pub mod outbox;

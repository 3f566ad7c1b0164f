//! Conversion events: the catalog, intake (validation, normalisation, hashing), admission (rate
//! limit + dedup claims) and the durable outbox they are queued to.

pub mod catalog;
pub mod collect;
pub mod currency;
pub mod dedup;
pub mod enrich;
pub mod intake;
pub mod normalize;
pub mod outbox;
pub mod quality;
pub mod site;

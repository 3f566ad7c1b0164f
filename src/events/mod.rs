//! Conversion events: admission (rate limit + dedup claims), and — as the pipeline lands — intake
//! validation, normalisation and hashing.

pub mod dedup;

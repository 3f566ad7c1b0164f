//! edgekeeper: a Cloudflare Worker in front of a shop's origin. Pure modules (configuration, the
//! store client, health, routing) build and test natively; `edge` is the thin wasm32 glue that binds
//! them to the Workers runtime.

pub mod admin;
pub mod cache_policy;
pub mod cache_purge;
pub mod capi;
pub mod config;
pub mod error;
pub mod events;
pub mod fuzzing;
pub mod health;
pub mod http;
pub mod request;
pub mod router;
pub mod sorting;
pub mod upstash;
pub mod zaraz;

#[cfg(target_arch = "wasm32")]
mod edge;

#[cfg(test)]
mod testsupport;

//! Any text as `CACHE_RULES`, and the rules it yields matched against paths derived from the same
//! input: parsing and matching must never panic (regexes included, within their step budget).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgekeeper::fuzzing::cache_rules(data);
});

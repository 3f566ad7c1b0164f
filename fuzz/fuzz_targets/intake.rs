//! Any bytes as a /collect body: the intake must answer (accept, reject, or refuse the body) and
//! never panic, whatever the JSON, the nesting, the encoding or the values.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    edgekeeper::fuzzing::intake(data);
});

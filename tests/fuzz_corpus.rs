//! `make test` replays every input kept in `fuzz/corpus/` through the fuzz targets' entry points:
//! what the fuzzer once found (or was seeded with) stays fixed, on stable Rust, without libFuzzer.

use std::fs;
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = fs::read(&path).expect("corpus file");
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn intake_corpus_replays_without_panics() {
    assert!(replay("intake", edgekeeper::fuzzing::intake) >= 20);
}

#[test]
fn cache_rules_corpus_replays_without_panics() {
    assert!(replay("cache_rules", edgekeeper::fuzzing::cache_rules) >= 10);
}

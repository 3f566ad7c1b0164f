//! How values are stored: up to 2 KB as they are (plain JSON anyone can read with redis-cli); larger
//! values deflated (pure Rust) and base64-encoded behind a `~z1:` marker, decoded transparently.

use base64::Engine;

pub const COMPRESS_ABOVE: usize = 2048;
const MARKER: &str = "~z1:";
/// Refuse to inflate past this: a corrupted or hostile value must not exhaust the isolate's memory.
const MAX_INFLATED: usize = 8 * 1024 * 1024;

pub fn encode(value: &str) -> String {
    if value.len() <= COMPRESS_ABOVE {
        return value.to_string();
    }
    let packed = miniz_oxide::deflate::compress_to_vec(value.as_bytes(), 6);
    format!("{MARKER}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(packed))
}

pub fn decode(stored: &str) -> Result<String, String> {
    let Some(b64) = stored.strip_prefix(MARKER) else {
        return Ok(stored.to_string());
    };
    let packed = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64).map_err(|e| format!("bad compressed value: {e}"))?;
    let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, MAX_INFLATED).map_err(|e| format!("bad compressed value: {e:?}"))?;
    String::from_utf8(bytes).map_err(|_| "compressed value is not UTF-8".to_string())
}

pub fn is_compressed(stored: &str) -> bool {
    stored.starts_with(MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_stay_plain_large_ones_shrink_and_round_trip() {
        let small = r#"{"a":1}"#;
        assert_eq!(encode(small), small);
        let large = serde_json::json!({ "events": (0..1000).map(|i| format!("event-{i}")).collect::<Vec<_>>() }).to_string();
        let stored = encode(&large);
        assert!(is_compressed(&stored));
        assert!(stored.len() < large.len() / 3, "{} vs {}", stored.len(), large.len());
        assert_eq!(decode(&stored).unwrap(), large);
        assert_eq!(decode(small).unwrap(), small);
    }

    #[test]
    fn corrupt_compressed_values_are_errors_not_panics() {
        assert!(decode("~z1:!!!").is_err());
        assert!(decode("~z1:AAAA").is_err());
    }
}

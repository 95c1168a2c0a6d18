//! Document extraction on arbitrary bytes, in-process as the sandboxed child runs it.
//!
//! Panics that the extractor catches on purpose (pdf-extract panics on many damaged files and
//! the page falls back to lopdf) are not findings, so libFuzzer's abort-on-any-panic hook is
//! replaced by a silent one; a panic that escapes still aborts, and so do stack overflows,
//! out-of-memory (-rss_limit_mb) and slow inputs (-timeout).
#![no_main]

use std::sync::Once;

use classifyd::document::{extract_in_process, ParseLimits};
use libfuzzer_sys::fuzz_target;

static QUIET_PANICS: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let limits = ParseLimits {
        max_pages: 200,
        max_nesting_depth: 256,
        max_stream_bytes: 64 * 1024 * 1024,
    };
    let _ = extract_in_process(data, &limits);
});

//! The cache-syncer's reading of a message value
//! (`cache_syncer::plan::check_envelope`): never a panic, whatever the bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(problem) = cache_syncer::plan::check_envelope(data) {
        panic!("{problem}");
    }
});

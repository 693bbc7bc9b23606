//! The rows-event value decoders: the fast reader and the general path
//! agree on every input and never panic
//! (`binlog_relay::fastrow::check_value_paths`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(disagreement) = binlog_relay::fastrow::check_value_paths(data) {
        panic!("{disagreement}");
    }
});

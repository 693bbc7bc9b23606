//! The relay's DDL reader and schema history (`binlog_relay::history::check_ddl`):
//! any text, read as a statement and applied, never panics and leaves
//! consistent column positions.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(problem) = binlog_relay::history::check_ddl(&String::from_utf8_lossy(data)) {
        panic!("{problem}");
    }
});

//! What clients put in paths, queries and headers: user ids, consistency
//! tokens and bearer tokens (`gateway::extract::check_inputs`), and list
//! cursors (`relation_service::list::Cursor::check_decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(problem) = gateway::extract::check_inputs(data) {
        panic!("{problem}");
    }
    if let Ok(s) = std::str::from_utf8(data)
        && let Err(problem) = relation_service::list::Cursor::check_decode(s)
    {
        panic!("{problem}");
    }
});

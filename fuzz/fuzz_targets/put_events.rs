//! The PutEvents body parser and validator on arbitrary bytes: it must answer Ok or a
//! ValidationError, never panic, overflow the stack or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(e) = interlog_model::parse_put_events(body) {
        // The message is what clients see: rendering it must not panic either.
        let _ = e.to_string();
    }
});

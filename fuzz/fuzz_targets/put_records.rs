//! The PutItems, PutUsers, PutActions and PutActionInteractions body parsers on arbitrary bytes: each
//! must answer Ok or a ValidationError, never panic, overflow the stack or hang. Every input goes to all
//! four (each ignores the others' members), so one corpus serves them all.
#![no_main]

use interlog_model::{parse_put_action_interactions, parse_put_records, RecordKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    for kind in RecordKind::ALL {
        match parse_put_records(kind, body) {
            // What the store keeps and the export reads back must be what was validated.
            Ok(put) => {
                for record in &put.records {
                    assert!(record.properties.is_none() || record.properties_map().is_some());
                    assert_eq!(record.member_cell(kind, kind.id_column()).as_deref(), Some(record.id.as_str()));
                }
            }
            // The message is what clients see: rendering it must not panic either.
            Err(e) => drop(e.to_string()),
        }
    }
    match parse_put_action_interactions(body) {
        Ok(put) => {
            for a in &put.interactions {
                assert!(a.properties.is_none() || a.properties_map().is_some());
                assert!(!a.event_id.is_empty());
            }
        }
        Err(e) => drop(e.to_string()),
    }
});

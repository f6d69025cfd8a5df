//! Undo records read back from a bootbank (or --from FILE): the tar, the manifest, fatmeta.gz.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::undo_record::Record;

fuzz_target!(|data: &[u8]| {
    let _ = Record::from_tar(data);
});

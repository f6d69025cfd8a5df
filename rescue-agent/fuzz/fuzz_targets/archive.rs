//! state.tgz / local.tgz framing: gzip, the strict tar walk, member reads and the splice, under
//! the production limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::archive::{self, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let tar = match archive::gunzip(data, &limits) {
        Ok(t) => t,
        Err(_) => data.to_vec(),
    };
    let Ok(members) = archive::list(&tar, &limits) else {
        return;
    };
    for m in members.iter().take(8) {
        if let Ok(bytes) = archive::read_member(&tar, &m.name, &limits) {
            let _ = archive::replace_member(&tar, &m.name, &bytes, &limits);
        }
    }
});

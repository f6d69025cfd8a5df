//! state.tgz / local.tgz framing: gzip, the strict tar walk, member reads and the splices (a copy,
//! in place, and rebuilt around a member), and the in-place re-framing of a stored layer, under
//! the production limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rescue_agent::archive::{self, GzipFrame, Limits, OuterFrame};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let tar = match archive::gunzip(data, &limits) {
        Ok(t) => t,
        Err(_) => data.to_vec(),
    };
    // Re-framing like the original (stored blocks in place when it was incompressible) must
    // inflate back to the same bytes.
    if let Ok(frame) = GzipFrame::of(data) {
        if let Ok(gz) = frame.regzip_owned(tar.clone()) {
            assert_eq!(archive::gunzip(&gz, &limits).ok().as_deref(), Some(&tar[..]));
        }
    }
    let Ok(members) = archive::list(&tar, &limits) else {
        return;
    };
    for m in members.iter().take(8) {
        if let Ok(bytes) = archive::read_member(&tar, &m.name, &limits) {
            let _ = archive::replace_member(&tar, &m.name, &bytes, &limits);
            let taken = archive::take_member(tar.clone(), &m.name, &limits);
            assert_eq!(taken.ok().as_deref(), Some(&bytes[..]));
            if let Ok(frame) = OuterFrame::around(&tar, &m.name, &limits) {
                let _ = archive::rebuild_around(&frame, bytes, &limits);
            }
        }
    }
});

//! Any byte string handed to the frame decoder returns (Ok or a typed error) and never panics.
//! `cargo fuzz run decode_frame` (longer runs than the proptest in crates/bottlenet-codec).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bottlenet_codec::decode(data);
});

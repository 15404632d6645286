//! Fuzz target: any bytes through MIDI parsing, quantization, export and the cache format.
//! Nothing may panic; what parses must survive roll -> MIDI -> roll unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use segue::midi::Song;
use segue::roll::{QuantizeOptions, Roll};

fuzz_target!(|data: &[u8]| {
    let opts = QuantizeOptions {
        max_steps: 20_000,
        ..QuantizeOptions::default()
    };
    let Ok(song) = Song::parse(data) else { return };
    let _ = song.duration_seconds();
    let Ok(roll) = Roll::from_song(&song, &opts) else { return };
    let bytes = roll.to_midi_bytes("fuzz").expect("a roll always encodes");
    let again = Roll::from_song(&Song::parse(&bytes).expect("own output parses"), &opts)
        .expect("own output quantizes");
    assert_eq!(roll, again);
    let cached = segue::dataset::decode_cached(&segue::dataset::encode_cached(&roll));
    assert_eq!(cached.as_ref(), Some(&roll));
    let _ = segue::dataset::decode_cached(data);
    let _ = segue::dataset::decode_cache_body(data);
    let _ = segue::npy::decode(data);
});

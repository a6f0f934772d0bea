//! The checks run on every fuzz input. Shared with the corpus replay test
//! (`protocol/tests/fuzz_corpus.rs`), which includes this file.

use bytes::BytesMut;
use warren_protocol::{decode_frame, BasicProperties, Frame, WireProperties, FRAME_MIN_SIZE};

/// Decodes `data` as a stream of frames, once without a frame size limit
/// and once with the smallest one.
pub fn check(data: &[u8]) {
    for frame_max in [0, FRAME_MIN_SIZE] {
        decode_all(data, frame_max);
    }
}

fn decode_all(data: &[u8], frame_max: u32) {
    let mut buf = BytesMut::from(data);
    loop {
        let (len, capacity) = (buf.len(), buf.capacity());
        match decode_frame(&mut buf, frame_max) {
            Ok(None) => {
                // Waiting for more bytes must not touch the buffer, however
                // large the announced size.
                assert_eq!((buf.len(), buf.capacity()), (len, capacity));
                return;
            }
            Ok(Some(frame)) => {
                let used = len - buf.len();
                assert!(frame_max == 0 || used <= frame_max as usize);
                check_round_trip(&frame);
            }
            Err(e) => {
                // Every error maps to a close that fits a shortstr.
                assert!(e.reply_code().is_connection_level());
                assert!(e.reply_text().len() <= 255);
                return;
            }
        }
    }
}

/// What decoded re-encodes to something that decodes to the same, and
/// reading every table and property lazily cannot fail after validation.
fn check_round_trip(frame: &Frame) {
    let _ = format!("{frame:?}");
    let mut out = BytesMut::new();
    frame.encode(&mut out);
    let again = decode_frame(&mut out, 0);
    let again = match again {
        Ok(Some(again)) => again,
        other => panic!("re-encoded {frame:?} decodes to {other:?}"),
    };
    assert!(out.is_empty());
    assert_eq!(frame, &again);
    if let Frame::Header { header, .. } = frame {
        // The owned form agrees with the wire form, and encodes to bytes
        // that decode to it again.
        let owned = header.properties.to_basic_properties();
        assert_eq!(WireProperties::from(&owned), header.properties);
        assert_eq!(BasicProperties::decode(&owned.to_bytes()), Ok(owned));
    }
}

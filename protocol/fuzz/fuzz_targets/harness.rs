//! The checks run on every fuzz input. Shared with the corpus replay test
//! (`protocol/tests/fuzz_corpus.rs`), which includes this file.

use bytes::BytesMut;
use warren_protocol::{decode_frame, Frame, FRAME_MIN_SIZE};

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
/// reading every table lazily cannot fail after validation.
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
    match (frame, &again) {
        // Headers are re-encoded from the decoded properties, so the raw
        // bytes may differ (continuation flag words are dropped).
        (
            Frame::Header {
                channel: c1,
                header: h1,
            },
            Frame::Header {
                channel: c2,
                header: h2,
            },
        ) => {
            assert_eq!(
                (c1, h1.class_id, h1.body_size, &h1.properties),
                (c2, h2.class_id, h2.body_size, &h2.properties)
            );
        }
        _ => assert_eq!(frame, &again),
    }
}

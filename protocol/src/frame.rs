//! Frames: the protocol header, splitting a read buffer into frames, and
//! writing frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nom::number::complete::{be_u16, be_u32, be_u64, be_u8};
use nom::Parser;

use crate::error::DecodeError;
use crate::method::Method;
use crate::properties::{BasicProperties, WireProperties};
use crate::types::ShortStr;
use crate::wire::{finish, WireError};

pub const FRAME_METHOD: u8 = 1;
pub const FRAME_HEADER: u8 = 2;
pub const FRAME_BODY: u8 = 3;
pub const FRAME_HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;
/// The smallest frame_max a peer may negotiate.
pub const FRAME_MIN_SIZE: u32 = 4096;
/// Type, channel and payload size.
pub const FRAME_HEADER_SIZE: usize = 7;
/// What a frame adds around its payload: the header and the end octet.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_SIZE + 1;
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// What the first bytes of a connection say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolHeaderCheck {
    /// A prefix of the header so far: read more.
    Incomplete,
    /// The 8 bytes are AMQP 0-9-1's header.
    Ok,
    /// Something else: answer with [`PROTOCOL_HEADER`] and close.
    Unsupported,
}

/// Checks `buf` against [`PROTOCOL_HEADER`], deciding as soon as a byte
/// differs. Consumes nothing.
pub fn check_protocol_header(buf: &[u8]) -> ProtocolHeaderCheck {
    let seen = buf.len().min(PROTOCOL_HEADER.len());
    if buf[..seen] != PROTOCOL_HEADER[..seen] {
        ProtocolHeaderCheck::Unsupported
    } else if seen < PROTOCOL_HEADER.len() {
        ProtocolHeaderCheck::Incomplete
    } else {
        ProtocolHeaderCheck::Ok
    }
}

/// A content header frame's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    /// Property flags and list as received, read on demand; forwarded
    /// without re-encoding.
    pub properties: WireProperties,
}

impl ContentHeader {
    /// A header for properties built in code (encoded here).
    pub fn new(class_id: u16, body_size: u64, properties: BasicProperties) -> ContentHeader {
        ContentHeader {
            class_id,
            body_size,
            properties: WireProperties::from(&properties),
        }
    }

    /// Decodes class id, weight (ignored, as RabbitMQ leaves checking it to
    /// the command assembler), body size and properties.
    pub fn decode(payload: &Bytes) -> Result<ContentHeader, DecodeError> {
        ContentHeader::decode_owned(payload.clone())
    }

    // Inlined so the header is built where the frame is, not moved.
    #[inline(always)]
    fn decode_owned(mut payload: Bytes) -> Result<ContentHeader, DecodeError> {
        let (rest, (class_id, _weight, body_size)) =
            finish((be_u16, be_u16, be_u64).parse_complete(payload.as_ref()))?;
        payload.advance(payload.len() - rest.len());
        Ok(ContentHeader {
            class_id,
            body_size,
            properties: WireProperties::decode(payload)?,
        })
    }
}

/// One frame, with its channel.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Method { channel: u16, method: Method },
    Header { channel: u16, header: ContentHeader },
    Body { channel: u16, payload: Bytes },
    Heartbeat { channel: u16 },
}

impl Frame {
    pub fn channel(&self) -> u16 {
        match *self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => channel,
        }
    }

    /// Writes the frame; a header's properties go out as they are held
    /// (as received, for a decoded frame).
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Frame::Method { channel, method } => encode_method_frame(buf, *channel, method),
            Frame::Header { channel, header } => encode_header_frame_raw(
                buf,
                *channel,
                header.class_id,
                header.body_size,
                header.properties.raw(),
            ),
            Frame::Body { channel, payload } => {
                write_frame(buf, FRAME_BODY, *channel, |buf| buf.put_slice(payload))
            }
            Frame::Heartbeat { channel } => write_frame(buf, FRAME_HEARTBEAT, *channel, |_| {}),
        }
    }
}

/// Takes the next frame off the front of `buf`.
///
/// Returns `Ok(None)` while the frame is incomplete, without reserving
/// anything: the size field is checked against `frame_max` but never used
/// to allocate, so a peer cannot make us reserve memory it has not sent.
/// A complete frame is split off `buf` and frozen, so body payloads,
/// strings and tables are slices of the read buffer.
///
/// `frame_max == 0` means no limit. After an error the connection must
/// be closed; what is left in `buf` is unspecified.
#[inline]
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, DecodeError> {
    let header = (be_u8::<_, WireError>, be_u16, be_u32).parse_complete(buf.as_ref());
    let Ok((_, (kind, channel, size))) = header else {
        return Ok(None);
    };
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(DecodeError::UnknownFrameType(kind));
    }
    let total = u64::from(size) + FRAME_OVERHEAD as u64;
    if frame_max != 0 && total > u64::from(frame_max) {
        return Err(DecodeError::FrameTooLarge {
            size: total,
            max: frame_max,
        });
    }
    // Compared in u64: `total` may not fit a usize on a 32-bit target.
    if (buf.len() as u64) < total {
        return Ok(None);
    }
    let end_at = FRAME_HEADER_SIZE + size as usize;
    let end = buf.get(end_at).copied().unwrap_or_default();
    if end != FRAME_END {
        return Err(DecodeError::BadFrameEnd(end));
    }
    // Trimming the frozen frame in place spares the reference count round
    // trip that slicing it would cost.
    let mut payload = buf.split_to(end_at + 1).freeze();
    payload.advance(FRAME_HEADER_SIZE);
    payload.truncate(size as usize);
    let frame = match kind {
        FRAME_METHOD => Frame::Method {
            channel,
            method: Method::decode_owned(payload)?,
        },
        FRAME_HEADER => Frame::Header {
            channel,
            header: ContentHeader::decode_owned(payload)?,
        },
        FRAME_BODY => Frame::Body { channel, payload },
        _ if size != 0 => return Err(DecodeError::BadHeartbeat(size)),
        _ => Frame::Heartbeat { channel },
    };
    Ok(Some(frame))
}

/// Writes a frame whose payload `write` appends, then patches the size.
fn write_frame(buf: &mut BytesMut, kind: u8, channel: u16, write: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(kind);
    buf.put_u16(channel);
    let size_at = buf.len();
    buf.put_u32(0);
    write(buf);
    let size = buf.len() - size_at - 4;
    let size = u32::try_from(size).unwrap_or(u32::MAX).to_be_bytes();
    buf[size_at..size_at + 4].copy_from_slice(&size);
    buf.put_u8(FRAME_END);
}

pub fn encode_method_frame(buf: &mut BytesMut, channel: u16, method: &Method) {
    write_frame(buf, FRAME_METHOD, channel, |buf| method.encode(buf));
}

/// The method frame of a basic.deliver, written from borrowed names: what
/// `encode_method_frame` of a `Method::BasicDeliver` writes, without
/// building the method (which would take a reference on each name).
pub fn encode_deliver_frame(
    buf: &mut BytesMut,
    channel: u16,
    consumer_tag: &ShortStr,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &ShortStr,
    routing_key: &ShortStr,
) {
    write_frame(buf, FRAME_METHOD, channel, |buf| {
        buf.put_u16(60);
        buf.put_u16(60);
        put_short_str(buf, consumer_tag);
        buf.put_u64(delivery_tag);
        buf.put_u8(u8::from(redelivered));
        put_short_str(buf, exchange);
        put_short_str(buf, routing_key);
    });
}

/// A short string's wire form; `ShortStr` guarantees it fits a length octet.
fn put_short_str(buf: &mut BytesMut, s: &ShortStr) {
    let bytes = s.as_bytes();
    buf.put_u8(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    buf.put_slice(bytes);
}

pub fn encode_header_frame(
    buf: &mut BytesMut,
    channel: u16,
    class_id: u16,
    body_size: u64,
    properties: &BasicProperties,
) {
    write_frame(buf, FRAME_HEADER, channel, |buf| {
        put_header_prefix(buf, class_id, body_size);
        properties.encode(buf);
    });
}

/// A header frame with properties already encoded (flags and list), as
/// kept from a publish.
pub fn encode_header_frame_raw(
    buf: &mut BytesMut,
    channel: u16,
    class_id: u16,
    body_size: u64,
    raw_properties: &[u8],
) {
    write_frame(buf, FRAME_HEADER, channel, |buf| {
        put_header_prefix(buf, class_id, body_size);
        buf.put_slice(raw_properties);
    });
}

fn put_header_prefix(buf: &mut BytesMut, class_id: u16, body_size: u64) {
    buf.put_u16(class_id);
    buf.put_u16(0); // weight, unused
    buf.put_u64(body_size);
}

/// Writes `body` as body frames of at most `frame_max` bytes each
/// (`frame_max == 0`: one frame). An empty body writes no frame.
pub fn encode_body_frames(buf: &mut BytesMut, channel: u16, body: &[u8], frame_max: u32) {
    if body.is_empty() {
        return;
    }
    let chunk = if frame_max == 0 {
        body.len()
    } else {
        // Never 0, even for a nonsensical frame_max below the overhead.
        (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
    };
    buf.reserve(body.len() + body.len().div_ceil(chunk) * FRAME_OVERHEAD);
    for part in body.chunks(chunk) {
        write_frame(buf, FRAME_BODY, channel, |buf| buf.put_slice(part));
    }
}

pub fn encode_heartbeat(buf: &mut BytesMut) {
    write_frame(buf, FRAME_HEARTBEAT, 0, |_| {});
}

pub fn encode_protocol_header(buf: &mut BytesMut) {
    buf.put_slice(PROTOCOL_HEADER);
}

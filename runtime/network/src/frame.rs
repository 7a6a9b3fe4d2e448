//! The wire format of a data connection: length-prefixed frames, each for one logical channel.
//!
//! `u32 length | u8 kind | u64 channel | payload`, little endian; `length` counts kind, channel
//! and payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

pub const MAX_FRAME: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Receiver -> sender: open a channel on a subpartition, with initial credits.
    Request = 1,
    /// Receiver -> sender: more credits.
    Credit = 2,
    /// Sender -> receiver: Arrow IPC bytes of one batch (the first also carries the schema).
    Batch = 3,
    Watermark = 4,
    Idle = 5,
    End = 6,
    /// Sender -> receiver: the channel failed; payload is the reason.
    Error = 7,
    /// Sender -> receiver: checkpoint id, timestamp (both 8 bytes), kind (1 byte).
    Barrier = 8,
}

impl Kind {
    fn from_u8(value: u8) -> Option<Kind> {
        Some(match value {
            1 => Kind::Request,
            2 => Kind::Credit,
            3 => Kind::Batch,
            4 => Kind::Watermark,
            5 => Kind::Idle,
            6 => Kind::End,
            7 => Kind::Error,
            8 => Kind::Barrier,
            _ => return None,
        })
    }

    /// Data frames use up a credit; control frames do not.
    pub fn takes_credit(self) -> bool {
        matches!(
            self,
            Kind::Batch | Kind::Watermark | Kind::Idle | Kind::End | Kind::Barrier
        )
    }
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: Kind,
    pub channel: u64,
    pub payload: Bytes,
}

impl Frame {
    pub fn new(kind: Kind, channel: u64, payload: impl Into<Bytes>) -> Self {
        Frame {
            kind,
            channel,
            payload: payload.into(),
        }
    }

    pub fn request(channel: u64, credits: u32, subpartition: &str) -> Self {
        let mut payload = BytesMut::with_capacity(4 + subpartition.len());
        payload.put_u32_le(credits);
        payload.put_slice(subpartition.as_bytes());
        Frame::new(Kind::Request, channel, payload.freeze())
    }

    pub fn credit(channel: u64, credits: u32) -> Self {
        Frame::new(Kind::Credit, channel, credits.to_le_bytes().to_vec())
    }

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(13 + self.payload.len());
        out.put_u32_le((9 + self.payload.len()) as u32);
        out.put_u8(self.kind as u8);
        out.put_u64_le(self.channel);
        out.put_slice(&self.payload);
        out.freeze()
    }

    pub fn u32_payload(&self) -> Option<u32> {
        (self.payload.len() >= 4).then(|| (&self.payload[..4]).get_u32_le())
    }

    pub fn i64_payload(&self) -> Option<i64> {
        (self.payload.len() >= 8).then(|| (&self.payload[..8]).get_i64_le())
    }

    pub fn text_payload(&self, skip: usize) -> String {
        String::from_utf8_lossy(self.payload.get(skip..).unwrap_or_default()).into_owned()
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Option<Frame>, String> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if !(9..=MAX_FRAME).contains(&len) {
        return Err(format!("frame length {len} out of range"));
    }
    let mut body = BytesMut::zeroed(len);
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    let mut body = body.freeze();
    let kind = body.get_u8();
    let kind = Kind::from_u8(kind).ok_or_else(|| format!("unknown frame kind {kind}"))?;
    let channel = body.get_u64_le();
    Ok(Some(Frame {
        kind,
        channel,
        payload: body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let frames = [
            Frame::request(7, 3, "job/1/0/0/2"),
            Frame::credit(7, 5),
            Frame::new(Kind::Watermark, 9, (-42i64).to_le_bytes().to_vec()),
        ];
        let mut wire = Vec::new();
        for f in &frames {
            wire.extend_from_slice(&f.encode());
        }
        let mut reader = wire.as_slice();
        let a = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(
            (a.kind, a.channel, a.u32_payload()),
            (Kind::Request, 7, Some(3))
        );
        assert_eq!(a.text_payload(4), "job/1/0/0/2");
        let b = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!((b.kind, b.u32_payload()), (Kind::Credit, Some(5)));
        let c = read_frame(&mut reader).await.unwrap().unwrap();
        assert_eq!(
            (c.kind, c.channel, c.i64_payload()),
            (Kind::Watermark, 9, Some(-42))
        );
        assert!(read_frame(&mut reader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn garbage_length_is_refused() {
        let wire = 3u32.to_le_bytes();
        let err = read_frame(&mut wire.as_slice()).await.unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }
}

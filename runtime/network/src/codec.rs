//! Stream elements to and from frames. Batches travel as an Arrow IPC stream per channel: the
//! schema goes once, with the first batch.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use spate_api::{BarrierKind, CheckpointBarrier, StreamElement};

use crate::error::{NetworkError, Result};
use crate::frame::{Frame, Kind};

#[derive(Default)]
pub struct ElementEncoder {
    writer: Option<StreamWriter<Vec<u8>>>,
}

impl ElementEncoder {
    pub fn encode(&mut self, channel: u64, element: &StreamElement) -> Result<Frame> {
        Ok(match element {
            StreamElement::Batch(batch) => {
                Frame::new(Kind::Batch, channel, self.encode_batch(batch)?)
            }
            StreamElement::Watermark(wm) => {
                Frame::new(Kind::Watermark, channel, wm.to_le_bytes().to_vec())
            }
            StreamElement::Idle(idle) => Frame::new(Kind::Idle, channel, vec![*idle as u8]),
            StreamElement::Barrier(barrier) => {
                Frame::new(Kind::Barrier, channel, encode_barrier(barrier))
            }
            StreamElement::End => Frame::new(Kind::End, channel, Vec::new()),
        })
    }

    fn encode_batch(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self
                .writer
                .insert(StreamWriter::try_new(Vec::new(), batch.schema().as_ref())?),
        };
        writer.write(batch)?;
        Ok(std::mem::take(writer.get_mut()))
    }
}

#[derive(Default)]
pub struct ElementDecoder {
    decoder: StreamDecoder,
}

impl ElementDecoder {
    pub fn decode(&mut self, frame: Frame, peer: &str) -> Result<StreamElement> {
        let malformed = |reason: &str| NetworkError::Protocol {
            peer: peer.to_string(),
            reason: reason.to_string(),
        };
        Ok(match frame.kind {
            Kind::Batch => {
                let mut buffer = Buffer::from(frame.payload);
                let batch = self
                    .decoder
                    .decode(&mut buffer)?
                    .ok_or_else(|| malformed("batch frame without a complete record batch"))?;
                StreamElement::Batch(batch)
            }
            Kind::Watermark => StreamElement::Watermark(
                frame
                    .i64_payload()
                    .ok_or_else(|| malformed("short watermark"))?,
            ),
            Kind::Idle => StreamElement::Idle(frame.payload.first().copied().unwrap_or(0) != 0),
            Kind::End => StreamElement::End,
            Kind::Barrier => StreamElement::Barrier(
                decode_barrier(&frame.payload).ok_or_else(|| malformed("short barrier"))?,
            ),
            Kind::Error => return Err(NetworkError::Remote(frame.text_payload(0))),
            Kind::Request | Kind::Credit => {
                return Err(malformed("control frame on a data channel"));
            }
        })
    }
}

fn encode_barrier(barrier: &CheckpointBarrier) -> Vec<u8> {
    let mut payload = Vec::with_capacity(17);
    payload.extend_from_slice(&barrier.id.to_le_bytes());
    payload.extend_from_slice(&barrier.timestamp.to_le_bytes());
    payload.push(match barrier.kind {
        BarrierKind::Checkpoint => 0,
        BarrierKind::Savepoint => 1,
    });
    payload
}

fn decode_barrier(payload: &[u8]) -> Option<CheckpointBarrier> {
    let id = u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?);
    let timestamp = i64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
    let kind = match payload.get(16)? {
        0 => BarrierKind::Checkpoint,
        1 => BarrierKind::Savepoint,
        _ => return None,
    };
    Some(CheckpointBarrier {
        id,
        timestamp,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn elements_round_trip_through_ipc_frames() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = |n: i64| {
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(vec![n, n + 1])),
                    Arc::new(StringArray::from(vec![Some("x"), None])),
                ],
            )
            .unwrap()
        };
        let mut encoder = ElementEncoder::default();
        let mut decoder = ElementDecoder::default();
        let sent = [
            StreamElement::Batch(batch(1)),
            StreamElement::Watermark(99),
            StreamElement::Batch(batch(5)),
            StreamElement::Idle(true),
            StreamElement::Barrier(CheckpointBarrier {
                id: 7,
                timestamp: -3,
                kind: BarrierKind::Savepoint,
            }),
            StreamElement::End,
        ];
        for element in &sent {
            let frame = encoder.encode(3, element).unwrap();
            let wire = crate::frame::Frame::new(frame.kind, frame.channel, frame.payload.clone());
            let got = decoder.decode(wire, "peer").unwrap();
            match (element, got) {
                (StreamElement::Batch(a), StreamElement::Batch(b)) => assert_eq!(a, &b),
                (StreamElement::Watermark(a), StreamElement::Watermark(b)) => assert_eq!(*a, b),
                (StreamElement::Idle(a), StreamElement::Idle(b)) => assert_eq!(*a, b),
                (StreamElement::Barrier(a), StreamElement::Barrier(b)) => assert_eq!(*a, b),
                (StreamElement::End, StreamElement::End) => {}
                (a, b) => panic!("sent {a:?}, got {b:?}"),
            }
        }
    }
}

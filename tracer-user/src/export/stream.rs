//! Spans written to a stream (stdout) by an [`Encoder`].
use std::io::Write;

use super::{Encoder, Item, SendError, Sink};

/// A stream and the format written to it.
pub struct Stream {
    encoder: Box<dyn Encoder>,
    out: Box<dyn Write + Send>,
    buffer: Vec<u8>,
}

impl Stream {
    pub fn new(encoder: Box<dyn Encoder>, out: Box<dyn Write + Send>) -> Self {
        Self {
            encoder,
            out,
            buffer: Vec::with_capacity(1 << 20),
        }
    }
}

impl Sink for Stream {
    /// One write and flush per batch: spans show up promptly without a write per span.
    fn send(&mut self, batch: &[Item]) -> Result<u64, SendError> {
        self.buffer.clear();
        self.encoder.encode_batch(batch, &mut self.buffer);
        self.out
            .write_all(&self.buffer)
            .and_then(|()| self.out.flush())
            .map_err(|error| SendError::Fail(error.to_string()))?;
        Ok(0)
    }
}

//! Exporters. Each runs on its own thread behind a bounded queue: the reader hands over
//! one batch of spans per drain of the ring buffer with a non-blocking send (one wake-up
//! per batch, not per span), and a full queue drops the batch and counts its spans, so a
//! slow exporter never slows the reader (and never the traced program).
pub mod json;
pub mod text;

use std::{
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
};

use crate::pipeline::{resource::Resource, span::Span};

/// Batches waiting for an exporter, at most (a batch is one drain of the ring buffer).
pub const QUEUE_BATCHES: usize = 256;

/// A span with its (wall-clock) times and its process's resource.
#[derive(Clone, Debug)]
pub struct Item {
    pub span: Span,
    pub resource: Arc<Resource>,
}

/// Encodes items in one format.
pub trait Encoder: Send {
    /// Appends the encoding of `item` to `out`.
    fn encode(&mut self, item: &Item, out: &mut Vec<u8>);

    /// Appends the encoding of a batch to `out`: each item in order unless the format
    /// says otherwise.
    fn encode_batch(&mut self, batch: &[Item], out: &mut Vec<u8>) {
        for item in batch {
            self.encode(item, out);
        }
    }
}

/// Counts shared between the reader and an exporter thread.
#[derive(Debug, Default)]
pub struct Stats {
    pub exported: AtomicU64,
    pub queue_full: AtomicU64,
    pub write_errors: AtomicU64,
}

/// The reader's end of an exporter.
pub struct Exporter {
    sender: Option<SyncSender<Vec<Item>>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Exporter {
    /// Starts an exporter thread writing `encoder`'s output to `out`.
    pub fn spawn(
        mut encoder: Box<dyn Encoder>,
        mut out: Box<dyn Write + Send>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Vec<Item>>(QUEUE_BATCHES);
        let stats = Arc::new(Stats::default());
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("exporter".into())
            .spawn(move || {
                drain(&receiver, encoder.as_mut(), out.as_mut(), &thread_stats);
            })?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
            stats,
        })
    }

    /// Queues a batch of spans; drops and counts them when the queue is full.
    pub fn offer(&self, batch: Vec<Item>) {
        let Some(sender) = &self.sender else { return };
        if batch.is_empty() {
            return;
        }
        match sender.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch)) | Err(TrySendError::Disconnected(batch)) => {
                self.stats
                    .queue_full
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// Flushes everything queued and stops the thread.
    pub fn finish(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.finish();
    }
}

fn drain(
    receiver: &Receiver<Vec<Item>>,
    encoder: &mut dyn Encoder,
    out: &mut dyn Write,
    stats: &Stats,
) {
    let mut buffer = Vec::with_capacity(1 << 20);
    while let Ok(batch) = receiver.recv() {
        buffer.clear();
        encoder.encode_batch(&batch, &mut buffer);
        // One write and flush per batch: spans show up promptly without a write per span.
        let n = batch.len() as u64;
        match out.write_all(&buffer).and_then(|()| out.flush()) {
            Ok(()) => stats.exported.fetch_add(n, Ordering::Relaxed),
            Err(_) => stats.write_errors.fetch_add(n, Ordering::Relaxed),
        };
    }
}

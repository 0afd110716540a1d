//! Exporters. Each runs on its own thread behind a bounded queue: the reader hands spans
//! over with a non-blocking send, and a full queue drops the span and counts it, so a slow
//! exporter never slows the reader (and never the traced program).
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

/// Spans waiting for an exporter, at most.
pub const QUEUE_CAPACITY: usize = 65_536;

/// A span with its (wall-clock) times and its process's resource.
#[derive(Clone, Debug)]
pub struct Item {
    pub span: Span,
    pub resource: Arc<Resource>,
}

/// Writes items in one format.
pub trait Encoder: Send {
    fn encode(&mut self, item: &Item, out: &mut dyn Write) -> std::io::Result<()>;
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
    sender: Option<SyncSender<Item>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Exporter {
    /// Starts an exporter thread writing `encoder`'s output to `out`.
    pub fn spawn(
        mut encoder: Box<dyn Encoder>,
        mut out: Box<dyn Write + Send>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Item>(QUEUE_CAPACITY);
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

    /// Queues a span; drops and counts it when the queue is full.
    pub fn offer(&self, item: Item) {
        let Some(sender) = &self.sender else { return };
        match sender.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.stats.queue_full.fetch_add(1, Ordering::Relaxed);
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

fn drain(receiver: &Receiver<Item>, encoder: &mut dyn Encoder, out: &mut dyn Write, stats: &Stats) {
    while let Ok(item) = receiver.recv() {
        let mut batch = vec![item];
        batch.extend(receiver.try_iter().take(4096));
        for item in &batch {
            match encoder.encode(item, out) {
                Ok(()) => stats.exported.fetch_add(1, Ordering::Relaxed),
                Err(_) => stats.write_errors.fetch_add(1, Ordering::Relaxed),
            };
        }
        // Flush once per batch so spans show up promptly without a write per span.
        if out.flush().is_err() {
            stats.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

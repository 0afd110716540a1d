//! Exporters. Each runs on its own thread: the reader hands over one batch of spans per
//! drain of the ring buffer with a non-blocking send (one wake-up per batch, not per
//! span), so a slow or unreachable back end never slows the reader, nor the traced
//! program. The thread keeps a bounded queue of spans (past it the oldest are dropped and
//! counted), sends them in batches by size and time, and retries a batch the back end
//! could not take for now with exponential backoff; every span is either exported or
//! counted under a drop reason.
pub mod json;
pub mod otlp;
mod protobuf;
pub mod settings;
pub mod stream;
pub mod text;
pub mod zipkin;

use std::{
    collections::VecDeque,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    cli::ExporterKind,
    pipeline::{resource::Resource, span::Span},
};

/// Batches waiting to enter an exporter's queue, at most: they wait here only while the
/// exporter is busy sending. The reader stops taking spans from the ring buffer for up
/// to a second while an exporter has [`AHEAD_BATCHES`] waiting, so only a back end slow
/// for longer, or the last drain at exit, fills this.
pub const CHANNEL_BATCHES: usize = 256;

/// Batches waiting for an exporter past which the reader leaves spans in the ring buffer
/// for a while (see [`Exporters::behind`]): there a span takes a fifth of the memory,
/// and what does not fit is still counted (`ringbuf_full`).
pub const AHEAD_BATCHES: u64 = 4;

/// Emptied batches an exporter hands back for reuse, at most: the reader fills them
/// again instead of allocating, so spans cause no allocation (nor page faults, as freed
/// memory goes back to the system at once) in the steady state.
const SPARE_BATCHES: usize = 4;

/// Spans a batch starts with room for.
pub const BATCH_CAPACITY: usize = 1024;
/// The most spans a vector kept for reuse may hold (4 MiB of them): a larger one, a
/// burst's, is freed rather than kept.
const MAX_KEPT_CAPACITY: usize = (4 << 20) / size_of::<Item>();

/// First wait before a retry; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait a back end may ask for (`Retry-After`, gRPC `RetryInfo`).
const MAX_ASKED_BACKOFF: Duration = Duration::from_secs(60);

/// Longest the exporters may take to flush at exit; what is left then is dropped and
/// counted.
const SHUTDOWN: Duration = Duration::from_secs(5);

/// A span with its (wall-clock) times and its process's resource.
#[derive(Clone, Debug)]
pub struct Item {
    pub span: Span,
    pub resource: Arc<Resource>,
}

#[cfg(test)]
impl Item {
    /// A server span `GET` of process 7 (`shop`, in container `c0ffee`), ids `0xab…` and
    /// `0x01…`, times 10 and 20, for tests to adjust.
    pub fn sample() -> Self {
        use crate::pipeline::span::{SpanKind, Status};
        Self {
            span: Span {
                trace_id: [0xab; 16],
                span_id: [0x01; 8],
                parent_span_id: None,
                trace_state: None,
                name: "GET".into(),
                kind: SpanKind::Server,
                start_ns: 10,
                end_ns: 20,
                status: Status::Unset,
                attributes: smallvec::smallvec![
                    ("http.request.method", "GET".into()),
                    ("server.port", 8080.into()),
                ],
                pid: 7,
                goroutine: 1,
            },
            resource: Arc::new(Resource {
                service_name: "shop".into(),
                pid: 7,
                executable_path: "/srv/shop".into(),
                runtime_version: "go1.24.11".into(),
                host_name: "node-1".into(),
                attributes: vec![("container.id".into(), "c0ffee".into())],
            }),
        }
    }
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

/// Where an exporter delivers batches.
pub trait Sink: Send {
    /// Delivers `batch`; on success, says how many spans the back end refused anyway
    /// (OTLP partial success).
    fn send(&mut self, batch: &[Item]) -> Result<u64, SendError>;

    /// Why the back end cannot be reached now, if that can be told before sending.
    fn unreachable(&mut self) -> Option<String> {
        None
    }
}

/// Why a batch was not delivered.
#[derive(Debug, PartialEq)]
pub enum SendError {
    /// The back end may take it later (unreachable, overloaded, a retryable status):
    /// after `after` if it said when.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// It never will (rejected as invalid, a write to a closed stdout).
    Fail(String),
}

/// How an exporter batches and queues.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Spans waiting, at most: past it the oldest are dropped (`export_queue_full`).
    pub max_queue: usize,
    /// Spans per send, at most.
    pub max_batch: usize,
    /// Longest a span waits for its batch to fill.
    pub delay: Duration,
    /// How long a batch is retried before it is given up (`export_failed`).
    pub give_up_after: Duration,
}

impl Policy {
    /// Writing to a stream: every batch at once, as it comes.
    pub const STREAM: Self = Self {
        max_queue: 1 << 16,
        max_batch: usize::MAX,
        delay: Duration::ZERO,
        give_up_after: Duration::ZERO,
    };
}

/// Counts shared between the reader, an exporter thread and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Stats {
    /// Spans the back end took.
    pub exported: AtomicU64,
    /// Spans dropped because the queue was full (the oldest first), or the channel to it
    /// (the newest).
    pub queue_full: AtomicU64,
    /// Spans given up after failed sends.
    pub failed: AtomicU64,
    /// Spans the back end said it refused (partial success).
    pub rejected: AtomicU64,
    /// Sends that failed (each retry counts).
    pub send_errors: AtomicU64,
    /// Spans waiting now.
    pub queued: AtomicU64,
    /// Batches offered that the thread has not taken yet.
    pub ahead: AtomicU64,
    /// The thread's id while it runs, else 0 (see [`crate::priority`]).
    pub thread_id: Arc<std::sync::atomic::AtomicI32>,
}

/// The reader's end of an exporter.
pub struct Exporter {
    pub name: &'static str,
    sender: Option<SyncSender<Vec<Item>>>,
    /// Emptied batches coming back from the thread.
    spare: Receiver<Vec<Item>>,
    thread: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Exporter {
    /// Starts the exporter thread `name` sending to `sink` as `policy` says.
    pub fn spawn(name: &'static str, sink: Box<dyn Sink>, policy: Policy) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Vec<Item>>(CHANNEL_BATCHES);
        let (give_back, spare) = sync_channel::<Vec<Item>>(SPARE_BATCHES);
        let stats = Arc::new(Stats::default());
        let worker = Worker {
            name,
            receiver,
            give_back,
            sending: Vec::new(),
            sink,
            policy,
            stats: Arc::clone(&stats),
            queue: VecDeque::new(),
            retrying: None,
            first_queued: None,
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name(format!("export-{name}"))
            .spawn(move || worker.run())?;
        Ok(Self {
            name,
            sender: Some(sender),
            spare,
            thread: Some(thread),
            stats,
        })
    }

    /// An empty batch to fill: one the thread gave back, or a new one.
    pub fn batch(&self) -> Vec<Item> {
        self.spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BATCH_CAPACITY))
    }

    /// Queues a batch of spans; drops and counts them when even the channel is full.
    pub fn offer(&self, batch: Vec<Item>) {
        let Some(sender) = &self.sender else { return };
        if batch.is_empty() {
            return;
        }
        // Counted before the send: the thread may take it at once.
        self.stats.ahead.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch)) | Err(TrySendError::Disconnected(batch)) => {
                self.stats.ahead.fetch_sub(1, Ordering::Relaxed);
                self.stats
                    .queue_full
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// True while [`AHEAD_BATCHES`] or more batches wait for the thread (which has not
    /// ended: the batches of a thread that died wait for nothing).
    pub fn behind(&self) -> bool {
        self.stats.ahead.load(Ordering::Relaxed) >= AHEAD_BATCHES
            && self
                .thread
                .as_ref()
                .is_some_and(|thread| !thread.is_finished())
    }

    /// Flushes everything queued (within [`SHUTDOWN`]) and stops the thread.
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

/// Every exporter of the run, by kind; each gets every span.
pub struct Exporters(pub Vec<(ExporterKind, Exporter)>);

impl Exporters {
    /// An empty batch to fill and [`offer`](Self::offer).
    pub fn batch(&self) -> Vec<Item> {
        match self.0.last() {
            Some((_, last)) => last.batch(),
            None => Vec::new(),
        }
    }

    /// Hands `batch` to every exporter (the last one takes it, the others a copy).
    pub fn offer(&self, batch: Vec<Item>) {
        let Some(((_, last), others)) = self.0.split_last() else {
            return;
        };
        for (_, exporter) in others {
            let mut copy = exporter.batch();
            copy.extend_from_slice(&batch);
            exporter.offer(copy);
        }
        last.offer(batch);
    }

    /// The exporters' thread ids, each 0 while its thread does not run.
    pub fn thread_ids(&self) -> Vec<Arc<std::sync::atomic::AtomicI32>> {
        self.0
            .iter()
            .map(|(_, exporter)| Arc::clone(&exporter.stats.thread_id))
            .collect()
    }

    /// True while any exporter is [`behind`](Exporter::behind).
    pub fn behind(&self) -> bool {
        self.0.iter().any(|(_, exporter)| exporter.behind())
    }

    pub fn finish(&mut self) {
        for (_, exporter) in &mut self.0 {
            exporter.finish();
        }
    }
}

/// A batch that failed for now and waits for its next try.
struct Retrying {
    items: Vec<Item>,
    first_failure: Instant,
    backoff: Duration,
    next_try: Instant,
}

/// The emptied `batch`, when it is small enough to keep for reuse ([`MAX_KEPT_CAPACITY`]).
fn kept(batch: Vec<Item>) -> Option<Vec<Item>> {
    (batch.capacity() <= MAX_KEPT_CAPACITY).then_some(batch)
}

/// The exporter thread.
struct Worker {
    name: &'static str,
    receiver: Receiver<Vec<Item>>,
    /// Where emptied batches go back to the reader.
    give_back: SyncSender<Vec<Item>>,
    /// The batch being sent, kept between sends for its allocation.
    sending: Vec<Item>,
    sink: Box<dyn Sink>,
    policy: Policy,
    stats: Arc<Stats>,
    queue: VecDeque<Item>,
    retrying: Option<Retrying>,
    /// When the oldest span now queued arrived.
    first_queued: Option<Instant>,
    /// Whether the last send failed (to log changes, not every failure).
    failing: bool,
}

impl Worker {
    fn run(mut self) {
        let _live = crate::priority::LiveThreadId::publish(&self.stats.thread_id);
        if let Some(why) = self.sink.unreachable() {
            log::warn!(
                "{}: back end unreachable ({why}): spans wait (up to {}) and are retried",
                self.name,
                self.policy.max_queue
            );
            self.failing = true;
        }
        let mut closing: Option<Instant> = None;
        loop {
            if closing.is_none() {
                let wait = self
                    .next_due()
                    .map(|due| due.saturating_duration_since(Instant::now()));
                let received = match wait {
                    Some(wait) => self.receiver.recv_timeout(wait),
                    None => self
                        .receiver
                        .recv()
                        .map_err(|_| RecvTimeoutError::Disconnected),
                };
                match received {
                    Ok(batch) => {
                        self.take(batch);
                        while let Ok(batch) = self.receiver.try_recv() {
                            self.take(batch);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => closing = Some(Instant::now()),
                }
            }
            if let Some(since) = closing
                && since.elapsed() >= SHUTDOWN
            {
                self.give_up_everything();
                return;
            }
            self.send_due(closing);
            if closing.is_some() && self.queue.is_empty() && self.retrying.is_none() {
                return;
            }
        }
    }

    /// When something is to be sent next: a retry, or a batch whose time has come.
    fn next_due(&self) -> Option<Instant> {
        if let Some(retrying) = &self.retrying {
            return Some(retrying.next_try);
        }
        if self.queue.len() >= self.policy.max_batch {
            return Some(Instant::now());
        }
        self.first_queued.map(|first| first + self.policy.delay)
    }

    /// Sends `batch` as it came when nothing waits before it and the policy sends at once
    /// (a stream: no copy of its spans); queues it otherwise.
    fn take(&mut self, batch: Vec<Item>) {
        self.stats.ahead.fetch_sub(1, Ordering::Relaxed);
        let at_once = self.queue.is_empty()
            && self.retrying.is_none()
            && self.policy.delay.is_zero()
            && batch.len() <= self.policy.max_batch.min(self.policy.max_queue);
        if !at_once {
            self.enqueue(batch);
            return;
        }
        if let Some(emptied) = self.attempt(batch, None, false) {
            self.give_back(emptied);
        }
        // A batch kept for a retry counts as queued.
        self.publish_depth();
    }

    /// Returns an emptied batch to the reader, unless a burst made it large or the
    /// reader has spares enough (it is freed then).
    fn give_back(&self, batch: Vec<Item>) {
        if let Some(batch) = kept(batch) {
            let _ = self.give_back.try_send(batch);
        }
    }

    fn enqueue(&mut self, mut batch: Vec<Item>) {
        if self.queue.is_empty() {
            self.first_queued = Some(Instant::now());
        }
        self.queue.extend(batch.drain(..));
        self.give_back(batch);
        let over = self.queue.len().saturating_sub(self.policy.max_queue);
        if over > 0 {
            self.queue.drain(..over);
            self.stats
                .queue_full
                .fetch_add(over as u64, Ordering::Relaxed);
        }
        self.publish_depth();
    }

    fn publish_depth(&self) {
        let retrying = self.retrying.as_ref().map_or(0, |r| r.items.len());
        self.stats
            .queued
            .store((self.queue.len() + retrying) as u64, Ordering::Relaxed);
    }

    /// Sends what is due: the batch being retried when its time has come, then full
    /// batches, then the rest once it has waited long enough (everything, with no more
    /// retries, when `closing` since then, until [`SHUTDOWN`] has passed).
    fn send_due(&mut self, closing_since: Option<Instant>) {
        let closing = closing_since.is_some();
        if let Some(retrying) = self.retrying.take() {
            if !closing && Instant::now() < retrying.next_try {
                self.retrying = Some(retrying);
                return;
            }
            let earlier = (retrying.first_failure, retrying.backoff);
            // Its allocation is not kept: retried batches are rare.
            let _ = self.attempt(retrying.items, Some(earlier), closing);
            if self.retrying.is_some() {
                return;
            }
        }
        loop {
            let due = closing
                || self.queue.len() >= self.policy.max_batch
                || self
                    .first_queued
                    .is_some_and(|first| first.elapsed() >= self.policy.delay);
            let late = closing_since.is_some_and(|since| since.elapsed() >= SHUTDOWN);
            if !due || late || self.queue.is_empty() {
                break;
            }
            let n = self.queue.len().min(self.policy.max_batch);
            let mut items = std::mem::take(&mut self.sending);
            items.extend(self.queue.drain(..n));
            self.first_queued = (!self.queue.is_empty()).then(Instant::now);
            if let Some(emptied) = self.attempt(items, None, closing).and_then(kept) {
                self.sending = emptied;
            }
            if self.retrying.is_some() {
                break;
            }
        }
        if self.queue.is_empty() && self.queue.capacity() > MAX_KEPT_CAPACITY {
            // What a burst or an outage queued is not kept for good.
            self.queue.shrink_to(MAX_KEPT_CAPACITY);
        }
        self.publish_depth();
    }

    /// One send of `items` (`earlier`: when it first failed and the last wait, if it
    /// was tried before). Gives back the emptied vector once done with its spans (not
    /// when they wait for a retry).
    fn attempt(
        &mut self,
        mut items: Vec<Item>,
        earlier: Option<(Instant, Duration)>,
        closing: bool,
    ) -> Option<Vec<Item>> {
        let n = items.len() as u64;
        match self.sink.send(&items) {
            Ok(rejected) => {
                if self.failing {
                    log::info!("{}: exporting again", self.name);
                    self.failing = false;
                }
                let rejected = rejected.min(n);
                self.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
                self.stats
                    .exported
                    .fetch_add(n - rejected, Ordering::Relaxed);
                items.clear();
                Some(items)
            }
            Err(error) => {
                self.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                let (reason, after) = match error {
                    SendError::Retry { reason, after } => (reason, Some(after)),
                    SendError::Fail(reason) => (reason, None),
                };
                let first_failure = earlier.map_or_else(Instant::now, |(first, _)| first);
                let retry = after
                    .filter(|_| !closing && first_failure.elapsed() < self.policy.give_up_after);
                if !self.failing {
                    let what = if retry.is_some() {
                        "retrying"
                    } else {
                        "dropped"
                    };
                    log::warn!("{}: export failed: {reason} ({what})", self.name);
                    self.failing = true;
                }
                match retry {
                    Some(asked) => {
                        let backoff =
                            earlier.map_or(FIRST_BACKOFF, |(_, last)| (last * 2).min(MAX_BACKOFF));
                        let wait = asked.map_or(backoff, |a| a.min(MAX_ASKED_BACKOFF));
                        self.retrying = Some(Retrying {
                            items,
                            first_failure,
                            backoff,
                            next_try: Instant::now() + jitter(wait),
                        });
                        None
                    }
                    None => {
                        self.stats.failed.fetch_add(n, Ordering::Relaxed);
                        items.clear();
                        Some(items)
                    }
                }
            }
        }
    }

    /// At the shutdown deadline: counts whatever was not sent.
    fn give_up_everything(&mut self) {
        let mut left = self.queue.len() as u64;
        left += self.retrying.take().map_or(0, |r| r.items.len() as u64);
        while let Ok(batch) = self.receiver.try_recv() {
            self.stats.ahead.fetch_sub(1, Ordering::Relaxed);
            left += batch.len() as u64;
        }
        self.queue.clear();
        self.stats.failed.fetch_add(left, Ordering::Relaxed);
        if left > 0 {
            log::warn!(
                "{}: {left} spans not exported within {} s of stopping: dropped",
                self.name,
                SHUTDOWN.as_secs()
            );
        }
        self.publish_depth();
    }
}

/// `wait` give or take a fifth, so that many tracers do not retry in step.
fn jitter(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let fraction = f64::from(nanos % 1000) / 1000.0; // [0, 1)
    wait.mul_f64(0.8 + 0.4 * fraction)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn item(n: u8) -> Item {
        let mut item = Item::sample();
        item.span.span_id = [n; 8];
        item
    }

    /// A back end that is down for its first `down` sends, then takes everything.
    struct Flaky {
        down: usize,
        received: Arc<Mutex<Vec<u8>>>,
    }

    impl Flaky {
        /// A sink down for its first `down` sends, and the first byte of the span id of
        /// every span it received.
        fn new(down: usize) -> (Box<Self>, Arc<Mutex<Vec<u8>>>) {
            let received = Arc::new(Mutex::new(Vec::new()));
            let sink = Self {
                down,
                received: Arc::clone(&received),
            };
            (Box::new(sink), received)
        }
    }

    impl Sink for Flaky {
        fn send(&mut self, batch: &[Item]) -> Result<u64, SendError> {
            if self.down > 0 {
                self.down -= 1;
                return Err(SendError::Retry {
                    reason: "down".into(),
                    after: Some(Duration::from_millis(10)),
                });
            }
            let mut received = self.received.lock().expect("lock");
            received.extend(batch.iter().map(|i| i.span.span_id[0]));
            Ok(0)
        }
    }

    fn policy() -> Policy {
        Policy {
            max_queue: 8,
            max_batch: 3,
            delay: Duration::from_millis(20),
            give_up_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn retries_then_delivers_in_batches() {
        let (sink, received) = Flaky::new(2);
        let mut exporter = Exporter::spawn("test", sink, policy()).expect("spawn");
        exporter.offer((0..5).map(item).collect());
        std::thread::sleep(Duration::from_millis(300));
        exporter.offer(vec![item(5)]);
        exporter.finish();
        assert_eq!(*received.lock().expect("lock"), vec![0, 1, 2, 3, 4, 5]);
        let stats = &exporter.stats;
        assert_eq!(stats.exported.load(Ordering::Relaxed), 6);
        assert_eq!(stats.send_errors.load(Ordering::Relaxed), 2);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
        assert_eq!(stats.queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        // Down long enough for the queue to overflow while the first batch waits.
        let (sink, received) = Flaky::new(1000);
        let mut exporter = Exporter::spawn("test", sink, policy()).expect("spawn");
        for n in 0..20 {
            exporter.offer(vec![item(n)]);
            std::thread::sleep(Duration::from_millis(5));
        }
        exporter.finish();
        let stats = &exporter.stats;
        let (full, failed) = (
            stats.queue_full.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
        );
        assert!(full > 0, "the queue overflowed");
        // Every span is accounted for: none delivered, each dropped once.
        assert_eq!(full + failed, 20);
        assert!(received.lock().expect("lock").is_empty());
    }

    /// A back end that takes a batch only when the test lets it (`gate`), or panics.
    struct Gated {
        gate: std::sync::mpsc::Receiver<()>,
        panics: bool,
    }

    impl Sink for Gated {
        fn send(&mut self, _batch: &[Item]) -> Result<u64, SendError> {
            assert!(!self.panics, "a sink that fails hard");
            self.gate
                .recv()
                .map_err(|_| SendError::Fail("gate closed".into()))?;
            Ok(0)
        }
    }

    /// Waits up to 5 s for `done`.
    fn eventually(done: impl Fn() -> bool) -> bool {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > Duration::from_secs(5) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn an_exporter_is_behind_while_batches_wait_and_its_thread_lives() {
        let (open, gate) = sync_channel(0);
        let sink = Box::new(Gated {
            gate,
            panics: false,
        });
        let exporter = Exporter::spawn("test", sink, Policy::STREAM).expect("spawn");
        let exporters = Exporters(vec![(ExporterKind::Stdout, exporter)]);
        // One batch in the send, then AHEAD_BATCHES waiting.
        exporters.offer(vec![item(0)]);
        assert!(eventually(|| exporters.0[0]
            .1
            .stats
            .ahead
            .load(Ordering::Relaxed)
            == 0));
        for n in 0..AHEAD_BATCHES {
            assert!(!exporters.behind(), "{n} waiting");
            exporters.offer(vec![item(n as u8 + 1)]);
        }
        assert!(exporters.behind());
        open.send(()).expect("let one batch through");
        assert!(
            eventually(|| !exporters.behind()),
            "one taken: no longer behind"
        );
        drop(open);

        // A thread that died leaves its batches waiting for nothing: not behind.
        let (_open, gate) = sync_channel(0);
        let sink = Box::new(Gated { gate, panics: true });
        let exporter = Exporter::spawn("test", sink, Policy::STREAM).expect("spawn");
        for n in 0..=AHEAD_BATCHES {
            exporter.offer(vec![item(n as u8)]);
        }
        assert!(eventually(|| exporter
            .thread
            .as_ref()
            .is_some_and(|t| t.is_finished())));
        assert!(!exporter.behind());
    }

    #[test]
    fn sent_batches_come_back_empty_for_reuse_unless_large() {
        let (sink, received) = Flaky::new(0);
        let stream = Policy {
            max_queue: 100,
            ..Policy::STREAM
        };
        let mut exporter = Exporter::spawn("test", sink, stream).expect("spawn");
        let mut batch = Vec::with_capacity(7);
        batch.extend((0..3).map(item));
        exporter.offer(batch);
        let reused = exporter
            .spare
            .recv_timeout(Duration::from_secs(5))
            .expect("the batch comes back once sent");
        assert_eq!((reused.len(), reused.capacity()), (0, 7));
        // A burst's batch is freed, not given back.
        let mut large = Vec::with_capacity(MAX_KEPT_CAPACITY + 1);
        large.extend((3..6).map(item));
        exporter.offer(large);
        exporter.finish();
        assert!(exporter.spare.try_recv().is_err());
        assert_eq!(exporter.batch().capacity(), BATCH_CAPACITY);
        assert_eq!(*received.lock().expect("lock"), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_stream_keeps_the_order_while_a_batch_is_retried() {
        let (sink, received) = Flaky::new(1);
        let stream = Policy {
            give_up_after: Duration::from_secs(10),
            ..Policy::STREAM
        };
        let mut exporter = Exporter::spawn("test", sink, stream).expect("spawn");
        exporter.offer((0..2).map(item).collect());
        exporter.offer((2..4).map(item).collect());
        exporter.finish();
        assert_eq!(*received.lock().expect("lock"), vec![0, 1, 2, 3]);
        assert_eq!(exporter.stats.send_errors.load(Ordering::Relaxed), 1);
        assert_eq!(exporter.stats.exported.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn every_exporter_gets_every_span_in_order() {
        let (sinks, received): (Vec<_>, Vec<_>) = (0..3).map(|_| Flaky::new(0)).unzip();
        let exporters = sinks.into_iter().map(|sink| {
            let exporter = Exporter::spawn("test", sink, Policy::STREAM);
            (ExporterKind::Stdout, exporter.expect("spawn"))
        });
        let mut exporters = Exporters(exporters.collect());
        for first in [0, 4] {
            let mut batch = exporters.batch();
            batch.extend((first..first + 4).map(item));
            exporters.offer(batch);
        }
        exporters.offer(Vec::new());
        exporters.finish();
        for received in &received {
            assert_eq!(*received.lock().expect("lock"), (0..8).collect::<Vec<u8>>());
        }
    }

    /// A back end that refuses everything for good.
    struct Refusing;

    impl Sink for Refusing {
        fn send(&mut self, _: &[Item]) -> Result<u64, SendError> {
            Err(SendError::Fail("bad request".into()))
        }
    }

    #[test]
    fn permanent_failures_are_not_retried() {
        let mut exporter = Exporter::spawn("test", Box::new(Refusing), policy()).expect("spawn");
        exporter.offer((0..7).map(item).collect());
        exporter.finish();
        let stats = &exporter.stats;
        assert_eq!(stats.failed.load(Ordering::Relaxed), 7);
        // Three batches, one send each.
        assert_eq!(stats.send_errors.load(Ordering::Relaxed), 3);
    }
}

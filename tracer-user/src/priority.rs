//! The span path (the main loop, which reads the ring buffer, and the exporters' threads)
//! runs in the kernel's idle scheduling class (`SCHED_IDLE`) while it keeps up: the
//! kernel then gives it only CPU time that no other thread wants, so its wake-ups (a
//! drain and a batch per exporter, 50 a second each) never delay a traced program or its
//! clients. Niceness alone does not do that: a nice-10 thread woken on a busy CPU still
//! takes its turn there before the thread it interrupted goes on. Both have to yield:
//! with either one in the normal class, its wake-ups cost the traced programs as much
//! as before (measured on the hello-world bench, README "Performance").
//!
//! On CPUs that stay busy, idle-class threads may wait long: spans would pile up in the
//! ring buffer, and a held program start would wait. So a watchdog thread (normal class,
//! the tracer's niceness) looks every [`CHECK_EVERY`] at when a drain last emptied the
//! ring buffer (with exporters behind, drains leave spans there), and moves the span path
//! back to the normal class once that is [`LATE`]; it stays there for [`CATCH_UP`] at
//! least, and goes back to the idle class after a drain that emptied the ring buffer.
//! Leaving the idle class needs CAP_SYS_NICE: without it, every thread stays in the
//! normal class, at its niceness. Threads started from the span path (a name lookup of an
//! exporter's, the thread that closes the probes of a changed binary) start in its class:
//! those others wait on leave it ([`leave_idle_class`]).
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicU64, Ordering::SeqCst},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// When the watchdog looks, and how long the span path may lag and catches up.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// How often the watchdog looks.
    check_every: Duration,
    /// How long the ring buffer may go without being emptied before the span path leaves
    /// the idle class.
    late: Duration,
    /// How long the span path stays in the normal class once moved there.
    catch_up: Duration,
}

/// The drain interval (20 ms) and some slack; a second of catching up.
const TIMING: Timing = Timing {
    check_every: Duration::from_millis(20),
    late: Duration::from_millis(60),
    catch_up: Duration::from_secs(1),
};

/// The class of the span path, in [`Shared::class`]: the loop moves it from normal to
/// idle (through demoting), the watchdog back to normal from either; each move sets
/// every thread's policy, which is safe to repeat, so the watchdog never waits for the
/// loop (which may be the thread that does not get the CPU).
const NORMAL: u8 = 0;
const DEMOTING: u8 = 1;
const IDLE: u8 = 2;

struct Shared {
    timing: Timing,
    /// When the nanosecond counts below start.
    start: Instant,
    /// The last drain that emptied the ring buffer.
    caught_up: AtomicU64,
    /// When the span path last moved to the normal class.
    normal_since: AtomicU64,
    class: AtomicU8,
    /// The loop's thread.
    main: libc::pid_t,
    /// The exporters' threads, read at each move: 0 while one does not run (an id is
    /// never used after its thread ended, when another thread may have it).
    exporters: Vec<Arc<AtomicI32>>,
    stop: AtomicBool,
    /// Times the watchdog moved the span path back to the normal class.
    promotions: AtomicU64,
}

impl Shared {
    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    fn since(&self, at: &AtomicU64) -> Duration {
        Duration::from_nanos(self.now().saturating_sub(at.load(SeqCst)))
    }

    /// Moves the span path to `policy`: the loop first, and the exporters only when the
    /// kernel took the loop's move (false otherwise).
    fn set(&self, policy: libc::c_int) -> bool {
        if !set_policy(self.main, policy) {
            return false;
        }
        for exporter in &self.exporters {
            let tid = exporter.load(SeqCst);
            if tid > 0 {
                set_policy(tid, policy);
            }
        }
        true
    }

    /// Back to the normal class (the watchdog, and at the end).
    fn promote(&self) {
        if self.set(libc::SCHED_OTHER) {
            self.normal_since.store(self.now(), SeqCst);
            self.class.store(NORMAL, SeqCst);
        }
    }
}

/// The span path in the idle class, and its watchdog.
pub struct Yielding {
    shared: Arc<Shared>,
    watchdog: Option<JoinHandle<()>>,
}

impl Yielding {
    /// Moves the calling thread (the main loop) and the `exporters` (their thread ids, 0
    /// while not running) to the idle class, and starts the watchdog. `None` (every
    /// thread stays in the normal class) without CAP_SYS_NICE, or when the watchdog
    /// cannot start.
    pub fn start(exporters: Vec<Arc<AtomicI32>>) -> Option<Self> {
        Self::start_with(exporters, TIMING)
    }

    fn start_with(exporters: Vec<Arc<AtomicI32>>, timing: Timing) -> Option<Self> {
        if !crate::privileges::has_sys_nice() {
            log::info!("no CAP_SYS_NICE: the reader stays in the normal scheduling class");
            return None;
        }
        let shared = Arc::new(Shared {
            timing,
            start: Instant::now(),
            caught_up: AtomicU64::new(0),
            normal_since: AtomicU64::new(0),
            class: AtomicU8::new(NORMAL),
            // SAFETY: gettid has no preconditions.
            main: unsafe { libc::gettid() },
            exporters,
            stop: AtomicBool::new(false),
            promotions: AtomicU64::new(0),
        });
        // Started before the loop yields: a thread starts in its creator's class.
        let watchdog = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || watch(&shared)
            })
            .map_err(|error| {
                log::warn!("no scheduling watchdog ({error}): the reader stays in the normal class")
            })
            .ok()?;
        let yielding = Self {
            shared,
            watchdog: Some(watchdog),
        };
        yielding.demote();
        Some(yielding)
    }

    /// A turn of the loop; `caught_up`: its drain emptied the ring buffer.
    pub fn turn(&self, caught_up: bool) {
        let shared = &self.shared;
        if !caught_up {
            return;
        }
        shared.caught_up.store(shared.now(), SeqCst);
        if shared.class.load(SeqCst) == NORMAL
            && shared.since(&shared.normal_since) >= shared.timing.catch_up
        {
            self.demote();
        }
    }

    /// To the idle class, unless the watchdog moves it back meanwhile.
    fn demote(&self) {
        let shared = &self.shared;
        if shared
            .class
            .compare_exchange(NORMAL, DEMOTING, SeqCst, SeqCst)
            .is_err()
        {
            return;
        }
        if !shared.set(libc::SCHED_IDLE) {
            // Refused: tried again after another while in the normal class.
            shared.normal_since.store(shared.now(), SeqCst);
            shared.class.store(NORMAL, SeqCst);
            return;
        }
        if shared
            .class
            .compare_exchange(DEMOTING, IDLE, SeqCst, SeqCst)
            .is_err()
        {
            // The watchdog moved it back meanwhile, maybe before these moves: again.
            shared.set(libc::SCHED_OTHER);
        }
    }

    /// Times the span path was moved back to the normal class.
    #[cfg(test)]
    fn promotions(&self) -> u64 {
        self.shared.promotions.load(SeqCst)
    }
}

impl Drop for Yielding {
    /// Stops the watchdog, and puts the span path back in the normal class: what the
    /// tracer does at exit (waiting for the removal of probes, the last drain, the
    /// exporters' last sends) waits for no CPU.
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        if self.shared.class.load(SeqCst) != NORMAL {
            self.shared.promote();
        }
    }
}

fn watch(shared: &Shared) {
    while !shared.stop.load(SeqCst) {
        std::thread::sleep(shared.timing.check_every);
        // The class first: a demotion comes after the drain that allowed it.
        if shared.class.load(SeqCst) == NORMAL
            || shared.since(&shared.caught_up) < shared.timing.late
        {
            continue;
        }
        shared.promote();
        shared.promotions.fetch_add(1, SeqCst);
        log::debug!("the reader fell behind: back in the normal scheduling class");
    }
}

/// Puts the calling thread, started from the span path (in its class), in the normal
/// class at the niceness it inherited: for work that others wait on.
pub fn leave_idle_class() {
    // SAFETY: sched_getscheduler has no memory preconditions; 0 names the caller.
    if unsafe { libc::sched_getscheduler(0) } == libc::SCHED_IDLE {
        set_policy(0, libc::SCHED_OTHER);
    }
}

/// Moves thread `tid` (0: the caller) to scheduling `policy`, keeping its niceness; false
/// (logged) when the kernel refuses.
fn set_policy(tid: libc::pid_t, policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is valid for the call; a fair-class policy takes priority 0.
    let rc = unsafe { libc::sched_setscheduler(tid, policy, &param) };
    if rc != 0 {
        log::warn!(
            "cannot set the scheduling policy of thread {tid} to {policy}: {}",
            std::io::Error::last_os_error()
        );
    }
    rc == 0
}

/// Clears a thread's id (see [`Shared::exporters`]) when the thread ends, however it ends.
pub struct LiveThreadId(Arc<AtomicI32>);

impl LiveThreadId {
    /// Publishes the calling thread's id in `id` until the returned value is dropped.
    pub fn publish(id: &Arc<AtomicI32>) -> Self {
        // SAFETY: gettid has no preconditions.
        id.store(unsafe { libc::gettid() }, SeqCst);
        Self(Arc::clone(id))
    }
}

impl Drop for LiveThreadId {
    fn drop(&mut self) {
        self.0.store(0, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// The policy of thread `tid` of this process, from `/proc` (field 41 of `stat`).
    fn policy_of(tid: libc::pid_t) -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).expect("stat");
        let after_name = &stat[stat.rfind(')').expect("name") + 2..];
        after_name
            .split(' ')
            .nth(38)
            .and_then(|policy| policy.parse().ok())
            .expect("policy")
    }

    fn gettid() -> libc::pid_t {
        // SAFETY: gettid has no preconditions.
        unsafe { libc::gettid() }
    }

    /// Wide margins: the loop's thread waits in the idle class while other tests run.
    const TEST_TIMING: Timing = Timing {
        check_every: Duration::from_millis(10),
        late: Duration::from_millis(400),
        catch_up: Duration::from_millis(300),
    };

    /// Needs CAP_SYS_NICE (root), as the end-to-end tests do.
    #[test]
    fn the_span_path_idles_while_it_keeps_up_and_is_moved_back_when_late() {
        assert!(
            crate::privileges::has_sys_nice(),
            "leaving the idle class needs CAP_SYS_NICE: run the tests as root"
        );
        let timing = TEST_TIMING;
        // An "exporter": a thread that publishes its id and waits until told to end.
        let id = Arc::new(AtomicI32::new(0));
        let (end, ended) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel();
        let exporter = std::thread::spawn({
            let id = Arc::clone(&id);
            move || {
                let _live = LiveThreadId::publish(&id);
                started.send(gettid()).expect("send");
                let _ = ended.recv();
            }
        });
        let exporter_tid = running.recv().expect("tid");
        // The loop, on a thread of its own: the test harness's threads stay as they are.
        std::thread::spawn(move || {
            let me = gettid();
            let both = || (policy_of(me), policy_of(exporter_tid));
            let idle = (libc::SCHED_IDLE, libc::SCHED_IDLE);
            let normal = (libc::SCHED_OTHER, libc::SCHED_OTHER);
            let yielding = Yielding::start_with(vec![id], timing).expect("started");
            assert_eq!(both(), idle);
            // Drains that empty the ring buffer every 10 ms keep it idle.
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(10));
                yielding.turn(true);
            }
            assert_eq!(both(), idle);
            assert_eq!(yielding.promotions(), 0);
            // Turns that leave spans behind for longer than `late`: back to normal.
            let behind = Instant::now();
            while behind.elapsed() < timing.late + 5 * timing.check_every {
                std::thread::sleep(Duration::from_millis(10));
                yielding.turn(false);
            }
            assert_eq!(both(), normal);
            assert_eq!(yielding.promotions(), 1);
            // A caught-up turn before `catch_up` keeps it there; one after moves it again.
            yielding.turn(true);
            assert_eq!(both(), normal);
            std::thread::sleep(timing.catch_up);
            yielding.turn(true);
            assert_eq!(both(), idle);
            // No turn at all for longer than `late` (a starved loop): back to normal.
            std::thread::sleep(timing.late + 5 * timing.check_every);
            assert_eq!(both(), normal);
            assert_eq!(yielding.promotions(), 2);
            std::thread::sleep(timing.catch_up);
            yielding.turn(true);
            assert_eq!(both(), idle);
            // A thread started now starts idle, and leaves.
            let started = std::thread::spawn(|| {
                let before = policy_of(gettid());
                leave_idle_class();
                (before, policy_of(gettid()))
            })
            .join()
            .expect("thread");
            assert_eq!(started, (libc::SCHED_IDLE, libc::SCHED_OTHER));
            drop(yielding);
            assert_eq!(both(), normal);
        })
        .join()
        .expect("the loop's thread");
        end.send(()).expect("end");
        exporter.join().expect("exporter");
    }

    #[test]
    fn an_ended_threads_id_is_cleared() {
        let id = Arc::new(AtomicI32::new(0));
        let seen = std::thread::spawn({
            let id = Arc::clone(&id);
            move || {
                let _live = LiveThreadId::publish(&id);
                (id.load(SeqCst), gettid())
            }
        })
        .join()
        .expect("thread");
        assert_eq!(seen.0, seen.1);
        assert_eq!(id.load(SeqCst), 0);
    }
}

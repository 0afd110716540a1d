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
//! normal class, at its niceness.
use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// How often the watchdog looks.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// How long the ring buffer may go without being emptied before the span path leaves the
/// idle class: the drain interval (20 ms) and some slack.
const LATE: Duration = Duration::from_millis(60);
/// How long the span path stays in the normal class once moved there.
const CATCH_UP: Duration = Duration::from_secs(1);

/// The scheduling class of the span path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Idle,
    Normal { since: Instant },
}

struct Shared {
    /// When [`Self::caught_up`] counts from.
    start: Instant,
    /// Nanoseconds from `start` to the last drain that emptied the ring buffer.
    caught_up: AtomicU64,
    /// Changed, with the threads' policy, by the loop (to idle) and the watchdog (to
    /// normal) under this lock, so that the two never disagree.
    class: Mutex<Class>,
    /// The span path's threads: the loop's first.
    threads: Vec<libc::pid_t>,
    stop: AtomicBool,
    /// Times the watchdog moved the span path back to the normal class.
    promotions: AtomicU64,
}

impl Shared {
    fn class(&self) -> std::sync::MutexGuard<'_, Class> {
        self.class.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Moves every thread of the span path to `policy`; false when the kernel refused
    /// the loop's (the others are best effort: an exporter may have ended).
    fn set(&self, policy: libc::c_int) -> bool {
        let mut threads = self.threads.iter();
        let main = threads.next().is_some_and(|&tid| set_policy(tid, policy));
        for &tid in threads {
            set_policy(tid, policy);
        }
        main
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// The span path in the idle class, and its watchdog.
pub struct Yielding {
    shared: Arc<Shared>,
    watchdog: Option<JoinHandle<()>>,
}

impl Yielding {
    /// Moves the calling thread (the main loop) and `exporters` (thread ids of this
    /// process) to the idle class, and starts the watchdog. `None` (every thread stays
    /// in the normal class) without CAP_SYS_NICE, or when the watchdog cannot start.
    pub fn start(exporters: &[libc::pid_t]) -> Option<Self> {
        if !crate::privileges::has_sys_nice() {
            log::info!("no CAP_SYS_NICE: the reader stays in the normal scheduling class");
            return None;
        }
        let start = Instant::now();
        // SAFETY: gettid has no preconditions.
        let main = unsafe { libc::gettid() };
        let shared = Arc::new(Shared {
            start,
            caught_up: AtomicU64::new(0),
            class: Mutex::new(Class::Normal {
                since: start.checked_sub(CATCH_UP).unwrap_or(start),
            }),
            threads: std::iter::once(main)
                .chain(exporters.iter().copied())
                .collect(),
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
        yielding.turn(true);
        Some(yielding)
    }

    /// A turn of the loop; `caught_up`: its drain emptied the ring buffer.
    pub fn turn(&self, caught_up: bool) {
        let shared = &self.shared;
        if !caught_up {
            return;
        }
        shared.caught_up.store(shared.now(), Ordering::Relaxed);
        let mut class = shared.class();
        if let Class::Normal { since } = *class
            && since.elapsed() >= CATCH_UP
            && shared.set(libc::SCHED_IDLE)
        {
            *class = Class::Idle;
        }
    }

    /// Times the span path was moved back to the normal class.
    pub fn promotions(&self) -> u64 {
        self.shared.promotions.load(Ordering::Relaxed)
    }
}

impl Drop for Yielding {
    /// Stops the watchdog, and puts the span path back in the normal class: what the
    /// tracer does at exit (waiting for the removal of probes, the last drain, the
    /// exporters' last sends) waits for no CPU.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        let mut class = self.shared.class();
        if *class == Class::Idle {
            self.shared.set(libc::SCHED_OTHER);
            *class = Class::Normal {
                since: Instant::now(),
            };
        }
    }
}

fn watch(shared: &Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(CHECK_EVERY);
        let caught_up = Duration::from_nanos(shared.caught_up.load(Ordering::Relaxed));
        if shared.start.elapsed().saturating_sub(caught_up) < LATE {
            continue;
        }
        let mut class = shared.class();
        if *class == Class::Idle && shared.set(libc::SCHED_OTHER) {
            *class = Class::Normal {
                since: Instant::now(),
            };
            shared.promotions.fetch_add(1, Ordering::Relaxed);
            log::debug!("the reader fell behind: back in the normal scheduling class");
        }
    }
}

/// Puts a thread that the loop started (which starts in the loop's class) in the normal
/// class, at the niceness it inherited: for work that others wait on.
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

    /// Needs CAP_SYS_NICE (root), as the end-to-end tests do.
    #[test]
    fn the_span_path_idles_while_it_keeps_up_and_is_moved_back_when_late() {
        assert!(
            crate::privileges::has_sys_nice(),
            "leaving the idle class needs CAP_SYS_NICE: run the tests as root"
        );
        // An "exporter": a thread that waits until told to end.
        let (end, ended) = mpsc::channel::<()>();
        let (told, tid) = mpsc::channel();
        let exporter = std::thread::spawn(move || {
            told.send(gettid()).expect("send");
            let _ = ended.recv();
        });
        let exporter_tid = tid.recv().expect("tid");
        // The loop, on a thread of its own: the test harness's threads stay as they are.
        std::thread::spawn(move || {
            let me = gettid();
            let both = || (policy_of(me), policy_of(exporter_tid));
            let idle = (libc::SCHED_IDLE, libc::SCHED_IDLE);
            let normal = (libc::SCHED_OTHER, libc::SCHED_OTHER);
            let yielding = Yielding::start(&[exporter_tid]).expect("started");
            assert_eq!(both(), idle);
            // Drains that empty the ring buffer every 10 ms keep it idle.
            for _ in 0..10 {
                std::thread::sleep(Duration::from_millis(10));
                yielding.turn(true);
            }
            assert_eq!(both(), idle);
            assert_eq!(yielding.promotions(), 0);
            // Turns that leave spans behind for longer than LATE: back to normal.
            let behind = Instant::now();
            while behind.elapsed() < LATE + 3 * CHECK_EVERY {
                std::thread::sleep(Duration::from_millis(10));
                yielding.turn(false);
            }
            assert_eq!(both(), normal);
            assert_eq!(yielding.promotions(), 1);
            // A caught-up turn before CATCH_UP keeps it there; one after moves it again.
            yielding.turn(true);
            assert_eq!(both(), normal);
            std::thread::sleep(CATCH_UP);
            yielding.turn(true);
            assert_eq!(both(), idle);
            // No turn at all for longer than LATE (a starved loop): back to normal.
            std::thread::sleep(LATE + 3 * CHECK_EVERY);
            assert_eq!(both(), normal);
            assert_eq!(yielding.promotions(), 2);
            std::thread::sleep(CATCH_UP);
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
}

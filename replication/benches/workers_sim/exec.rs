//! A single-threaded executor on a virtual clock: tasks are ordinary futures, time advances only
//! from one timer to the next (no real sleeping), and ties are broken by the order timers were
//! set, so a run is a pure function of its seed. Workers are written as straight-line async
//! code that reads like the protocol, and two workers' requests interleave in virtual time
//! exactly as their latencies make them.
//!
//! Every future here tolerates being polled when nothing changed (a stale wake-up): it checks
//! its condition again and stays pending.

use std::cell::{Cell, RefCell};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Virtual milliseconds since the simulation's start.
pub type Ms = u64;

type Task = Pin<Box<dyn Future<Output = ()>>>;

struct Timer {
    at: Ms,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timer {
    // Reversed: BinaryHeap is a max-heap and the earliest timer must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Clock {
    now: Ms,
    seq: u64,
    timers: BinaryHeap<Timer>,
    ready: VecDeque<usize>,
    spawned: Vec<(usize, Task)>,
    killed: Vec<usize>,
}

thread_local! {
    static CLOCK: RefCell<Clock> = RefCell::new(Clock::default());
}

pub fn now() -> Ms {
    CLOCK.with(|c| c.borrow().now)
}

fn set_timer(at: Ms, waker: Waker) {
    CLOCK.with(|c| {
        let mut c = c.borrow_mut();
        c.seq += 1;
        let seq = c.seq;
        c.timers.push(Timer { at, seq, waker });
    });
}

/// Starts a task owned by `owner` (a worker's index): `kill(owner)` drops it.
pub fn spawn(owner: usize, task: impl Future<Output = ()> + 'static) {
    CLOCK.with(|c| c.borrow_mut().spawned.push((owner, Box::pin(task))));
}

/// Drops every task of `owner` at once, as SIGKILL would: no request of theirs is sent after.
pub fn kill(owner: usize) {
    CLOCK.with(|c| c.borrow_mut().killed.push(owner));
}

struct TaskWake(usize);

impl Wake for TaskWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        CLOCK.with(|c| c.borrow_mut().ready.push_back(self.0));
    }
}

/// Resolves at virtual time `at`.
pub struct SleepUntil {
    at: Ms,
    armed: bool,
}

impl Future for SleepUntil {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if now() >= self.at {
            return Poll::Ready(());
        }
        if !self.armed {
            self.armed = true;
            set_timer(self.at, cx.waker().clone());
        }
        Poll::Pending
    }
}

pub fn sleep_until(at: Ms) -> SleepUntil {
    SleepUntil { at, armed: false }
}

pub fn sleep(ms: Ms) -> SleepUntil {
    sleep_until(now() + ms)
}

/// A wake-up call for one waiting task: set by others, consumed by `wait`.
#[derive(Default)]
pub struct Signal {
    raised: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Signal {
    pub fn raise(&self) {
        self.raised.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Resolves when the signal is raised or at `deadline`, whichever comes first.
    pub fn wait(self: &Rc<Self>, deadline: Ms) -> WaitSignal {
        WaitSignal {
            signal: Rc::clone(self),
            deadline,
            armed: false,
        }
    }
}

pub struct WaitSignal {
    signal: Rc<Signal>,
    deadline: Ms,
    armed: bool,
}

impl Future for WaitSignal {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.raised.replace(false) || now() >= self.deadline {
            return Poll::Ready(());
        }
        *self.signal.waker.borrow_mut() = Some(cx.waker().clone());
        // A wait without a deadline (Ms::MAX) needs no timer: only the signal ends it.
        if !self.armed && self.deadline != Ms::MAX {
            self.armed = true;
            set_timer(self.deadline, cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Runs every task until virtual time `end` (or until nothing is left to do); `at` hooks run
/// once when the clock reaches their time (a worker's kill, for instance).
pub fn run_until(end: Ms, mut hooks: Vec<(Ms, Box<dyn FnOnce()>)>) {
    hooks.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
    let mut tasks: Vec<Option<(usize, Task, Waker)>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    loop {
        // New tasks and kills first, then every ready task, then the clock moves on.
        let (spawned, killed) = CLOCK.with(|c| {
            let mut c = c.borrow_mut();
            (
                std::mem::take(&mut c.spawned),
                std::mem::take(&mut c.killed),
            )
        });
        for owner in killed {
            for (id, slot) in tasks.iter_mut().enumerate() {
                if slot.as_ref().is_some_and(|(o, _, _)| *o == owner) {
                    *slot = None;
                    free.push(id);
                }
            }
        }
        for (owner, task) in spawned {
            let id = free.pop().unwrap_or_else(|| {
                tasks.push(None);
                tasks.len() - 1
            });
            let waker = Waker::from(Arc::new(TaskWake(id)));
            tasks[id] = Some((owner, task, waker));
            CLOCK.with(|c| c.borrow_mut().ready.push_back(id));
        }
        let next = CLOCK.with(|c| c.borrow_mut().ready.pop_front());
        if let Some(id) = next {
            let Some((_, task, waker)) = tasks[id].as_mut() else {
                continue;
            };
            let waker = waker.clone();
            if task
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
            {
                tasks[id] = None;
                free.push(id);
            }
            continue;
        }
        let timer = CLOCK.with(|c| c.borrow_mut().timers.pop());
        let Some(timer) = timer else { break };
        if timer.at > end {
            break;
        }
        while hooks.last().is_some_and(|(t, _)| *t <= timer.at) {
            let (t, hook) = hooks.pop().expect("checked");
            CLOCK.with(|c| c.borrow_mut().now = t);
            hook();
        }
        CLOCK.with(|c| c.borrow_mut().now = timer.at);
        timer.waker.wake();
    }
    // The next simulation starts from a clean clock.
    CLOCK.with(|c| *c.borrow_mut() = Clock::default());
}

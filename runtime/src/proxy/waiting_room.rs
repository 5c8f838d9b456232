//! The waiting room: connections that wait for the client's first bytes,
//! held by one task per listener as a few words each rather than as a
//! task of their own.
//!
//! A connection that was greeted and has sent nothing, or that waits for
//! the client's TLS hello, is only its socket, a deadline and what it will
//! need later. Here it is a slot in a table; one shared task watches them
//! all — the socket's readiness wakes a waker made once per slot, one
//! timer follows the earliest deadline. A guest leaves when its socket
//! becomes readable (bytes, end of file or an error: the session reads
//! them), when its wait is over, or at a graceful shutdown; each time it
//! is handed to [`Guest::leave`], which builds the session and gives it a
//! task.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use tokio::io::ReadBuf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

/// A connection that can wait in the room.
pub trait Guest: Send + 'static {
    /// The socket whose readability ends the wait.
    fn socket(&self) -> &TcpStream;
    /// When the wait ends at the latest.
    fn until(&self) -> Instant;
    /// Takes the guest out of the room, for the reason given.
    fn leave(self, why: Leave);
}

/// Why a guest left the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// The socket is readable: the client sent bytes, closed or failed.
    Readable,
    /// The wait is over ([`Guest::until`] passed).
    Expired,
    /// A graceful shutdown began.
    Shutdown,
}

/// The handle of a room: where an accept loop parks its connections. The
/// room's task ends once every handle is gone and the room is empty.
pub struct WaitingRoom<G> {
    arrivals: mpsc::UnboundedSender<G>,
}

impl<G: Guest> WaitingRoom<G> {
    /// Opens a room and starts its task; at `shutdown` every guest leaves.
    pub fn open(shutdown: watch::Receiver<bool>) -> WaitingRoom<G> {
        let (arrivals, rx) = mpsc::unbounded_channel();
        // Unconstrained by tokio's budget, so that a pending peek always
        // means the socket had nothing (see `has_input`); the task does
        // bounded work per event and does not hog its worker.
        tokio::spawn(tokio::task::unconstrained(Room::new().run(rx, shutdown)));
        WaitingRoom { arrivals }
    }

    /// Lets `guest` wait; should the room be gone, it leaves at once as if
    /// its socket were readable, so the session decides.
    pub fn park(&self, guest: G) {
        if let Err(mpsc::error::SendError(guest)) = self.arrivals.send(guest) {
            guest.leave(Leave::Readable);
        }
    }
}

/// Slots whose wakers were woken since the room last looked.
struct Woken {
    slots: Mutex<Vec<u32>>,
    notify: Notify,
}

/// The waker of one slot: notes the slot and wakes the room's task.
struct SlotWaker {
    slot: u32,
    woken: Arc<Woken>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.slot);
        self.woken.notify.notify_one();
    }
}

/// One place in the room. A waker may still fire for a slot's former
/// guest; such a wake finds the new guest's socket not readable and
/// changes nothing.
struct Slot<G> {
    /// Boxed, so the table grows by a pointer per guest and a guest's
    /// memory is given back as it leaves.
    guest: Option<Box<G>>,
    /// Counts the guests the slot had, so a deadline left behind by an
    /// earlier one is recognised.
    visit: u32,
    waker: Waker,
}

/// The room's state, owned by its task.
struct Room<G> {
    slots: Vec<Slot<G>>,
    free: Vec<u32>,
    guests: usize,
    /// Deadlines by slot and visit; those of guests that left are dropped
    /// when they come up, or all at once when they outnumber the guests.
    deadlines: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    woken: Arc<Woken>,
}

impl<G: Guest> Room<G> {
    fn new() -> Room<G> {
        Room {
            slots: Vec::new(),
            free: Vec::new(),
            guests: 0,
            deadlines: BinaryHeap::new(),
            woken: Arc::new(Woken {
                slots: Mutex::new(Vec::new()),
                notify: Notify::new(),
            }),
        }
    }

    async fn run(
        mut self,
        mut arrivals: mpsc::UnboundedReceiver<G>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let woken = Arc::clone(&self.woken);
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut open = true;
        let mut stopping = *shutdown.borrow_and_update();
        loop {
            let next = self.deadlines.peek().map(|Reverse((at, _, _))| *at);
            if let Some(at) = next {
                if timer.deadline() != at {
                    timer.as_mut().reset(at);
                }
            }
            tokio::select! {
                arrival = arrivals.recv(), if open => match arrival {
                    Some(guest) if stopping => guest.leave(Leave::Shutdown),
                    Some(guest) => self.admit(guest),
                    None => open = false,
                },
                () = woken.notify.notified() => self.look_at_woken(),
                () = &mut timer, if next.is_some() => self.expire(Instant::now()),
                changed = shutdown.changed(), if !stopping => {
                    // A server gone without a shutdown is one too.
                    if changed.is_err() || *shutdown.borrow() {
                        stopping = true;
                        self.everyone_leaves();
                    }
                }
            }
            if !open && self.guests == 0 {
                return;
            }
        }
    }

    /// Seats `guest`, or lets it go on at once when its socket is readable
    /// already.
    fn admit(&mut self, guest: G) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let Ok(slot) = u32::try_from(self.slots.len()) else {
                    guest.leave(Leave::Readable);
                    return;
                };
                let waker = Waker::from(Arc::new(SlotWaker {
                    slot,
                    woken: Arc::clone(&self.woken),
                }));
                self.slots.push(Slot {
                    guest: None,
                    visit: 0,
                    waker,
                });
                slot
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.visit = entry.visit.wrapping_add(1);
        if has_input(&guest, &entry.waker) {
            self.free.push(slot);
            guest.leave(Leave::Readable);
            return;
        }
        self.deadlines
            .push(Reverse((guest.until(), slot, entry.visit)));
        entry.guest = Some(Box::new(guest));
        self.guests += 1;
    }

    /// Lets go the guests whose sockets became readable.
    fn look_at_woken(&mut self) {
        let slots = std::mem::take(
            &mut *self
                .woken
                .slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for slot in slots {
            let Some(entry) = self.slots.get(slot as usize) else {
                continue;
            };
            let readable = entry
                .guest
                .as_ref()
                .is_some_and(|guest| readable(&**guest, &entry.waker));
            if readable {
                self.release(slot, Leave::Readable);
            }
        }
    }

    /// Lets go the guests whose wait is over at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, slot, visit))) = self.deadlines.peek().copied() {
            if at > now {
                break;
            }
            self.deadlines.pop();
            let current = self
                .slots
                .get(slot as usize)
                .is_some_and(|e| e.visit == visit && e.guest.is_some());
            if current {
                self.release(slot, Leave::Expired);
            }
        }
    }

    fn everyone_leaves(&mut self) {
        for slot in 0..self.slots.len() {
            if self.slots[slot].guest.is_some() {
                self.release(slot as u32, Leave::Shutdown);
            }
        }
    }

    fn release(&mut self, slot: u32, why: Leave) {
        let Some(guest) = self
            .slots
            .get_mut(slot as usize)
            .and_then(|e| e.guest.take())
        else {
            return;
        };
        self.free.push(slot);
        self.guests -= 1;
        // Deadlines of guests that left: dropped in one pass once they
        // are the larger part, so the heap stays within twice the guests.
        if self.deadlines.len() > 2 * self.guests + 64 {
            let slots = &self.slots;
            self.deadlines.retain(|Reverse((_, slot, visit))| {
                slots
                    .get(*slot as usize)
                    .is_some_and(|e| e.visit == *visit && e.guest.is_some())
            });
        }
        (*guest).leave(why);
    }
}

/// Whether `guest`'s socket has something to read (bytes, the end, an
/// error); if not, `waker` is woken when it may. A peek, not a look at
/// the readiness: tokio takes a new socket as readable until a read finds
/// it empty. Nothing is consumed; the session reads it.
fn has_input<G: Guest>(guest: &G, waker: &Waker) -> bool {
    let mut cx = Context::from_waker(waker);
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    matches!(guest.socket().poll_peek(&mut cx, &mut buf), Poll::Ready(_))
}

/// Whether `guest`'s socket became readable since [`has_input`] found it
/// empty: the readiness alone, without a system call. Should it ever be
/// wrong, the session's first read just waits.
fn readable<G: Guest>(guest: &G, waker: &Waker) -> bool {
    let mut cx = Context::from_waker(waker);
    matches!(guest.socket().poll_read_ready(&mut cx), Poll::Ready(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A guest that reports how it left.
    struct Probe {
        stream: TcpStream,
        until: Instant,
        name: &'static str,
        left: mpsc::UnboundedSender<(&'static str, Leave)>,
    }

    impl Guest for Probe {
        fn socket(&self) -> &TcpStream {
            &self.stream
        }

        fn until(&self) -> Instant {
            self.until
        }

        fn leave(self, why: Leave) {
            let _ = self.left.send((self.name, why));
        }
    }

    /// A room, connections to seat in it, and how they left.
    struct Lobby {
        room: WaitingRoom<Probe>,
        listener: TcpListener,
        left: mpsc::UnboundedSender<(&'static str, Leave)>,
        leaves: mpsc::UnboundedReceiver<(&'static str, Leave)>,
        start: Instant,
    }

    impl Lobby {
        async fn open(shutdown: watch::Receiver<bool>) -> Lobby {
            let (left, leaves) = mpsc::unbounded_channel();
            Lobby {
                room: WaitingRoom::open(shutdown),
                listener: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
                left,
                leaves,
                start: Instant::now(),
            }
        }

        /// Connects a client and seats its connection as `name` until
        /// `wait` seconds after the start; returns the client's side.
        async fn arrive(&self, name: &'static str, wait: u64) -> TcpStream {
            let addr = self.listener.local_addr().expect("addr");
            let client = TcpStream::connect(addr).await.expect("connect");
            let (stream, _) = self.listener.accept().await.expect("accept");
            self.room.park(Probe {
                stream,
                until: self.start + Duration::from_secs(wait),
                name,
                left: self.left.clone(),
            });
            client
        }

        async fn next(&mut self) -> Option<(&'static str, Leave)> {
            self.leaves.recv().await
        }
    }

    /// Less than any wait in these tests: "at once".
    const STEP: Duration = Duration::from_millis(10);

    #[tokio::test(start_paused = true)]
    async fn guests_leave_when_readable_at_their_deadline_or_at_shutdown() {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let mut lobby = Lobby::open(shutdown).await;
        let mut talker = lobby.arrive("talker", 60).await;
        let _quiet = lobby.arrive("quiet", 5).await;
        let _quieter = lobby.arrive("quieter", 10).await;
        let _stays = lobby.arrive("stays", 60).await;
        // The talker speaks: it leaves at once, before any deadline.
        talker.write_all(b"a1 NOOP\r\n").await.expect("write");
        assert_eq!(lobby.next().await, Some(("talker", Leave::Readable)));
        assert!(lobby.start.elapsed() < STEP);
        // The quiet ones leave at their deadlines, in order.
        assert_eq!(lobby.next().await, Some(("quiet", Leave::Expired)));
        assert!(lobby.start.elapsed() >= Duration::from_secs(5));
        assert!(lobby.start.elapsed() < Duration::from_secs(5) + STEP);
        assert_eq!(lobby.next().await, Some(("quieter", Leave::Expired)));
        assert!(lobby.start.elapsed() >= Duration::from_secs(10));
        // The last leaves at the shutdown, long before its deadline.
        shutdown_tx.send_replace(true);
        assert_eq!(lobby.next().await, Some(("stays", Leave::Shutdown)));
        assert!(lobby.start.elapsed() < Duration::from_secs(10) + STEP);
        // Arrivals after the shutdown leave at once.
        let _late = lobby.arrive("late", 60).await;
        assert_eq!(lobby.next().await, Some(("late", Leave::Shutdown)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_closes_leaves_and_slots_are_reused() {
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let mut lobby = Lobby::open(shutdown).await;
        for round in 0..3 {
            drop(lobby.arrive("closer", 30 + round).await);
            assert_eq!(lobby.next().await, Some(("closer", Leave::Readable)));
        }
        // The deadlines the closers left behind end no one: the next
        // guest waits for its own.
        let _waiter = lobby.arrive("waiter", 40).await;
        assert_eq!(lobby.next().await, Some(("waiter", Leave::Expired)));
        assert!(lobby.start.elapsed() >= Duration::from_secs(40));
    }

    #[tokio::test(start_paused = true)]
    async fn guests_stay_when_the_accept_loop_is_gone() {
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let mut lobby = Lobby::open(shutdown).await;
        let _last = lobby.arrive("last", 3).await;
        // A reload stops the accept loop that holds the handle; the guest
        // still waits for its deadline.
        drop(lobby.room);
        assert_eq!(lobby.leaves.recv().await, Some(("last", Leave::Expired)));
    }
}

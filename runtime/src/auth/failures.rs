//! Failed logins per client address in a sliding window, in bounded memory.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use std::time::Instant;

/// Counts failed logins per client over the last [`FailureTable::window`].
///
/// Memory is bounded twice: at most `max_clients` clients (the one whose
/// first recorded failure is oldest is forgotten first) and at most
/// [`FailureTable::MAX_PER_CLIENT`] timestamps per client.
#[derive(Debug)]
pub(crate) struct FailureTable {
    /// Failure times per client, oldest first.
    clients: HashMap<IpAddr, VecDeque<Instant>>,
    /// Clients in the order they entered the table, for eviction.
    order: VecDeque<IpAddr>,
    /// How far back failures count.
    window: Duration,
    /// Most clients kept.
    max_clients: usize,
}

impl FailureTable {
    /// Most failure times kept per client; counts saturate here.
    pub(crate) const MAX_PER_CLIENT: usize = 64;

    /// An empty table.
    pub(crate) fn new(window: Duration, max_clients: usize) -> FailureTable {
        FailureTable {
            clients: HashMap::new(),
            order: VecDeque::new(),
            window,
            max_clients: max_clients.max(1),
        }
    }

    /// Records a failure of `client` at `now`.
    pub(crate) fn record(&mut self, client: IpAddr, now: Instant) {
        if !self.clients.contains_key(&client) {
            while self.clients.len() >= self.max_clients {
                match self.order.pop_front() {
                    Some(oldest) => {
                        self.clients.remove(&oldest);
                    }
                    None => break,
                }
            }
            self.order.push_back(client);
        }
        let times = self.clients.entry(client).or_default();
        prune(times, now, self.window);
        if times.len() >= Self::MAX_PER_CLIENT {
            times.pop_front();
        }
        times.push_back(now);
    }

    /// Forgets `client`'s failures (after a successful login).
    pub(crate) fn clear(&mut self, client: IpAddr) {
        if self.clients.remove(&client).is_some() {
            self.order.retain(|&c| c != client);
        }
    }

    /// Failures of `client` within the window that ends at `now`.
    pub(crate) fn count(&mut self, client: IpAddr, now: Instant) -> u32 {
        let Some(times) = self.clients.get_mut(&client) else {
            return 0;
        };
        prune(times, now, self.window);
        if times.is_empty() {
            self.clear(client);
            return 0;
        }
        u32::try_from(times.len()).unwrap_or(u32::MAX)
    }
}

/// Drops the failures older than `window`.
fn prune(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn failures_leave_the_window() {
        let t0 = Instant::now();
        let mut table = FailureTable::new(secs(60), 10);
        table.record(ip(1), t0);
        table.record(ip(1), t0 + secs(30));
        assert_eq!(table.count(ip(1), t0 + secs(30)), 2);
        assert_eq!(table.count(ip(2), t0 + secs(30)), 0);
        assert_eq!(table.count(ip(1), t0 + secs(61)), 1);
        assert_eq!(table.count(ip(1), t0 + secs(91)), 0);
        assert!(table.clients.is_empty() && table.order.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut table = FailureTable::new(secs(60), 3);
        for n in 1..=5 {
            table.record(ip(n), t0);
        }
        assert_eq!(table.clients.len(), 3);
        assert_eq!(table.count(ip(1), t0), 0);
        assert_eq!(table.count(ip(5), t0), 1);
        for _ in 0..1000 {
            table.record(ip(5), t0);
        }
        assert_eq!(table.count(ip(5), t0), FailureTable::MAX_PER_CLIENT as u32);
        table.clear(ip(5));
        assert_eq!(table.count(ip(5), t0), 0);
        assert_eq!(table.order.len(), table.clients.len());
    }
}

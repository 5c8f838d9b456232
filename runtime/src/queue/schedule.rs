//! When a deferred message is tried again, when its sender is warned, and
//! when it is given up: the plan's `queue { retry, warn-after, expire }`.

use std::time::{Duration, SystemTime};

use mailgw_plan::Queue;

/// The retry policy of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    retry: Vec<Duration>,
    /// How long after arrival the sender is told the message is delayed.
    pub warn_after: Duration,
    /// How long after arrival the message is given up.
    pub expire: Duration,
}

impl Schedule {
    /// The schedule of a plan's `queue` settings.
    pub fn of(queue: &Queue) -> Schedule {
        Schedule {
            retry: queue
                .retry
                .iter()
                .map(|s| Duration::from_secs(u64::from(*s)))
                .collect(),
            warn_after: Duration::from_secs(u64::from(queue.warn_after_s)),
            expire: Duration::from_secs(u64::from(queue.expire_s)),
        }
    }

    /// When to try again after the `attempts`-th attempt (1 for the
    /// first) failed at `now`: the pause for that attempt (the last pause
    /// repeats), but never after the expiry, so an expired message is
    /// bounced on time.
    pub fn next_attempt(&self, attempts: u32, now: SystemTime, received: SystemTime) -> SystemTime {
        let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        let pause = self
            .retry
            .get(index)
            .or(self.retry.last())
            .copied()
            .unwrap_or(Duration::from_secs(300));
        (now + pause).min(received + self.expire).max(now)
    }

    /// Whether a message received at `received` has expired at `now`.
    pub fn expired(&self, received: SystemTime, now: SystemTime) -> bool {
        now.duration_since(received)
            .is_ok_and(|age| age >= self.expire)
    }

    /// Whether a message received at `received` is due a delay warning.
    pub fn warn_due(&self, received: SystemTime, now: SystemTime) -> bool {
        !self.warn_after.is_zero()
            && now
                .duration_since(received)
                .is_ok_and(|age| age >= self.warn_after)
    }

    /// The last moment the message will be tried (the DSN's
    /// `Will-Retry-Until`).
    pub fn until(&self, received: SystemTime) -> SystemTime {
        received + self.expire
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Schedule {
        Schedule::of(&Queue {
            spool: String::new(),
            retry: vec![60, 300, 900],
            warn_after_s: 3600,
            expire_s: 7200,
            ..Queue::default()
        })
    }

    #[test]
    fn pauses_follow_the_list_then_the_last_repeats() {
        let s = schedule();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let gap = |attempts| s.next_attempt(attempts, t0, t0).duration_since(t0).ok();
        assert_eq!(gap(1), Some(Duration::from_secs(60)));
        assert_eq!(gap(2), Some(Duration::from_secs(300)));
        assert_eq!(gap(3), Some(Duration::from_secs(900)));
        assert_eq!(gap(9), Some(Duration::from_secs(900)));
    }

    #[test]
    fn the_next_attempt_never_passes_the_expiry() {
        let s = schedule();
        let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let now = received + Duration::from_secs(7000);
        assert_eq!(
            s.next_attempt(5, now, received),
            received + Duration::from_secs(7200)
        );
        assert!(!s.expired(received, now));
        assert!(s.expired(received, received + Duration::from_secs(7200)));
    }

    #[test]
    fn warnings_come_after_warn_after() {
        let s = schedule();
        let received = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert!(!s.warn_due(received, received + Duration::from_secs(3599)));
        assert!(s.warn_due(received, received + Duration::from_secs(3600)));
    }
}

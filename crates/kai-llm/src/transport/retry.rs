//! The retry schedule: exponential backoff with full jitter, and `Retry-After` (delta seconds or
//! an HTTP date) honoured up to a cap. Pure: callers pass the clock and the random source in.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub max_retries: u32,
    /// The backoff before the first retry; it doubles each time.
    pub base_delay: Duration,
    /// The largest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` we wait for; a provider asking for more fails the call at once
    /// (so a fallback chain can move on).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based), or `None` when the call should give up:
    /// retries are exhausted or the server asked for longer than `max_retry_after`.
    ///
    /// With a `Retry-After`, the wait is that delay plus up to one base delay of jitter (so it is
    /// never shorter than asked); otherwise it is uniform in `[0, min(max, base * 2^retry)]`.
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if retry >= self.max_retries {
            return None;
        }
        let mut jitter = |ceiling: Duration| {
            let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
            Duration::from_nanos(if nanos == 0 { 0 } else { rng.gen_range(0..=nanos) })
        };
        match retry_after {
            Some(asked) if asked > self.max_retry_after => None,
            Some(asked) => Some(asked + jitter(self.base_delay.min(self.max_delay))),
            None => {
                let exp = self.base_delay.saturating_mul(2u32.saturating_pow(retry.min(30)));
                Some(jitter(exp.min(self.max_delay)))
            }
        }
    }
}

/// Parses a `Retry-After` value: delta seconds (`"2"`, also fractional as some providers send)
/// or an HTTP date, relative to `now`. A date in the past means no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_is_bounded_by_the_exponential_and_the_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..200 {
            assert!(policy().delay(0, None, &mut rng).unwrap() <= Duration::from_millis(100));
            assert!(policy().delay(1, None, &mut rng).unwrap() <= Duration::from_millis(200));
            assert!(policy().delay(2, None, &mut rng).unwrap() <= Duration::from_millis(250));
        }
        assert_eq!(policy().delay(3, None, &mut rng), None);
    }

    #[test]
    fn retry_after_is_a_floor_and_too_long_gives_up() {
        let mut rng = StdRng::seed_from_u64(7);
        let d = policy().delay(0, Some(Duration::from_secs(1)), &mut rng).unwrap();
        assert!(d >= Duration::from_secs(1) && d <= Duration::from_millis(1100));
        assert_eq!(policy().delay(0, Some(Duration::from_secs(11)), &mut rng), None);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 ", now), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

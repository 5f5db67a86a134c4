//! Rate limits: per authenticated principal (all routes) and per (username, client address)
//! for logins. Exceeding one answers 429 with `Retry-After`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

/// The node's limiters.
pub struct Limits {
    principal: Option<DefaultKeyedRateLimiter<String>>,
    login: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Limits {
    /// `per_second` and `burst` per principal (`per_second = 0` turns the principal limit
    /// off); logins: 10 per minute per (username, address).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let principal = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            governor::RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        let login_rate = NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN);
        Self {
            principal,
            login: governor::RateLimiter::keyed(Quota::per_minute(login_rate)),
            clock: DefaultClock::default(),
        }
    }

    fn check(&self, limiter: &DefaultKeyedRateLimiter<String>, key: &str) -> Result<(), Duration> {
        limiter
            .check_key(&key.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// `Err(wait)` when this principal is over its limit.
    pub fn check_principal(&self, id: &str) -> Result<(), Duration> {
        match &self.principal {
            Some(l) => self.check(l, id),
            None => Ok(()),
        }
    }

    /// `Err(wait)` when this (username, address) pair tried too often.
    pub fn check_login(&self, username: &str, address: &str) -> Result<(), Duration> {
        self.check(&self.login, &format!("{username}\u{0}{address}"))
    }
}

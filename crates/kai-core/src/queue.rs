//! The durable queue's pure rules: validated names and keys, job states, the retry schedule
//! (exponential backoff with bounded jitter) and concurrency admission. Storage and workers
//! live in `kai-store` and `kai-runtime`; this module decides, they persist and run.
//!
//! It must not do I/O, read the clock or draw random numbers: callers pass time and the
//! jitter sample in, so every rule here is a function a property test can drive.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Largest JSON payload of a job, in bytes (serialized).
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Largest JSON result of a job or of an effect, in bytes (serialized).
pub const MAX_RESULT_BYTES: usize = 1 << 20;
/// Error texts longer than this are cut (on a character boundary) before they are stored.
pub const MAX_ERROR_BYTES: usize = 8 << 10;
/// Most jobs one batch enqueue (or one completion's follow-ups) may carry.
pub const MAX_BATCH: usize = 1000;
/// Most jobs one claim may take.
pub const MAX_CLAIM: u32 = 256;
/// Most jobs one list call returns.
pub const MAX_LIST: u32 = 1000;
/// Most effects one completion may record.
pub const MAX_EFFECTS_PER_COMPLETION: usize = 256;
/// Longest lease (and heartbeat extension) a worker may ask for.
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 3600);
/// Shortest lease a worker may ask for.
pub const MIN_LEASE: Duration = Duration::from_millis(10);

/// Why a name or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct KeyError {
    what: &'static str,
    input: String,
    reason: &'static str,
}

macro_rules! key_newtype {
    ($(#[$m:meta])* $name:ident, $what:literal, $max:expr, $allowed:expr, $allowed_text:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = KeyError;
            fn try_from(input: String) -> Result<Self, KeyError> {
                let err = |reason| KeyError { what: $what, input: input.clone(), reason };
                if input.is_empty() || input.len() > $max {
                    return Err(err(concat!("must be 1 to ", stringify!($max), " bytes")));
                }
                let allowed: fn(char) -> bool = $allowed;
                if !input.chars().all(allowed) {
                    return Err(err($allowed_text));
                }
                Ok(Self(input))
            }
        }

        impl std::str::FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                Self::try_from(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

key_newtype!(
    /// A queue (job kind) name: `executor.step`, `planner`, `mail:send` — 1 to 64 ASCII
    /// letters, digits and `_ . : -`.
    QueueName, "queue name", 64,
    |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'),
    "may hold only ASCII letters, digits and `_ . : -`"
);
key_newtype!(
    /// Makes enqueue idempotent: a second enqueue with the same key returns the first job.
    /// Unique across all queues; 1 to 255 bytes of printable text.
    IdempotencyKey, "idempotency key", 255, |c| !c.is_control(), "may not hold control characters"
);
key_newtype!(
    /// Groups jobs that share a concurrency limit, e.g. the agent id that runs them.
    ConcurrencyKey, "concurrency key", 255, |c| !c.is_control(), "may not hold control characters"
);
key_newtype!(
    /// Names one side effect of a job (`task/7/step/3/send-mail`) so a re-run can ask whether
    /// it already happened. Unique across all jobs; 1 to 255 bytes of printable text.
    EffectKey, "effect key", 255, |c| !c.is_control(), "may not hold control characters"
);

/// Where a job is in its life.
///
/// ```text
/// queued ──claim──► running ──complete──► succeeded
///   ▲                 │ fail (attempts left) / lease expired ─► queued (run_at = backoff)
///   │                 │ fail (no attempts left, or not retryable) ─► dead
///   │                 │ cancel ─► cancel requested; the worker stops ─► cancelled
///   └── retry ◄─── dead, cancelled          queued ──cancel──► cancelled
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at` and a worker (new, or retrying after a failure).
    Queued,
    /// Held by a worker under a lease.
    Running,
    /// Completed with a result.
    Succeeded,
    /// Failed on its last allowed attempt (or with a non-retryable error): the dead letter.
    Dead,
    /// Cancelled before it completed.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] =
        [Self::Queued, Self::Running, Self::Succeeded, Self::Dead, Self::Cancelled];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Dead => "dead",
            Self::Cancelled => "cancelled",
        }
    }

    /// True once nothing will run the job again (unless someone retries it).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }
}

impl std::str::FromStr for JobState {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        Self::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| KeyError {
            what: "job state",
            input: s.to_owned(),
            reason: "expected queued, running, succeeded, dead or cancelled",
        })
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often and how patiently a job is retried: attempt `n` (1-based) that fails waits
/// `min(max_delay, initial × 2^(n−1))`, shortened by up to [`RetryPolicy::JITTER`] of itself,
/// before attempt `n + 1`; after `max_attempts` attempts the job is dead.
/// The default (5 attempts, 1 s doubling to at most 100 s) follows Temporal's retry shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    #[serde(with = "millis")]
    pub initial: Duration,
    #[serde(with = "millis")]
    pub max_delay: Duration,
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize as _, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(100),
        }
    }
}

/// Why a retry policy was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid retry policy: {0}")]
pub struct RetryPolicyError(&'static str);

impl RetryPolicy {
    /// The largest fraction of the nominal delay that jitter removes (20 %).
    pub const JITTER: f64 = 0.2;
    /// Most attempts a policy may allow.
    pub const MAX_ATTEMPTS: u32 = 1000;
    /// Longest delay a policy may ask for.
    pub const MAX_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

    /// A policy that never retries: the first failure is final.
    pub fn no_retry() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// Checks the bounds: 1 to 1000 attempts, 1 ms ≤ initial ≤ max_delay ≤ 7 days.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.max_attempts == 0 || self.max_attempts > Self::MAX_ATTEMPTS {
            return Err(RetryPolicyError("max_attempts must be 1 to 1000"));
        }
        if self.initial < Duration::from_millis(1) {
            return Err(RetryPolicyError("initial delay must be at least 1 ms"));
        }
        if self.max_delay < self.initial || self.max_delay > Self::MAX_DELAY {
            return Err(RetryPolicyError("max_delay must be between initial and 7 days"));
        }
        Ok(())
    }

    /// The delay after failed attempt `attempt` (1-based) before jitter.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1);
        let factor = 1u32.checked_shl(doublings).unwrap_or(0);
        match (factor, self.initial.checked_mul(factor)) {
            (0, _) | (_, None) => self.max_delay,
            (_, Some(d)) => d.min(self.max_delay),
        }
    }

    /// The delay after failed attempt `attempt`, with `jitter_sample` in `[0, 1]` (out-of-range
    /// samples are clamped) taking up to [`Self::JITTER`] off the nominal delay. The result lies
    /// in `[(1 − JITTER) × nominal, nominal]` and never exceeds `max_delay`.
    pub fn delay(&self, attempt: u32, jitter_sample: f64) -> Duration {
        let nominal = self.nominal_delay(attempt);
        let u = if jitter_sample.is_nan() { 0.0 } else { jitter_sample.clamp(0.0, 1.0) };
        nominal.mul_f64(1.0 - Self::JITTER * u)
    }

    /// True if a job that has made `attempts` attempts may make another.
    pub fn allows_another(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }
}

/// Which of `candidates` (in claim order: priority, then age) may start now, given how many
/// more jobs may run in total (`global_free`, `None` = no global limit) and per limited
/// concurrency key (`key_free`; keys not in the map have no limit). Takes at most `max`.
/// Returns the indices of the admitted candidates, in order.
///
/// A job whose key is full is skipped, not waited for: a later job with another key may
/// still start (no head-of-line blocking across keys).
pub fn admit<'a>(
    candidates: impl IntoIterator<Item = Option<&'a str>>,
    max: usize,
    global_free: Option<u64>,
    key_free: &BTreeMap<String, u64>,
) -> Vec<usize> {
    let mut out = Vec::new();
    let mut global = global_free;
    let mut keys = key_free.clone();
    for (i, key) in candidates.into_iter().enumerate() {
        if out.len() >= max || global == Some(0) {
            break;
        }
        if let Some(free) = key.and_then(|k| keys.get_mut(k)) {
            if *free == 0 {
                continue;
            }
            *free -= 1;
        }
        if let Some(g) = global.as_mut() {
            *g -= 1;
        }
        out.push(i);
    }
    out
}

/// `text` cut to at most [`MAX_ERROR_BYTES`] on a character boundary.
pub fn clip_error(text: &str) -> &str {
    if text.len() <= MAX_ERROR_BYTES {
        return text;
    }
    let mut end = MAX_ERROR_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_keys_are_validated() {
        assert!("executor.step".parse::<QueueName>().is_ok());
        assert!("mail:send-1_x".parse::<QueueName>().is_ok());
        assert!("".parse::<QueueName>().is_err());
        assert!("has space".parse::<QueueName>().is_err());
        assert!("x".repeat(65).parse::<QueueName>().is_err());
        assert!("task/1/step/2".parse::<EffectKey>().is_ok());
        assert!("line\nbreak".parse::<EffectKey>().is_err());
        assert!("k".repeat(256).parse::<IdempotencyKey>().is_err());
        let err = "a b".parse::<QueueName>().unwrap_err().to_string();
        assert!(err.contains("queue name") && err.contains("letters"), "{err}");
    }

    #[test]
    fn states_round_trip() {
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!("done".parse::<JobState>().is_err());
        assert!(!JobState::Running.is_terminal() && JobState::Dead.is_terminal());
    }

    #[test]
    fn default_schedule_is_one_second_doubling_to_100() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=9).map(|n| p.nominal_delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 100, 100]);
        assert_eq!(p.delay(3, 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(3, 1.0), Duration::from_millis(3200));
        assert_eq!(p.nominal_delay(u32::MAX), p.max_delay);
        assert!(p.validate().is_ok());
        assert!(RetryPolicy { max_attempts: 0, ..p }.validate().is_err());
        assert!(RetryPolicy { max_delay: Duration::ZERO, ..p }.validate().is_err());
    }

    #[test]
    fn admission_respects_key_and_global_limits() {
        let limits = BTreeMap::from([("a".to_owned(), 1), ("b".to_owned(), 0)]);
        let cands = [Some("a"), Some("a"), Some("b"), None, Some("c"), Some("a")];
        assert_eq!(admit(cands, 10, None, &limits), [0, 3, 4]);
        assert_eq!(admit(cands, 2, None, &limits), [0, 3]);
        assert_eq!(admit(cands, 10, Some(2), &limits), [0, 3]);
        assert!(admit(cands, 10, Some(0), &limits).is_empty());
    }

    #[test]
    fn errors_are_clipped_on_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_BYTES);
        let c = clip_error(&long);
        assert!(c.len() <= MAX_ERROR_BYTES && c.len() >= MAX_ERROR_BYTES - 1);
        assert_eq!(clip_error("short"), "short");
    }

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (1u32..=50, 1u64..=60_000, 0u64..=600_000).prop_map(|(n, init, extra)| RetryPolicy {
            max_attempts: n,
            initial: Duration::from_millis(init),
            max_delay: Duration::from_millis(init + extra),
        })
    }

    proptest! {
        /// The schedule: nominal delays double from `initial`, never pass `max_delay`, never
        /// shrink from one attempt to the next; jitter only shortens, by at most 20 %.
        #[test]
        fn backoff_schedule(p in policy(), attempt in 1u32..=200, u in 0.0f64..=1.0) {
            prop_assert!(p.validate().is_ok());
            let nominal = p.nominal_delay(attempt);
            prop_assert!(nominal <= p.max_delay);
            prop_assert!(nominal >= p.initial);
            prop_assert!(p.nominal_delay(attempt + 1) >= nominal);
            let exact = p.initial.as_millis() << (attempt - 1).min(100);
            prop_assert_eq!(nominal.as_millis(), exact.min(p.max_delay.as_millis()));
            let d = p.delay(attempt, u);
            prop_assert!(d <= nominal);
            prop_assert!(d.as_secs_f64() >= nominal.as_secs_f64() * (1.0 - RetryPolicy::JITTER) - 1e-6);
        }

        /// A job that always fails makes exactly `max_attempts` attempts.
        #[test]
        fn attempts_are_bounded(p in policy()) {
            let mut attempts = 0;
            loop {
                attempts += 1;
                if !p.allows_another(attempts) { break; }
            }
            prop_assert_eq!(attempts, p.max_attempts);
        }

        /// Admission never exceeds a limit and never skips a job it could have taken.
        #[test]
        fn admission_never_exceeds_limits(
            keys in proptest::collection::vec(proptest::option::of(0u8..4), 0..40),
            limits in proptest::collection::btree_map(0u8..4, 0u64..4, 0..4),
            global in proptest::option::of(0u64..10),
            max in 0usize..20,
        ) {
            let names: Vec<Option<String>> = keys.iter().map(|k| k.map(|k| format!("k{k}"))).collect();
            let free: BTreeMap<String, u64> = limits.iter().map(|(k, v)| (format!("k{k}"), *v)).collect();
            let got = admit(names.iter().map(|k| k.as_deref()), max, global, &free);
            prop_assert!(got.len() <= max);
            if let Some(g) = global { prop_assert!(got.len() as u64 <= g); }
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]));
            for (k, limit) in &free {
                let taken = got.iter().filter(|&&i| names[i].as_deref() == Some(k.as_str())).count();
                prop_assert!(taken as u64 <= *limit);
            }
            // Maximal: a candidate before the last admitted one was skipped only for its key.
            if let Some(&last) = got.last() {
                for i in 0..last {
                    if !got.contains(&i) {
                        let k = names[i].as_deref().expect("only keyed jobs are skipped");
                        let taken = got.iter().filter(|&&j| j < i && names[j].as_deref() == Some(k)).count();
                        prop_assert_eq!(taken as u64, free[k]);
                    }
                }
            }
        }
    }
}

//! Metric names, in one place so dashboards and tests agree on them.

/// Audit entries in the log (gauge).
pub const AUDIT_ENTRIES: &str = "kai_audit_entries";
/// Audit appends that failed and made their operation fail (counter).
pub const AUDIT_FAILURES: &str = "kai_audit_failures_total";
/// Entries per audit commit (histogram).
pub const AUDIT_BATCH_SIZE: &str = "kai_audit_batch_size";
/// Events published on the bus (counter, label `type`).
pub const EVENTS_PUBLISHED: &str = "kai_events_published_total";
/// Events waiting in subscriber queues (gauge).
pub const BUS_QUEUE_DEPTH: &str = "kai_bus_queue_depth";
/// Subscribers dropped for being too slow (counter).
pub const BUS_SUBSCRIBERS_DROPPED: &str = "kai_bus_subscribers_dropped_total";
/// HTTP requests (counter, labels `method`, `route`, `status`).
pub const HTTP_REQUESTS: &str = "kai_http_requests_total";
/// HTTP request latency in seconds (histogram, labels `method`, `route`).
pub const HTTP_LATENCY: &str = "kai_http_request_duration_seconds";
/// Jobs claimed by this node's worker pools (counter, label `queue`).
pub const QUEUE_JOBS_CLAIMED: &str = "kai_queue_jobs_claimed_total";
/// Job runs that ended (counter, labels `queue`, `outcome`: succeeded, retrying, dead,
/// cancelled, released, lease_lost, unrecorded).
pub const QUEUE_JOBS_FINISHED: &str = "kai_queue_jobs_finished_total";
/// How long a job run took, claim to recorded outcome, in seconds (histogram).
pub const QUEUE_JOB_SECONDS: &str = "kai_queue_job_duration_seconds";

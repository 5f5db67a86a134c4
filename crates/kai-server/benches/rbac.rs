//! The per-request authorization decision: look up the route's rule and check the principal's
//! role and token scopes against it (what `auth::authorize` does after authentication).

use std::hint::black_box;

use axum::http::Method;
use criterion::{Criterion, criterion_group, criterion_main};
use kai_core::policy::Role;
use kai_server::access::{Access, rule};
use kai_server::auth::{Credential, Principal};

fn decide(p: &Principal, method: &Method, path: &str) -> bool {
    match rule(method, path) {
        Some(Access::Public) => true,
        Some(Access::Need(r, a)) => p.allows(r, a),
        None => false,
    }
}

fn bench(c: &mut Criterion) {
    let member = Principal {
        id: "u1".into(),
        role: Role::Member,
        scopes: vec![],
        credential: Credential::Session { session: "s".into() },
    };
    let scoped = Principal {
        id: "u2".into(),
        role: Role::Admin,
        scopes: vec!["events:read".into(), "secrets:*".into(), "audit:read".into()],
        credential: Credential::ApiToken { token_id: "t".into() },
    };
    let routes = [
        (Method::GET, "/events"),
        (Method::POST, "/events"),
        (Method::GET, "/vault/secrets/{name}"),
        (Method::PATCH, "/users/{id}"),
        (Method::GET, "/audit/verify"),
    ];
    c.bench_function("rbac decision (role)", |b| {
        b.iter(|| {
            routes.iter().filter(|(m, p)| decide(black_box(&member), m, black_box(p))).count()
        })
    });
    c.bench_function("rbac decision (role + scopes)", |b| {
        b.iter(|| {
            routes.iter().filter(|(m, p)| decide(black_box(&scoped), m, black_box(p))).count()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

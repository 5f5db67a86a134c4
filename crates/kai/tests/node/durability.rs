//! Acknowledged writes survive `kill -9`: 1,000 acknowledged events from 16 concurrent
//! clients, the node killed while more are in flight, every acknowledged one present after
//! restart, and the audit log still verifies.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::harness::{Node, NodeDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_1000_acknowledged_writes_loses_none() {
    let dir = NodeDir::new().await;
    dir.write_config("[limits]\nrequests_per_second = 0\n");
    let node = Node::start(&dir);
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);
    let mut writers = Vec::new();
    for w in 0..16 {
        let (http, url, token) = (node.http.clone(), node.url("/events"), node.token.clone());
        let (acked, count, killed) = (acked.clone(), count.clone(), killed_rx.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let body = serde_json::json!({"type": "DURABILITY_PROBE", "payload": {"writer": w, "n": n}});
                match http.post(&url).bearer_auth(&token).json(&body).send().await {
                    Ok(resp) if resp.status() == 201 => {
                        let e: serde_json::Value = match resp.json().await {
                            Ok(e) => e,
                            Err(_) => break,
                        };
                        acked.lock().unwrap().push(e["id"].as_str().unwrap().to_owned());
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(resp) => panic!("unexpected status {}", resp.status()),
                    Err(_) if *killed.borrow() => break,
                    Err(e) => panic!("request failed before the kill: {e}"),
                }
                n += 1;
            }
        }));
    }
    while count.load(Ordering::SeqCst) < 1000 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    killed_tx.send(true).unwrap();
    node.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 1000);

    let node = Node::start(&dir);
    let mut stored = HashSet::new();
    let mut after = 0;
    loop {
        let page = node.get_json(&format!("/events?after={after}&limit=1000")).await;
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        stored.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        after = page["next_after"].as_u64().unwrap();
    }
    let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "{} of {} acknowledged events lost", lost.len(), acked.len());
    let verified = node.get_json("/audit/verify").await;
    assert_eq!(verified["ok"], true, "audit log after kill -9: {verified}");
    let audited = verified["entries"].as_u64().unwrap();
    assert!(audited as usize >= acked.len() + 2, "every acknowledged event has its audit entry");
    node.stop();
}

use kai_core::agent::{AgentDefinition, Format, LifecycleAction};
use kai_core::lifecycle::AgentState;

use super::*;
use crate::testkit::Fixture;

const SCRAPER: &str = r#"
name: "kExecutor:scraper"
version: 1.0.0
type: specialist
instructions: Fetch and summarize.
permissions:
  tools: [http_fetch]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtins_files_lifecycle_and_identities_survive_a_restart() {
    let f = Fixture::new().await;
    let agents = Agents::new(f.store.clone(), f.bus.clone(), f.vault.clone());
    let files = vec![
        ("scraper.yaml".to_owned(), SCRAPER.to_owned()),
        ("broken.toml".to_owned(), "name = 3".to_owned()),
        ("notes.txt".to_owned(), "ignored".to_owned()),
    ];
    let problems = agents.load(&f.audit, &files).await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].0, "broken.toml");

    let all = agents.list().await.unwrap();
    assert_eq!(all.len(), 9);
    assert!(all.iter().filter(|a| a.builtin).all(|a| a.state == AgentState::Active));
    let dids: std::collections::BTreeSet<_> = all.iter().map(|a| a.did.clone()).collect();
    assert_eq!(dids.len(), 9, "every agent has its own identity");

    let id = "kExecutor:scraper";
    assert_eq!(agents.get(id).await.unwrap().state, AgentState::Created);
    let err = agents
        .transition(id, LifecycleAction::Activate, None, "user:o", "", &f.audit)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "illegal_transition");
    for action in [
        LifecycleAction::Initialize,
        LifecycleAction::Activate,
        LifecycleAction::Suspend,
        LifecycleAction::Resume,
    ] {
        agents.transition(id, action, None, "user:o", "test", &f.audit).await.unwrap();
    }
    let mut v2 = AgentDefinition::parse(SCRAPER, Format::Yaml).unwrap();
    v2.version = "1.1.0".into();
    let staged = agents
        .transition(id, LifecycleAction::Modify, Some(v2.clone()), "user:o", "", &f.audit)
        .await
        .unwrap();
    assert_eq!((staged.state, staged.definition.version.as_str()), (AgentState::Modified, "1.0.0"));
    let applied =
        agents.transition(id, LifecycleAction::Apply, None, "user:o", "", &f.audit).await.unwrap();
    assert_eq!(
        (applied.state, applied.definition.version.as_str(), applied.staged),
        (AgentState::Active, "1.1.0", None)
    );

    let err = agents
        .transition(EXECUTOR, LifecycleAction::Terminate, None, "user:o", "", &f.audit)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "builtin_agent");
    let err = agents
        .create(AgentDefinition::parse(SCRAPER, Format::Yaml).unwrap(), "user:o", &f.audit)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "conflict");

    // A new registry on the same store and vault: same state, same identities.
    let did = agents.get(id).await.unwrap().did;
    let again = Agents::new(f.store.clone(), f.bus.clone(), f.vault.clone());
    again.load(&f.audit, &files).await.unwrap();
    let after = again.get(id).await.unwrap();
    assert_eq!((after.state, after.did.clone()), (AgentState::Active, did));
    assert_eq!(again.identity(&after.definition.name).await.unwrap().did().to_string(), after.did);

    let caps = again.capabilities().await.unwrap();
    let scraper = &caps[&id.parse().unwrap()];
    assert!(scraper.runnable && scraper.tools.contains_key("http_fetch"));
    // The plan check's view is cached, and a transition through the registry is seen at once.
    again.transition(id, LifecycleAction::Suspend, None, "user:o", "test", &f.audit).await.unwrap();
    assert!(!again.capabilities().await.unwrap()[&id.parse().unwrap()].runnable);
    again.transition(id, LifecycleAction::Resume, None, "user:o", "test", &f.audit).await.unwrap();
    assert!(again.capabilities().await.unwrap()[&id.parse().unwrap()].runnable);

    // Every transition is in the audit log.
    let actions: Vec<String> =
        f.store.audit_tail(100).await.unwrap().into_iter().map(|e| e.action).collect();
    for a in [
        "agent.create",
        "agent.initialize",
        "agent.activate",
        "agent.suspend",
        "agent.resume",
        "agent.modify",
        "agent.apply",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

/// `get` caches what it read: a transition through the same registry is seen at once (a
/// suspended agent's next step waits), one made by another registry on the same store — another
/// node on a shared database — once the cached copy is older than `VIEW_TTL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_agents_see_their_own_transitions_at_once_and_others_after_the_ttl() {
    let f = Fixture::new().await;
    let agents = Agents::new(f.store.clone(), f.bus.clone(), f.vault.clone());
    agents.load(&f.audit, &[]).await.unwrap();
    assert_eq!(agents.get(EXECUTOR).await.unwrap().state, AgentState::Active, "now cached");
    agents
        .transition(EXECUTOR, LifecycleAction::Suspend, None, "user:o", "test", &f.audit)
        .await
        .unwrap();
    assert_eq!(agents.get(EXECUTOR).await.unwrap().state, AgentState::Suspended);

    let other = Agents::new(f.store.clone(), f.bus.clone(), f.vault.clone());
    other
        .transition(EXECUTOR, LifecycleAction::Resume, None, "user:o", "test", &f.audit)
        .await
        .unwrap();
    // Age the cached copy instead of sleeping through the TTL.
    let old = std::time::Instant::now().checked_sub(VIEW_TTL).expect("clock");
    agents.cached().get_mut(EXECUTOR).expect("cached").1 = old;
    assert_eq!(agents.get(EXECUTOR).await.unwrap().state, AgentState::Active);
    // The transition itself checks the stored state, never the cached one.
    agents.cached().get_mut(EXECUTOR).expect("cached").0.state = AgentState::Suspended;
    agents.cached().get_mut(EXECUTOR).expect("cached").1 = std::time::Instant::now();
    agents
        .transition(EXECUTOR, LifecycleAction::Suspend, None, "user:o", "test", &f.audit)
        .await
        .expect("active in the store, so it can be suspended");
}

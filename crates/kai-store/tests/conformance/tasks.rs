//! Agents, tasks, plans, steps, questions, messages, workflows, webhooks and triggers.

use kai_store::{
    AgentMessageRow, AgentRow, PlanRow, QuestionRow, StepRow, StoreError, TaskFilter, TaskRow,
    TaskUsage, WebhookRow,
};

use super::Backend;

fn agent(id: &str, builtin: bool) -> AgentRow {
    AgentRow {
        id: id.into(),
        definition: format!("{{\"name\":\"{id}\"}}"),
        staged: None,
        state: "created".into(),
        builtin,
        did: "did:key:z6Mk".into(),
        created_at_us: 1,
        updated_at_us: 1,
    }
}

pub fn task(id: &str, key: Option<&str>) -> TaskRow {
    TaskRow {
        id: id.into(),
        owner: "user:a".into(),
        goal: "write a haiku".into(),
        status: "planning".into(),
        source: "api".into(),
        workflow: None,
        budget: "{}".into(),
        used_steps: 0,
        used_tool_calls: 0,
        used_tokens: 0,
        used_cost_micros: 0,
        result: None,
        error: None,
        plan_version: 0,
        parent_id: None,
        depth: 0,
        idempotency_key: key.map(str::to_owned),
        created_at_us: 10,
        updated_at_us: 10,
        finished_at_us: None,
    }
}

fn step(task: &str, id: &str) -> StepRow {
    StepRow {
        task_id: task.into(),
        step_id: id.into(),
        plan_version: 1,
        agent: "kExecutor:default".into(),
        status: "pending".into(),
        attempts: 0,
        output: None,
        feedback: None,
        error: None,
        tokens: 0,
        tool_calls: 0,
        started_at_us: None,
        finished_at_us: None,
    }
}

pub async fn agents_and_lifecycle_compare_and_set(b: &Backend) {
    let s = &b.store;
    s.insert_agent(&agent("kPlanner:default", true)).await.unwrap();
    s.insert_agent(&agent("kPlanner:default", true)).await.unwrap();
    s.insert_agent(&agent("kExecutor:web", false)).await.unwrap();
    assert!(matches!(
        s.insert_agent(&agent("kExecutor:web", false)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.agents().await.unwrap().len(), 2);

    s.transition_agent("kExecutor:web", "created", "initialized", None, None, 5).await.unwrap();
    let err = s.transition_agent("kExecutor:web", "created", "initialized", None, None, 6).await;
    assert!(matches!(err, Err(StoreError::Conflict(m)) if m.contains("initialized")));
    s.transition_agent(
        "kExecutor:web",
        "initialized",
        "modified",
        None,
        Some(Some("{\"v\":2}")),
        7,
    )
    .await
    .unwrap();
    let a = s.agent("kExecutor:web").await.unwrap().unwrap();
    assert_eq!((a.state.as_str(), a.staged.as_deref()), ("modified", Some("{\"v\":2}")));
    s.transition_agent("kExecutor:web", "modified", "active", Some("{\"v\":2}"), Some(None), 8)
        .await
        .unwrap();
    let a = s.agent("kExecutor:web").await.unwrap().unwrap();
    assert_eq!((a.definition.as_str(), a.staged, a.updated_at_us), ("{\"v\":2}", None, 8));
    assert!(matches!(
        s.transition_agent("kNope:x", "created", "active", None, None, 9).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn tasks_plans_and_steps(b: &Backend) {
    let s = &b.store;
    let t = s.insert_task(&task("task_1", Some("client-key"))).await.unwrap();
    assert_eq!(t.status, "planning");
    let again = s.insert_task(&task("task_2", Some("client-key"))).await.unwrap();
    assert_eq!(again.id, "task_1", "the idempotency key returns the first task");
    s.insert_task(&task("task_3", None)).await.unwrap();
    let mine = s
        .tasks(&TaskFilter { owner: Some("user:a".into()), limit: 10, ..TaskFilter::default() })
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);

    let finals = ["succeeded", "failed", "cancelled"];
    assert!(s.set_task_status("task_1", "running", None, None, &finals, 20).await.unwrap());
    assert!(
        s.set_task_status("task_1", "succeeded", Some("done"), None, &finals, 30).await.unwrap()
    );
    assert!(
        !s.set_task_status("task_1", "cancelled", None, None, &finals, 40).await.unwrap(),
        "final is final"
    );
    let t = s.task("task_1").await.unwrap().unwrap();
    assert_eq!(
        (t.status.as_str(), t.result.as_deref(), t.finished_at_us),
        ("succeeded", Some("done"), Some(30))
    );

    // A retry reopens a finished task once: result, error and finish time are cleared.
    assert!(s.set_task_status("task_3", "failed", None, Some("boom"), &finals, 41).await.unwrap());
    assert!(
        !s.reopen_task("task_3", "cancelled", "running", 42).await.unwrap(),
        "not in that status"
    );
    assert!(s.reopen_task("task_3", "failed", "running", 43).await.unwrap());
    assert!(
        !s.reopen_task("task_3", "failed", "running", 44).await.unwrap(),
        "a second retry finds it running"
    );
    let t = s.task("task_3").await.unwrap().unwrap();
    assert_eq!(
        (
            t.status.as_str(),
            t.error.as_deref(),
            t.result.as_deref(),
            t.finished_at_us,
            t.updated_at_us
        ),
        ("running", None, None, None, 43)
    );

    let u = TaskUsage { steps: 1, tool_calls: 2, tokens: 30, cost_micros: 4 };
    s.add_task_usage("task_3", u, 50).await.unwrap();
    let t = s.add_task_usage("task_3", u, 51).await.unwrap();
    assert_eq!((t.used_steps, t.used_tool_calls, t.used_tokens, t.used_cost_micros), (2, 4, 60, 8));

    let plan = |v| PlanRow {
        task_id: "task_3".into(),
        version: v,
        graph: "{\"steps\":[]}".into(),
        status: "proposed".into(),
        checked: "{}".into(),
        author: "kPlanner:default".into(),
        created_at_us: 60,
    };
    s.insert_plan(&plan(1)).await.unwrap();
    assert!(matches!(s.insert_plan(&plan(1)).await, Err(StoreError::Conflict(_))));
    s.insert_plan(&plan(2)).await.unwrap();
    s.approve_plan("task_3", 2, &[step("task_3", "a"), step("task_3", "b")], 70).await.unwrap();
    assert!(matches!(s.approve_plan("task_3", 2, &[], 71).await, Err(StoreError::Conflict(_))));
    let plans = s.plans("task_3").await.unwrap();
    assert_eq!(
        plans.iter().map(|p| p.status.as_str()).collect::<Vec<_>>(),
        ["superseded", "approved"]
    );
    assert_eq!(s.task("task_3").await.unwrap().unwrap().plan_version, 2);
    assert_eq!(s.plan("task_3", 2).await.unwrap().unwrap().status, "approved");
    assert!(s.plan("task_3", 9).await.unwrap().is_none());
    // The approval wrote the plan's steps, pending; a status move only from the status named.
    assert_eq!(s.steps("task_3").await.unwrap().len(), 2);
    assert!(s.set_step_status_if("task_3", "b", "pending", "queued").await.unwrap());
    assert!(!s.set_step_status_if("task_3", "b", "pending", "queued").await.unwrap());
    assert!(!s.set_step_status_if("task_3", "zz", "pending", "queued").await.unwrap());
    assert_eq!(s.step("task_3", "b").await.unwrap().unwrap().status, "queued");
    // A failed approval (a plan not proposed) changes nothing: the steps are still there.
    s.insert_plan(&plan(3)).await.unwrap();
    assert!(matches!(s.approve_plan("task_3", 1, &[], 72).await, Err(StoreError::Conflict(_))));
    assert_eq!(s.steps("task_3").await.unwrap().len(), 2);
    assert_eq!(s.task("task_3").await.unwrap().unwrap().plan_version, 2);
    s.set_plan_status("task_3", 3, "rejected").await.unwrap();

    let mut a = s.step("task_3", "a").await.unwrap().unwrap();
    a.status = "succeeded".into();
    a.output = Some("a haiku".into());
    a.attempts = 1;
    a.finished_at_us = Some(80);
    s.update_step(&a).await.unwrap();
    assert_eq!(s.steps("task_3").await.unwrap()[0], a);
    // Only steps with an output, as (step id, output): "b" has none yet.
    assert_eq!(s.step_outputs("task_3").await.unwrap(), [("a".to_owned(), "a haiku".to_owned())]);
    assert!(s.step_outputs("task_none").await.unwrap().is_empty());
    assert!(matches!(s.update_step(&step("task_3", "zz")).await, Err(StoreError::NotFound)));

    // A step starting and its step count: one write, the task as it is after it.
    let mut b2 = s.step("task_3", "b").await.unwrap().unwrap();
    b2.status = "running".into();
    b2.attempts = 1;
    let one = TaskUsage { steps: 1, ..TaskUsage::default() };
    let t = s.update_step_with_usage(&b2, one, 90).await.unwrap();
    assert_eq!((t.used_steps, t.updated_at_us), (3, 90));
    assert_eq!(s.step("task_3", "b").await.unwrap().unwrap().status, "running");
    // All or nothing: an unknown step changes neither the step nor the counters.
    let missing = s.update_step_with_usage(&step("task_3", "zz"), one, 91).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    assert_eq!(s.task("task_3").await.unwrap().unwrap().used_steps, 3);

    // A model call of the task: its usage rows and the task's counters together.
    let row = |id: &str, who: &str| kai_store::UsageRow {
        id: id.into(),
        at_us: 95,
        principal: who.into(),
        persona: "p".into(),
        prompt_tokens: 3,
        completion_tokens: 4,
        cost_micros: 5,
    };
    let call = TaskUsage { tokens: 7, cost_micros: 5, ..TaskUsage::default() };
    let rows = [row("call-1a", "agent:kExecutor:executor"), row("call-1b", "user:a")];
    let t = s.record_task_call("task_3", &rows, call, 96).await.unwrap();
    assert_eq!((t.used_tokens, t.used_cost_micros), (67, 13));
    assert_eq!(s.spent_since("user:a", 0).await.unwrap().tokens, 7);
    assert_eq!(s.spent_since("agent:kExecutor:executor", 0).await.unwrap().tokens, 7);
    let gone = s.record_task_call("task_nope", &[row("call-2", "user:c")], call, 97).await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
    assert_eq!(
        s.spent_since("user:c", 0).await.unwrap().tokens,
        0,
        "rolled back with the task update"
    );
    // A usage row that cannot be stored (its id is taken) takes the counters back with it.
    let dup = s.record_task_call("task_3", &[row("call-1a", "user:d")], call, 98).await;
    assert!(dup.is_err(), "{dup:?}");
    let t = s.task("task_3").await.unwrap().unwrap();
    assert_eq!((t.used_tokens, t.used_cost_micros), (67, 13), "nothing of the failed call stays");
    // And the writer takes the next call.
    let t = s.record_task_call("task_3", &[row("call-3", "user:d")], call, 99).await.unwrap();
    assert_eq!(t.used_tokens, 74);

    // A step succeeding queues what it unblocked, with the jobs, in one transaction.
    let job = |step: &str| {
        kai_store::queue::NewJob::new(
            "task.step".parse().unwrap(),
            serde_json::json!({"task_id": "task_3", "step_id": step}),
        )
        .with_idempotency_key(format!("step:task_3:{step}").parse().unwrap())
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let follow: kai_store::FollowUps = std::sync::Arc::new({
        let seen = seen.clone();
        move |steps: &[StepRow]| {
            *seen.lock().unwrap() =
                steps.iter().map(|s| (s.step_id.clone(), s.status.clone())).collect();
            // `a` is not pending (succeeded): picking it again changes nothing.
            vec![("a".to_owned(), job("a")), ("b".to_owned(), job("b"))]
        }
    });
    let mut b3 = s.step("task_3", "b").await.unwrap().unwrap();
    b3.status = "pending".into();
    s.update_step(&b3).await.unwrap();
    let mut a2 = s.step("task_3", "a").await.unwrap().unwrap();
    a2.output = Some("a second haiku".into());
    let (steps, queued) = s.finish_step(&a2, follow.clone(), 100).await.unwrap();
    assert_eq!(queued, ["b"]);
    assert_eq!(
        *seen.lock().unwrap(),
        [("a".to_owned(), "succeeded".to_owned()), ("b".to_owned(), "pending".to_owned())],
        "the picker sees the write"
    );
    assert_eq!(
        steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
        ["succeeded", "queued"]
    );
    assert_eq!(steps[0].output.as_deref(), Some("a second haiku"));
    let jobs =
        s.jobs(&kai_store::queue::JobFilter { limit: 10, ..Default::default() }).await.unwrap();
    let ours: Vec<_> = jobs.iter().filter(|j| j.payload["task_id"] == "task_3").collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0].payload["step_id"], "b");
    // Again: nothing is pending any more, so nothing is queued and no job is added.
    let (_, queued) = s.finish_step(&a2, follow.clone(), 101).await.unwrap();
    assert!(queued.is_empty());
    // A step that does not exist rolls everything back.
    let none = s.finish_step(&step("task_3", "zz"), follow, 102).await;
    assert!(matches!(none, Err(StoreError::NotFound)), "{none:?}");
}

pub async fn questions_messages_workflows_webhooks_triggers(b: &Backend) {
    let s = &b.store;
    s.insert_task(&task("task_q", None)).await.unwrap();
    let q = QuestionRow {
        id: "q1".into(),
        task_id: "task_q".into(),
        step_id: "a".into(),
        question: "Which city?".into(),
        answer: None,
        asked_at_us: 1,
        answered_at_us: None,
        answered_by: None,
    };
    s.insert_question(&q).await.unwrap();
    s.answer_question("q1", "Lisbon", "user:a", 2).await.unwrap();
    assert!(matches!(
        s.answer_question("q1", "Porto", "user:a", 3).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.questions("task_q").await.unwrap()[0].answer.as_deref(), Some("Lisbon"));

    for (i, to) in ["kMemory:default", "kMemory:default", "kBridge:mail"].iter().enumerate() {
        s.insert_agent_message(&AgentMessageRow {
            id: format!("m{i}"),
            from_agent: "kCore:default".into(),
            to_agent: (*to).into(),
            task_id: None,
            payload: "{}".into(),
            status: "queued".into(),
            created_at_us: i as i64,
            delivered_at_us: None,
        })
        .await
        .unwrap();
    }
    let queued = s.queued_messages("kMemory:default", 10).await.unwrap();
    assert_eq!(queued.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m0", "m1"]);
    s.mark_delivered("m0", 9).await.unwrap();
    assert_eq!(s.queued_messages("kMemory:default", 10).await.unwrap().len(), 1);

    assert_eq!(s.insert_workflow("digest", "steps: []", "user:a", 1).await.unwrap(), 1);
    assert_eq!(s.insert_workflow("digest", "steps: [x]", "user:a", 2).await.unwrap(), 2);
    assert_eq!(s.workflow("digest", None).await.unwrap().unwrap().definition, "steps: [x]");
    assert_eq!(s.workflow("digest", Some(1)).await.unwrap().unwrap().definition, "steps: []");
    assert_eq!(s.workflows().await.unwrap().len(), 1);

    let hook = WebhookRow {
        name: "gh".into(),
        secret_name: "webhook/gh".into(),
        target: "{}".into(),
        created_at_us: 1,
    };
    s.upsert_webhook(&hook).await.unwrap();
    s.upsert_webhook(&WebhookRow { target: "{\"workflow\":\"digest\"}".into(), ..hook.clone() })
        .await
        .unwrap();
    assert_eq!(s.webhook("gh").await.unwrap().unwrap().target, "{\"workflow\":\"digest\"}");
    s.delete_webhook("gh").await.unwrap();
    assert!(s.webhooks().await.unwrap().is_empty());

    assert_eq!(s.trigger_last_fired("t1").await.unwrap(), None);
    assert!(s.mark_trigger_fired("t1", None, 100).await.unwrap());
    assert!(!s.mark_trigger_fired("t1", None, 100).await.unwrap(), "a second process loses");
    assert!(s.mark_trigger_fired("t1", Some(100), 200).await.unwrap());
    assert!(!s.mark_trigger_fired("t1", Some(100), 300).await.unwrap());
    assert_eq!(s.trigger_last_fired("t1").await.unwrap(), Some(200));
}

/// A new task, its plan and its job commit together, or not at all.
pub async fn a_task_is_created_with_its_plan_and_job_or_not_at_all(b: &Backend) {
    use kai_store::queue::{JobFilter, NewJob};
    let s = &b.store;
    let job = |task: &str| {
        NewJob::new("task.plan".parse().unwrap(), serde_json::json!({"task_id": task}))
            .with_idempotency_key(format!("plan:{task}").parse().unwrap())
    };
    let plan = |task: &str, version| PlanRow {
        task_id: task.into(),
        version,
        graph: "{\"steps\":[]}".into(),
        status: "proposed".into(),
        checked: "{}".into(),
        author: "user:a".into(),
        created_at_us: 11,
    };
    let jobs = || async {
        let all = JobFilter { limit: 100, ..JobFilter::default() };
        s.jobs(&all)
            .await
            .unwrap()
            .into_iter()
            .map(|j| j.payload["task_id"].clone())
            .collect::<Vec<_>>()
    };

    let t = s
        .create_task(
            &task("task_c1", Some("key-c")),
            Some(&plan("task_c1", 1)),
            &job("task_c1"),
            12,
        )
        .await
        .unwrap();
    assert_eq!((t.id.as_str(), t.status.as_str(), t.created_at_us), ("task_c1", "planning", 10));
    let plans = s.plans("task_c1").await.unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!((plans[0].version, plans[0].status.as_str()), (1, "proposed"));
    assert_eq!(jobs().await, [serde_json::json!("task_c1")]);

    // Without a plan (the planner makes one): the task and its job.
    s.create_task(&task("task_c2", None), None, &job("task_c2"), 12).await.unwrap();
    assert!(s.plans("task_c2").await.unwrap().is_empty());
    assert_eq!(jobs().await.len(), 2);

    // The same idempotency key: the first task, and nothing written.
    let again = s
        .create_task(
            &task("task_c3", Some("key-c")),
            Some(&plan("task_c3", 1)),
            &job("task_c3"),
            13,
        )
        .await
        .unwrap();
    assert_eq!(again.id, "task_c1");
    assert!(s.task("task_c3").await.unwrap().is_none());
    assert!(s.plans("task_c3").await.unwrap().is_empty());
    assert_eq!(jobs().await.len(), 2, "no job for a task that was not created");

    // A job that cannot be stored (its key names other work) takes the task and plan back.
    let clash = NewJob::new("task.plan".parse().unwrap(), serde_json::json!({"task_id": "other"}))
        .with_idempotency_key("plan:task_c1".parse().unwrap());
    let err = s.create_task(&task("task_c4", None), Some(&plan("task_c4", 1)), &clash, 14).await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    assert!(s.task("task_c4").await.unwrap().is_none(), "rolled back with the job");
    assert!(s.plans("task_c4").await.unwrap().is_empty());
    // A taken id without a key is a conflict, and the writer goes on.
    let taken = s.create_task(&task("task_c2", None), None, &job("task_c5"), 15).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
    s.create_task(&task("task_c6", None), None, &job("task_c6"), 16).await.unwrap();
    assert_eq!(jobs().await.len(), 3);
}

use proptest::prelude::*;

use super::*;

fn agent(s: &str) -> AgentId {
    s.parse().unwrap()
}

fn ctx() -> PlanContext {
    let mut agents = BTreeMap::new();
    agents.insert(
        agent("kExecutor:default"),
        AgentCaps {
            runnable: true,
            tools: [("http_fetch".to_owned(), Approval::Auto), ("files".to_owned(), Approval::Ask)]
                .into(),
        },
    );
    agents.insert(agent("kExecutor:idle"), AgentCaps { runnable: false, tools: BTreeMap::new() });
    PlanContext {
        agents,
        tools: ["http_fetch", "files", "shell"].iter().map(|t| (*t).to_owned()).collect(),
        default_agent: agent("kExecutor:default"),
        max_steps: 50,
    }
}

fn step(id: &str, deps: &[&str]) -> PlanStep {
    PlanStep {
        id: id.into(),
        title: String::new(),
        agent: None,
        tool: None,
        instruction: format!("do {id}"),
        inputs: BTreeMap::new(),
        depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
    }
}

#[test]
fn a_good_plan_is_ordered_and_repaired_where_safe() {
    let mut files = step("save", &["fetch", "fetch", "save"]);
    files.tool = Some("files".into());
    let mut g = TaskGraph { steps: vec![files, step("fetch", &[])] };
    let checked = g.check(&ctx()).unwrap();
    assert_eq!(checked.order, vec!["fetch", "save"]);
    assert_eq!(checked.needs_approval, vec![("save".to_owned(), "files".to_owned())]);
    let what: Vec<&str> = checked.repairs.iter().map(|r| r.what.as_str()).collect();
    assert!(what.contains(&"removed repeated dependencies"), "{what:?}");
    assert!(what.contains(&"removed its dependency on itself"), "{what:?}");
    assert_eq!(g.steps[0].depends_on, vec!["fetch"]);
    assert_eq!(g.steps[0].agent, Some(agent("kExecutor:default")));
}

#[test]
fn every_problem_is_reported_with_its_step() {
    let mut unknown_tool = step("b", &[]);
    unknown_tool.tool = Some("teleport".into());
    let mut forbidden = step("c", &[]);
    forbidden.tool = Some("shell".into());
    let mut idle = step("d", &[]);
    idle.agent = Some(agent("kExecutor:idle"));
    let mut stranger = step("e", &[]);
    stranger.agent = Some(agent("kBridge:mail"));
    let mut empty = step("f", &[]);
    empty.instruction.clear();
    let mut g = TaskGraph {
        steps: vec![
            step("a", &["zzz"]),
            unknown_tool,
            forbidden,
            idle,
            stranger,
            empty,
            step("a", &[]),
            step("Bad Id", &[]),
        ],
    };
    let problems = g.check(&ctx()).unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    for needle in [
        "depends on \"zzz\"",
        "tool \"teleport\", which does not exist",
        "not permitted to use tool \"shell\"",
        "kExecutor:idle, which is not active",
        "kBridge:mail, which is not a registered agent",
        "neither an instruction nor a tool",
        "\"a\" is used twice",
        "\"Bad Id\" is not",
    ] {
        assert!(text.iter().any(|t| t.contains(needle)), "{needle}: {text:#?}");
    }
    assert_eq!(TaskGraph::default().check(&ctx()).unwrap_err(), vec![PlanProblem::Empty]);
    let mut big = TaskGraph { steps: (0..51).map(|i| step(&format!("s{i}"), &[])).collect() };
    assert!(matches!(
        big.check(&ctx()).unwrap_err()[0],
        PlanProblem::TooManySteps { steps: 51, max: 50 }
    ));
}

#[test]
fn a_cycle_is_named() {
    let mut g = TaskGraph {
        steps: vec![step("a", &["c"]), step("b", &["a"]), step("c", &["b"]), step("d", &[])],
    };
    let problems = g.check(&ctx()).unwrap_err();
    let PlanProblem::Cycle { cycle } = &problems[0] else { panic!("{problems:?}") };
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    assert!(problems[0].to_string().contains(" → "));
}

/// A random DAG: step i may depend only on steps before it in creation order; the plan lists
/// them shuffled.
fn dag() -> impl Strategy<Value = TaskGraph> {
    (1usize..30)
        .prop_flat_map(|n| {
            let edges = proptest::collection::vec(
                proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
                n,
            );
            (
                Just(n),
                edges,
                Just(()).prop_perturb(move |(), mut rng| {
                    let mut order: Vec<usize> = (0..n).collect();
                    for i in (1..n).rev() {
                        order.swap(i, rng.random_range(0..=i));
                    }
                    order
                }),
            )
        })
        .prop_map(|(n, edges, order)| {
            let mut steps: Vec<PlanStep> = (0..n)
                .map(|i| {
                    let deps: Vec<String> = if i == 0 {
                        Vec::new()
                    } else {
                        edges[i].iter().map(|ix| format!("s{}", ix.index(i))).collect()
                    };
                    let mut s = step(&format!("s{i}"), &[]);
                    s.depends_on = deps;
                    s
                })
                .collect();
            steps = order.into_iter().map(|i| steps[i].clone()).collect();
            TaskGraph { steps }
        })
}

proptest! {
    #[test]
    fn every_dag_passes_and_its_order_respects_dependencies(mut g in dag()) {
        let checked = g.check(&ctx()).unwrap();
        let pos: BTreeMap<&str, usize> = checked.order.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
        prop_assert_eq!(pos.len(), g.steps.len());
        for s in &g.steps {
            for d in &s.depends_on {
                prop_assert!(pos[d.as_str()] < pos[s.id.as_str()], "{} before {}", d, s.id);
            }
        }
    }

    #[test]
    fn a_back_edge_makes_a_cycle_that_is_reported(mut g in dag(), pick in any::<prop::sample::Index>()) {
        // Make the first step of some dependency chain depend on its dependent.
        let Some(i) = g.steps.iter().position(|s| !s.depends_on.is_empty()) else { return Ok(()) };
        let dependency = g.steps[i].depends_on[pick.index(g.steps[i].depends_on.len())].clone();
        let id = g.steps[i].id.clone();
        g.steps.iter_mut().find(|s| s.id == dependency).unwrap().depends_on.push(id);
        let problems = g.check(&ctx()).unwrap_err();
        let is_cycle = matches!(&problems[0], PlanProblem::Cycle { cycle } if cycle.len() >= 3);
        prop_assert!(is_cycle, "{:?}", problems);
    }

    /// Simulated scheduling with random completion order: a step never starts before all its
    /// dependencies are done, and every step runs exactly once.
    #[test]
    fn scheduling_respects_dependencies(mut g in dag(), picks in proptest::collection::vec(any::<prop::sample::Index>(), 64)) {
        g.check(&ctx()).unwrap();
        let (mut done, mut started) = (BTreeSet::new(), BTreeSet::new());
        let mut running: Vec<String> = Vec::new();
        let mut round = 0;
        while done.len() < g.steps.len() {
            for s in g.ready(&done, &started) {
                prop_assert!(s.depends_on.iter().all(|d| done.contains(d)));
                running.push(s.id.clone());
            }
            for id in &running {
                started.insert(id.clone());
            }
            prop_assert!(!running.is_empty(), "a DAG always has a runnable step");
            let finished = running.remove(picks[round % picks.len()].index(running.len()));
            prop_assert!(done.insert(finished));
            round += 1;
        }
        prop_assert_eq!(started.len(), g.steps.len());
    }
}

use super::*;
use crate::config::{BusBackend, LogLevel};

fn file(source: Source, text: &str) -> Layer {
    Layer::from_toml(source, text).unwrap()
}

fn sys() -> Source {
    Source::SystemFile("/etc/kai/config.toml".into())
}
fn envf() -> Source {
    Source::EnvironmentFile("/etc/kai/config.prod.toml".into())
}
fn user() -> Source {
    Source::UserFile("/home/u/.config/kai/config.toml".into())
}

#[test]
fn every_layer_overrides_the_one_before() {
    // Each layer sets request_timeout_secs; each later layer must win, and provenance must follow.
    let layers = vec![
        file(
            sys(),
            "[server]\nrequest_timeout_secs = 2\nshutdown_grace_secs = 2\nlisten = \"127.0.0.1:2\"\n[node]\nname = \"sys\"",
        ),
        file(
            envf(),
            "[server]\nrequest_timeout_secs = 3\nshutdown_grace_secs = 3\nlisten = \"127.0.0.1:3\"",
        ),
        file(user(), "[server]\nrequest_timeout_secs = 4\nshutdown_grace_secs = 4"),
    ];
    let mut all = layers.clone();
    all.extend(
        env_layer([("KAI_SERVER__REQUEST_TIMEOUT_SECS".to_owned(), "5".to_owned())]).unwrap(),
    );
    all.push(
        Layer::single(
            Source::Flag("--set".into()),
            "server.request_timeout_secs",
            Value::Integer(6),
        )
        .unwrap(),
    );
    let loaded = load(all).unwrap();
    let c = &loaded.config;
    assert_eq!(c.server.request_timeout_secs, 6);
    assert_eq!(loaded.source_of("server.request_timeout_secs"), Source::Flag("--set".into()));
    assert_eq!(c.server.shutdown_grace_secs, 4);
    assert_eq!(loaded.source_of("server.shutdown_grace_secs"), user());
    assert_eq!(c.server.listen, "127.0.0.1:3");
    assert_eq!(loaded.source_of("server.listen"), envf());
    assert_eq!(c.node.name, "sys");
    assert_eq!(loaded.source_of("node.name"), sys());
    assert_eq!(c.server.body_limit_bytes, 2 * 1024 * 1024);
    assert_eq!(loaded.source_of("server.body_limit_bytes"), Source::Default);

    // Without the flag, the env var wins; without both, the user file.
    let mut no_flag = layers.clone();
    no_flag.extend(
        env_layer([("KAI_SERVER__REQUEST_TIMEOUT_SECS".to_owned(), "5".to_owned())]).unwrap(),
    );
    assert_eq!(load(no_flag).unwrap().config.server.request_timeout_secs, 5);
    assert_eq!(load(layers.clone()).unwrap().config.server.request_timeout_secs, 4);
    assert_eq!(load(layers[..2].to_vec()).unwrap().config.server.request_timeout_secs, 3);
    assert_eq!(load(layers[..1].to_vec()).unwrap().config.server.request_timeout_secs, 2);
    assert_eq!(load(vec![]).unwrap().config.server.request_timeout_secs, 30);
}

#[test]
fn env_vars_parse_types_and_skip_non_config_variables() {
    let layers = env_layer([
        ("KAI_BUS__BACKEND".to_owned(), "nats".to_owned()),
        ("KAI_LOG__LEVEL".to_owned(), "debug".to_owned()),
        ("KAI_SERVER__ALLOW_PUBLIC_BIND".to_owned(), "true".to_owned()),
        ("KAI_VAULT_PASSPHRASE".to_owned(), "not config".to_owned()),
        ("KAI_DATA_DIR".to_owned(), "/tmp/x".to_owned()),
        ("PATH".to_owned(), "/bin".to_owned()),
    ])
    .unwrap();
    assert_eq!(layers.len(), 3);
    let c = load(layers).unwrap().config;
    assert_eq!(c.bus.backend, BusBackend::Nats);
    assert_eq!(c.log.level, LogLevel::Debug);
    assert!(c.server.allow_public_bind);
}

#[test]
fn nested_maps_merge_key_by_key() {
    let a: Table = "[a]\nx = 1\n[a.b]\ny = 2\nz = 3".parse().unwrap();
    let b: Table = "[a.b]\nz = 30\nw = 40".parse().unwrap();
    let (m, prov) = merge_tables_for_test(vec![(sys(), a), (user(), b)]);
    assert_eq!(m["a"]["x"].as_integer(), Some(1));
    assert_eq!(m["a"]["b"]["y"].as_integer(), Some(2));
    assert_eq!(m["a"]["b"]["z"].as_integer(), Some(30));
    assert_eq!(m["a"]["b"]["w"].as_integer(), Some(40));
    assert_eq!(prov["a.b.z"], user());
    assert_eq!(prov["a.b.y"], sys());
}

#[test]
fn named_lists_merge_by_name_and_plain_lists_are_replaced() {
    let a: Table = r#"
        tags = ["a", "b"]
        [[providers]]
        name = "openai"
        url = "https://one"
        timeout = 5
        [[providers]]
        name = "ollama"
        url = "http://two"
    "#
    .parse()
    .unwrap();
    let b: Table = r#"
        tags = ["c"]
        [[providers]]
        name = "openai"
        timeout = 9
        [[providers]]
        name = "gemini"
        url = "https://three"
    "#
    .parse()
    .unwrap();
    let (m, prov) = merge_tables_for_test(vec![(sys(), a), (user(), b)]);
    let tags: Vec<_> = m["tags"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(tags, ["c"], "plain lists are replaced whole");
    let providers = m["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 3);
    assert_eq!(providers[0]["name"].as_str(), Some("openai"));
    assert_eq!(providers[0]["url"].as_str(), Some("https://one"), "unset fields survive");
    assert_eq!(providers[0]["timeout"].as_integer(), Some(9), "set fields win");
    assert_eq!(providers[1]["name"].as_str(), Some("ollama"));
    assert_eq!(providers[2]["name"].as_str(), Some("gemini"));
    assert_eq!(prov["providers[openai].timeout"], user());
    assert_eq!(prov["providers[openai].url"], sys());
}

#[test]
fn replacing_a_table_with_a_scalar_resets_provenance_below_it() {
    let a: Table = "[a]\nx = 1".parse().unwrap();
    let b: Table = "a = 5".parse().unwrap();
    let (m, prov) = merge_tables_for_test(vec![(sys(), a), (user(), b)]);
    assert_eq!(m["a"].as_integer(), Some(5));
    assert!(!prov.contains_key("a.x"));
}

fn only_problem(err: ConfigError) -> Problem {
    assert_eq!(err.problems.len(), 1, "{err}");
    err.problems.into_iter().next().unwrap()
}

#[test]
fn unknown_key_names_file_key_and_allowed_keys() {
    let err = load(vec![file(user(), "[server]\nport = 80")]).unwrap_err();
    let text = err.to_string();
    let p = only_problem(err);
    assert_eq!(p.source, user());
    assert_eq!(p.key, "server.port");
    assert!(p.message.contains("unknown field `port`"), "{}", p.message);
    assert!(
        p.message.contains("listen") && p.message.contains("request_timeout_secs"),
        "allowed keys listed: {}",
        p.message
    );
    assert!(text.contains("/home/u/.config/kai/config.toml"), "{text}");
}

#[test]
fn a_bad_key_in_a_named_list_names_the_item_and_its_file() {
    let text = "[[personas]]\nname = \"a\"\nproviders = []\n[[personas]]\nname = \"terse\"\nproviders = []\nbogus = 1\n";
    let p = only_problem(load(vec![file(user(), text)]).unwrap_err());
    assert_eq!(p.key, "personas[terse].bogus");
    assert_eq!(p.source, user(), "found through the item's provenance");
    assert!(p.message.contains("unknown field `bogus`"), "{}", p.message);
}

#[test]
fn unknown_section_is_rejected() {
    let p = only_problem(load(vec![file(sys(), "[serverr]\nlisten = \"x\"")]).unwrap_err());
    assert_eq!(p.source, sys());
    assert!(p.message.contains("unknown field `serverr`"), "{}", p.message);
}

#[test]
fn wrong_type_names_the_source() {
    let p = only_problem(
        load(vec![file(envf(), "[server]\nrequest_timeout_secs = \"soon\"")]).unwrap_err(),
    );
    assert_eq!(p.source, envf());
    assert_eq!(p.key, "server.request_timeout_secs");
    assert!(p.message.contains("invalid type"), "{}", p.message);

    let layers =
        env_layer([("KAI_AUDIT__CHECKPOINT_EVERY".to_owned(), "lots".to_owned())]).unwrap();
    let p = only_problem(load(layers).unwrap_err());
    assert_eq!(p.source, Source::EnvVar("KAI_AUDIT__CHECKPOINT_EVERY".into()));
    assert_eq!(p.key, "audit.checkpoint_every");
}

#[test]
fn bad_enum_value_lists_allowed_variants() {
    let p = only_problem(load(vec![file(user(), "[log]\nlevel = \"loud\"")]).unwrap_err());
    assert_eq!(p.key, "log.level");
    assert!(p.message.contains("unknown variant `loud`"), "{}", p.message);
    assert!(p.message.contains("debug") && p.message.contains("error"), "{}", p.message);
}

#[test]
fn out_of_range_values_are_all_reported_with_bounds() {
    let err = load(vec![
        file(sys(), "[server]\nrequest_timeout_secs = 0"),
        file(user(), "[audit]\ncheckpoint_every = 0\n[server]\nlisten = \"nowhere\""),
    ])
    .unwrap_err();
    assert_eq!(err.problems.len(), 3, "{err}");
    let timeout = err.problems.iter().find(|p| p.key == "server.request_timeout_secs").unwrap();
    assert_eq!(timeout.source, sys());
    assert!(timeout.message.contains("allowed: 1 to 3600"), "{}", timeout.message);
    let every = err.problems.iter().find(|p| p.key == "audit.checkpoint_every").unwrap();
    assert_eq!(every.source, user());
    let listen = err.problems.iter().find(|p| p.key == "server.listen").unwrap();
    assert!(listen.message.contains("IP:PORT"));
}

#[test]
fn syntax_error_names_the_file() {
    let err = Layer::from_toml(user(), "[server\nlisten = ").unwrap_err();
    let p = only_problem(err);
    assert_eq!(p.source, user());
    assert!(p.message.contains("not valid TOML"));
}

#[test]
fn bad_dotted_key_from_flag_is_rejected() {
    assert!(
        Layer::single(Source::Flag("--set".into()), "server..listen", Value::Integer(1)).is_err()
    );
}

#[test]
fn parse_scalar_types() {
    assert_eq!(parse_scalar("5"), Value::Integer(5));
    assert_eq!(parse_scalar("true"), Value::Boolean(true));
    assert_eq!(parse_scalar("127.0.0.1:80"), Value::String("127.0.0.1:80".into()));
    assert_eq!(parse_scalar("[1, 2]"), Value::Array(vec![Value::Integer(1), Value::Integer(2)]));
    assert_eq!(parse_scalar("hello world"), Value::String("hello world".into()));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // Whatever order layers come in, the last one to set a key decides its value and provenance.
        #[test]
        fn last_layer_wins(values in proptest::collection::vec(proptest::option::of(1u64..3600), 1..6)) {
            let layers: Vec<Layer> = values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|v| Layer::single(Source::EnvVar(format!("L{i}")), "server.request_timeout_secs", Value::Integer(v as i64)).unwrap())
            }).collect();
            let loaded = load(layers).unwrap();
            let expected = values.iter().enumerate().rev().find_map(|(i, v)| v.map(|v| (i, v)));
            match expected {
                Some((i, v)) => {
                    prop_assert_eq!(loaded.config.server.request_timeout_secs, v);
                    prop_assert_eq!(loaded.source_of("server.request_timeout_secs"), Source::EnvVar(format!("L{i}")));
                }
                None => prop_assert_eq!(loaded.config.server.request_timeout_secs, 30),
            }
        }
    }
}

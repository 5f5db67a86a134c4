//! Rendering templates with minijinja under fixed bounds: strict undefined (a misspelt variable
//! is an error, not an empty string), no loader (no filesystem, no includes), a recursion limit,
//! a fuel budget (instructions and the memory they allocate) and a cap on output size.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Map, Value};

/// Largest template source, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Largest rendered output, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Instruction budget of one render (minijinja fuel; ~64 bytes of allocation each).
pub const FUEL: u64 = 500_000;
/// Nesting depth of loops, conditions and macro calls.
pub const RECURSION_LIMIT: usize = 64;

/// Why a template did not compile or render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_fuel(Some(FUEL));
    env
}

fn template_error(e: &minijinja::Error) -> TemplateError {
    let what = match e.kind() {
        minijinja::ErrorKind::OutOfFuel => {
            "the template does too much work (its instruction budget ran out); simplify loops"
                .to_owned()
        }
        minijinja::ErrorKind::UndefinedError => format!(
            "{}; declare the variable or pass it",
            e.detail().unwrap_or("a value is undefined")
        ),
        minijinja::ErrorKind::WriteFailure => {
            format!("the output is larger than {MAX_OUTPUT_BYTES} bytes")
        }
        _ => match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    };
    let line = e.line();
    let message = match line {
        Some(l) => format!("{what} (line {l})"),
        None => what,
    };
    TemplateError { message, line }
}

/// Compiles `source` and returns the variables it reads from the context (loop variables and
/// `set` names excluded).
pub fn undeclared_variables(source: &str) -> Result<BTreeSet<String>, TemplateError> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError {
            message: format!(
                "the template is {} bytes; at most {MAX_TEMPLATE_BYTES} are allowed",
                source.len()
            ),
            line: None,
        });
    }
    let env = environment();
    let template = env.template_from_str(source).map_err(|e| template_error(&e))?;
    Ok(template.undeclared_variables(false).into_iter().collect())
}

/// An `io::Write` that refuses to grow past a limit.
struct Bounded {
    out: Vec<u8>,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.limit {
            return Err(std::io::Error::other("output limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `source` with `vars` as the context.
pub fn render(source: &str, vars: &Map<String, Value>) -> Result<String, TemplateError> {
    undeclared_variables(source)?;
    let env = environment();
    let template = env.template_from_str(source).map_err(|e| template_error(&e))?;
    let ctx = minijinja::Value::from(minijinja::value::Serde(vars));
    let mut out = Bounded { out: Vec::new(), limit: MAX_OUTPUT_BYTES };
    template.render_captured_to(ctx, &mut out).map_err(|e| template_error(&e))?;
    String::from_utf8(out.out)
        .map_err(|_| TemplateError { message: "the output is not UTF-8".into(), line: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn renders_with_loops_filters_and_json() {
        let out = render(
            "Write about {{ topic|upper }}:\n{% for p in points %}- {{ p }}\n{% endfor %}{{ meta|tojson }}",
            &vars(json!({"topic": "rust", "points": ["a", "b"], "meta": {"k": 1}})),
        )
        .unwrap();
        assert_eq!(out, "Write about RUST:\n- a\n- b\n{\"k\": 1}");
    }

    #[test]
    fn undefined_variables_are_errors() {
        let e = render("Hello {{ nmae }}", &vars(json!({"name": "x"}))).unwrap_err();
        assert!(e.message.contains("undefined"), "{e}");
        let used = undeclared_variables(
            "{% set a = 1 %}{{ a }}{{ b.c }}{% for i in items %}{{ i }}{% endfor %}",
        )
        .unwrap();
        assert_eq!(used.into_iter().collect::<Vec<_>>(), ["b", "items"]);
    }

    #[test]
    fn no_filesystem_and_bounded_work() {
        for src in
            ["{% include '/etc/passwd' %}", "{% extends 'base.txt' %}", "{% import 'x' as y %}"]
        {
            assert!(render(src, &Map::new()).is_err(), "{src}");
        }
        let e = render(
            "{% for i in range(10000) %}{% for j in range(10000) %}x{% endfor %}{% endfor %}",
            &Map::new(),
        )
        .unwrap_err();
        assert!(
            e.message.contains("instruction budget") || e.message.contains("larger than"),
            "{e}"
        );
        let e = render("{{ 'x' * 2000000 }}", &Map::new()).unwrap_err();
        assert!(e.message.contains("larger than") || e.message.contains("budget"), "{e}");
        let e = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", &Map::new())
            .unwrap_err();
        assert!(!e.message.is_empty());
        assert!(render(&"x".repeat(MAX_TEMPLATE_BYTES + 1), &Map::new()).is_err());
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let e = undeclared_variables("line one\n{% if %}").unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("line 2"));
    }
}

//! Declared template variables: name, type (`string`, `number`, `bool`, `list`, `object`),
//! whether required, a default, a description; checking declarations and binding the values a
//! caller passes, with one clear message per problem.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most variables one prompt may declare.
pub const MAX_VARIABLES: usize = 64;
/// Largest JSON size of all values passed to one render, in bytes.
pub const MAX_VALUES_BYTES: usize = 256 * 1024;

/// The type of a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VarKind {
    String,
    Number,
    Bool,
    List,
    Object,
}

impl VarKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Bool => "bool",
            Self::List => "list",
            Self::Object => "object",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        matches!(
            (self, v),
            (Self::String, Value::String(_))
                | (Self::Number, Value::Number(_))
                | (Self::Bool, Value::Bool(_))
                | (Self::List, Value::Array(_))
                | (Self::Object, Value::Object(_))
        )
    }
}

/// What a value is, with its article ("a string", "an object").
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn with_article(kind: VarKind) -> &'static str {
    match kind {
        VarKind::String => "a string",
        VarKind::Number => "a number",
        VarKind::Bool => "a bool",
        VarKind::List => "a list",
        VarKind::Object => "an object",
    }
}

/// One declared variable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: VarKind,
    /// A render without this variable fails.
    #[serde(default)]
    pub required: bool,
    /// The value when the caller passes none (optional variables without one are `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VarError {
    pub variable: String,
    pub message: String,
}

impl std::fmt::Display for VarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.variable, self.message)
    }
}

fn err(variable: &str, message: impl Into<String>) -> VarError {
    VarError { variable: variable.to_owned(), message: message.into() }
}

/// A variable name: an identifier templates can use (`[A-Za-z_][A-Za-z0-9_]*`, ≤ 64).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks declarations: names valid and unique, defaults of the declared type, no required
/// variable with a default, descriptions bounded.
pub fn check_specs(specs: &[VariableSpec]) -> Result<(), Vec<VarError>> {
    let mut errors = Vec::new();
    if specs.len() > MAX_VARIABLES {
        errors.push(err("*", format!("at most {MAX_VARIABLES} variables may be declared")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for s in specs {
        if !valid_name(&s.name) {
            errors.push(err(
                &s.name,
                "a variable name is a letter or _ then letters, digits or _ (at most 64)",
            ));
        } else if !seen.insert(s.name.as_str()) {
            errors.push(err(&s.name, "declared twice"));
        }
        match &s.default {
            Some(_) if s.required => errors
                .push(err(&s.name, "a required variable cannot have a default; drop one of them")),
            Some(d) if !s.kind.accepts(d) => errors.push(err(
                &s.name,
                format!(
                    "the default is {}, but the variable is {}",
                    kind_of(d),
                    with_article(s.kind)
                ),
            )),
            _ => {}
        }
        if s.description.len() > 1000 {
            errors.push(err(&s.name, "the description is longer than 1000 bytes"));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Binds `given` to the declarations: every declared variable gets the given value, its
/// default, or `none`; unknown names, missing required ones and wrong types are errors (all of
/// them reported at once).
pub fn bind(
    specs: &[VariableSpec],
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<VarError>> {
    let mut errors = Vec::new();
    let size = serde_json::to_vec(given).map_or(usize::MAX, |v| v.len());
    if size > MAX_VALUES_BYTES {
        errors.push(err(
            "*",
            format!("the values are {size} bytes of JSON; at most {MAX_VALUES_BYTES} are allowed"),
        ));
    }
    for name in given.keys().filter(|k| !specs.iter().any(|s| &s.name == *k)) {
        let declared: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let hint = if declared.is_empty() {
            "this prompt declares no variables".to_owned()
        } else {
            format!("declared: {}", declared.join(", "))
        };
        errors.push(err(name, format!("not declared by this prompt ({hint})")));
    }
    let mut bound = Map::new();
    for s in specs {
        match given.get(&s.name) {
            Some(Value::Null) | None if s.required => errors.push(err(
                &s.name,
                format!(
                    "is required ({}){}",
                    with_article(s.kind),
                    if s.description.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", s.description)
                    }
                ),
            )),
            Some(Value::Null) | None => {
                bound.insert(s.name.clone(), s.default.clone().unwrap_or(Value::Null));
            }
            Some(v) if !s.kind.accepts(v) => errors.push(err(
                &s.name,
                format!("must be {}, got {}", with_article(s.kind), kind_of(v)),
            )),
            Some(v) => {
                bound.insert(s.name.clone(), v.clone());
            }
        }
    }
    if errors.is_empty() { Ok(bound) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs() -> Vec<VariableSpec> {
        serde_json::from_value(json!([
            {"name": "topic", "type": "string", "required": true, "description": "what to write about"},
            {"name": "words", "type": "number", "default": 100},
            {"name": "formal", "type": "bool"},
            {"name": "points", "type": "list", "default": []},
            {"name": "meta", "type": "object"}
        ]))
        .unwrap()
    }

    #[test]
    fn binds_defaults_and_nones() {
        let given = json!({"topic": "rust", "formal": true}).as_object().cloned().unwrap();
        let bound = bind(&specs(), &given).unwrap();
        assert_eq!(
            Value::Object(bound),
            json!({"topic": "rust", "words": 100, "formal": true, "points": [], "meta": null})
        );
    }

    #[test]
    fn reports_every_problem_clearly() {
        let given =
            json!({"words": "many", "color": "red", "points": {}}).as_object().cloned().unwrap();
        let errors = bind(&specs(), &given).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "`color`: not declared by this prompt (declared: topic, words, formal, points, meta)",
                "`topic`: is required (a string): what to write about",
                "`words`: must be a number, got a string",
                "`points`: must be a list, got an object",
            ]
        );
    }

    #[test]
    fn declarations_are_checked() {
        let bad: Vec<VariableSpec> = serde_json::from_value(json!([
            {"name": "1x", "type": "string"},
            {"name": "a", "type": "number", "default": "ten"},
            {"name": "a", "type": "string"},
            {"name": "b", "type": "string", "required": true, "default": "x"}
        ]))
        .unwrap();
        let errors = check_specs(&bad).unwrap_err();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(check_specs(&specs()).is_ok());
        assert!(
            serde_json::from_value::<VariableSpec>(json!({"name": "x", "type": "date"})).is_err()
        );
    }
}

//! Typed pipeline inputs (docs/reference/configuration.md, "Inputs"): what
//! each input declares it accepts, and a request's input values checked
//! against the declarations.
//!
//! A public, unauthenticated endpoint must never pass free-form text to a
//! pipeline: every input is declared with a type, a string input must have a
//! pattern its whole value matches (the `regex-lite` crate: linear time, a
//! size limit on the compiled pattern, and classes and case folding that are
//! ASCII, so `\d` means `[0-9]`), and every value becomes a CodePipeline
//! variable of at most [`MAX_VALUE_CHARS`] characters.

use super::text::unreadable;
use regex_lite::{Regex, RegexBuilder};
use serde_json::{Map, Number, Value};
use std::collections::BTreeMap;

/// Inputs one pipeline may declare.
pub const MAX_INPUTS: usize = 50;
/// CodePipeline's limit on a variable value.
pub const MAX_VALUE_CHARS: usize = 1000;
/// The longest pattern text accepted.
pub const MAX_PATTERN_CHARS: usize = 1000;
/// The most a compiled pattern may take (`regex-lite`'s size limit).
const PATTERN_SIZE_LIMIT: usize = 256 * 1024;
/// The longest description, pipeline's or input's.
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Options a choice input may have.
pub const MAX_OPTIONS: usize = 100;
/// How much of an unknown input's name a problem repeats.
const MAX_ECHOED_NAME_CHARS: usize = 128;

/// CodePipeline's rule for variable names: `[A-Za-z0-9@\-_]{1,128}`.
pub fn is_valid_input_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'-' | b'_'))
}

/// One input's value, with its JSON type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputValue {
    Text(String),
    Bool(bool),
    Number(Number),
}

impl InputValue {
    /// The value as a CodePipeline variable: text as it is, booleans
    /// `true`/`false`, numbers in their shortest decimal form.
    pub fn variable_value(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Bool(b) => b.to_string(),
            Self::Number(n) => shortest_decimal(n),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Text(text) => Value::from(text.as_str()),
            Self::Bool(b) => Value::from(*b),
            Self::Number(n) => Value::Number(n.clone()),
        }
    }
}

/// `10` for 10.0, `0.5`, `-3`, never an exponent.
fn shortest_decimal(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    if f.fract() == 0.0 && f.abs() < 1e15 {
        // Integral floats print without a fraction.
        return format!("{}", f as i64);
    }
    // Rust prints the shortest text that reads back as the same f64, in
    // plain decimal notation.
    format!("{f}")
}

/// A pipeline's input values, defaults filled in, by name: equal maps are
/// the same input set.
pub type InputValues = BTreeMap<String, InputValue>;

/// Input values read back from their JSON object (as stored or queued):
/// strings, booleans and numbers; anything else is refused.
pub fn values_from_json(value: &Value) -> Option<InputValues> {
    let Value::Object(object) = value else {
        return None;
    };
    object
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(text) => InputValue::Text(text.clone()),
                Value::Bool(b) => InputValue::Bool(*b),
                Value::Number(n) => InputValue::Number(n.clone()),
                _ => return None,
            };
            Some((name.clone(), value))
        })
        .collect()
}

/// The input values as a JSON object.
pub fn values_to_json(values: &InputValues) -> Value {
    Value::Object(
        values
            .iter()
            .map(|(name, value)| (name.clone(), value.to_json()))
            .collect(),
    )
}

/// What an input accepts.
#[derive(Debug, Clone)]
pub enum InputKind {
    Choice {
        options: Vec<String>,
    },
    Boolean,
    Number {
        min: Option<f64>,
        max: Option<f64>,
        integer: bool,
    },
    String {
        pattern: Regex,
        max_length: usize,
    },
}

/// One declared input.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub kind: InputKind,
    pub default: Option<InputValue>,
    pub description: Option<String>,
    /// What a person is told a valid value looks like (the page shows it,
    /// never the pattern).
    pub hint: Option<String>,
}

/// Why one input of a request is refused. `input` is the input's name
/// (an unknown one cut to 128 characters); `detail` never repeats the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    pub input: String,
    pub detail: String,
}

impl std::fmt::Display for InputError {
    /// `env must be one of: a, b`; the detail alone for the request as a whole.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.input.is_empty() {
            f.write_str(&self.detail)
        } else {
            write!(f, "{} {}", self.input, self.detail)
        }
    }
}

/// Every error as one line: `env must be one of: a, b; replicas is required`.
pub fn errors_text(errors: &[InputError]) -> String {
    errors
        .iter()
        .map(InputError::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Input {
    /// `value` if it is of this input's type and within its bounds.
    fn check(&self, value: &Value) -> Result<InputValue, String> {
        match (&self.kind, value) {
            (InputKind::Choice { options }, Value::String(text)) => {
                if options.iter().any(|o| o == text) {
                    Ok(InputValue::Text(text.clone()))
                } else {
                    Err(format!("must be one of: {}", options.join(", ")))
                }
            }
            (InputKind::Choice { .. }, _) => Err("must be a string (one of the options)".into()),
            (InputKind::Boolean, Value::Bool(b)) => Ok(InputValue::Bool(*b)),
            (InputKind::Boolean, _) => Err("must be true or false".into()),
            (InputKind::Number { min, max, integer }, Value::Number(n)) => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if *integer && f.fract() != 0.0 {
                    return Err("must be a whole number".into());
                }
                if min.is_some_and(|min| f < min) || max.is_some_and(|max| f > max) {
                    return Err(format!("must be {}", bounds_text(*min, *max)));
                }
                let value = InputValue::Number(n.clone());
                if value.variable_value().chars().count() > MAX_VALUE_CHARS {
                    return Err("is too long a number".into());
                }
                Ok(value)
            }
            (InputKind::Number { .. }, _) => Err("must be a number".into()),
            (
                InputKind::String {
                    pattern,
                    max_length,
                },
                Value::String(text),
            ) => {
                if text.chars().count() > *max_length {
                    return Err(format!("must be at most {max_length} characters"));
                }
                // Whatever the pattern says: nothing invisible, NFC only.
                if let Some(why) = unreadable(text) {
                    return Err(why.to_string());
                }
                if !pattern.is_match(text) {
                    return Err(match &self.hint {
                        Some(hint) => format!("must be {hint}"),
                        None => format!("must match the pattern {}", pattern_text(pattern)),
                    });
                }
                Ok(InputValue::Text(text.clone()))
            }
            (InputKind::String { .. }, _) => Err("must be a string".into()),
        }
    }

    /// The declaration as the public catalog shows it.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        match &self.kind {
            InputKind::Choice { options } => {
                out.insert("type".into(), "choice".into());
                out.insert("options".into(), Value::from(options.clone()));
            }
            InputKind::Boolean => {
                out.insert("type".into(), "boolean".into());
            }
            InputKind::Number { min, max, integer } => {
                out.insert("type".into(), "number".into());
                for (name, bound) in [("min", min), ("max", max)] {
                    if let Some(bound) = bound {
                        out.insert(name.into(), serde_json::json!(bound));
                    }
                }
                out.insert("integer".into(), Value::from(*integer));
            }
            InputKind::String {
                pattern,
                max_length,
            } => {
                out.insert("type".into(), "string".into());
                out.insert("pattern".into(), Value::from(pattern_text(pattern)));
                out.insert("max_length".into(), Value::from(*max_length));
            }
        }
        if let Some(default) = &self.default {
            out.insert("default".into(), default.to_json());
        }
        if let Some(description) = &self.description {
            out.insert("description".into(), Value::from(description.as_str()));
        }
        if let Some(hint) = &self.hint {
            out.insert("hint".into(), Value::from(hint.as_str()));
        }
        out.insert("required".into(), Value::from(self.default.is_none()));
        Value::Object(out)
    }
}

/// The pattern as declared (the compiled one is anchored: `^(?:…)$`).
fn pattern_text(pattern: &Regex) -> &str {
    let text = pattern.as_str();
    text.strip_prefix("^(?:")
        .and_then(|t| t.strip_suffix(")$"))
        .unwrap_or(text)
}

fn bounds_text(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "a number".into(),
    }
}

/// The inputs of one pipeline, sorted by name: errors and the catalog list
/// them in that order.
#[derive(Debug, Clone, Default)]
pub struct Inputs(Vec<Input>);

impl Inputs {
    pub fn iter(&self) -> impl Iterator<Item = &Input> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads the `inputs` object of a pipeline's settings.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(declared) = value else {
            return Err("\"inputs\" must be an object of input declarations".into());
        };
        if declared.len() > MAX_INPUTS {
            return Err(format!(
                "{} inputs declared; at most {MAX_INPUTS}",
                declared.len()
            ));
        }
        let mut inputs = Vec::new();
        for (name, declaration) in declared {
            if !is_valid_input_name(name) {
                return Err(format!(
                    "input {:?}: not a valid name (1-128 of A-Z a-z 0-9 @ - _)",
                    cut(name, MAX_ECHOED_NAME_CHARS)
                ));
            }
            let input = parse_input(name, declaration)
                .map_err(|reason| format!("input {name}: {reason}"))?;
            inputs.push(input);
        }
        // By name, whatever order the JSON object kept (serde_json's order
        // depends on a feature other crates may turn on).
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self(inputs))
    }

    /// A request's `inputs` (absent, or a JSON object) checked against the
    /// declarations: every value, defaults filled in, or every error at once
    /// (unknown, missing, mistyped, out of range, not matching).
    pub fn resolve(&self, given: Option<&Value>) -> Result<InputValues, Vec<InputError>> {
        let empty = Map::new();
        let given = match given {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(given)) => given,
            Some(_) => {
                return Err(vec![InputError {
                    input: String::new(),
                    detail: "\"inputs\" must be an object of input values".into(),
                }])
            }
        };
        let mut errors = Vec::new();
        let unknown: std::collections::BTreeSet<&String> = given
            .keys()
            .filter(|name| !self.0.iter().any(|input| &input.name == *name))
            .collect();
        for name in unknown {
            errors.push(InputError {
                input: cut(name, MAX_ECHOED_NAME_CHARS),
                detail: "is not an input of this pipeline".into(),
            });
        }
        let mut values = InputValues::new();
        for input in &self.0 {
            let checked = match (given.get(&input.name), &input.default) {
                (Some(value), _) => input.check(value),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err("is required".into()),
            };
            match checked {
                Ok(value) => {
                    values.insert(input.name.clone(), value);
                }
                Err(detail) => errors.push(InputError {
                    input: input.name.clone(),
                    detail,
                }),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }

    /// The declarations as the public catalog shows them.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|input| (input.name.clone(), input.to_json()))
                .collect(),
        )
    }
}

pub(crate) fn cut(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

pub(crate) fn description_of(object: &Map<String, Value>) -> Result<Option<String>, String> {
    words_of(object, "description")
}

/// A field of words for people (`description`, `hint`): readable text of
/// at most [`MAX_DESCRIPTION_CHARS`] characters.
fn words_of(object: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::String(text)) if text.chars().count() <= MAX_DESCRIPTION_CHARS => {
            if let Some(why) = unreadable(text) {
                return Err(format!("{field:?} {why}"));
            }
            Ok(Some(text.clone()))
        }
        Some(Value::String(_)) => Err(format!(
            "{field:?} must be at most {MAX_DESCRIPTION_CHARS} characters"
        )),
        Some(_) => Err(format!("{field:?} must be a string")),
    }
}

pub(crate) fn only_fields(object: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(format!(
            "unknown field {:?} (allowed: {})",
            cut(unknown, 64),
            allowed.join(", ")
        )),
        None => Ok(()),
    }
}

fn optional_number(object: &Map<String, Value>, field: &str) -> Result<Option<f64>, String> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(format!("{field:?} must be a number")),
    }
}

/// One input's declaration: its type's fields, then what every input
/// may carry (a default, checked like a value; a description; a hint).
fn parse_input(name: &str, declaration: &Value) -> Result<Input, String> {
    let Value::Object(object) = declaration else {
        return Err("must be an object with a \"type\"".into());
    };
    let kind = match object.get("type").and_then(Value::as_str) {
        Some("choice") => parse_choice(object)?,
        Some("boolean") => {
            only_fields(object, &["type", "default", "description", "hint"])?;
            InputKind::Boolean
        }
        Some("number") => parse_number(object)?,
        Some("string") => parse_string(object)?,
        Some(other) => {
            return Err(format!(
                "unknown type {:?} (choice, boolean, number or string)",
                cut(other, 32)
            ))
        }
        None => return Err("needs a \"type\": choice, boolean, number or string".into()),
    };
    let mut input = Input {
        name: name.to_string(),
        kind,
        default: None,
        description: description_of(object)?,
        hint: words_of(object, "hint")?,
    };
    if let Some(default) = object.get("default") {
        let checked = input
            .check(default)
            .map_err(|reason| format!("its default {reason}"))?;
        input.default = Some(checked);
    }
    Ok(input)
}

/// A `choice`: 1 to [`MAX_OPTIONS`] options, each a value of at most
/// [`MAX_VALUE_CHARS`] characters.
fn parse_choice(object: &Map<String, Value>) -> Result<InputKind, String> {
    only_fields(
        object,
        &["type", "options", "default", "description", "hint"],
    )?;
    let options: Vec<String> = match object.get("options") {
        Some(Value::Array(options)) => options
            .iter()
            .map(|o| o.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or("\"options\" must be strings")?,
        _ => return Err("a choice needs \"options\": a list of strings".into()),
    };
    if options.is_empty() || options.len() > MAX_OPTIONS {
        return Err(format!("a choice needs 1 to {MAX_OPTIONS} options"));
    }
    if let Some(long) = options.iter().find(|o| o.chars().count() > MAX_VALUE_CHARS) {
        return Err(format!(
            "option {:?} is longer than {MAX_VALUE_CHARS} characters",
            cut(long, 32)
        ));
    }
    Ok(InputKind::Choice { options })
}

/// A `number`: optional `min` ≤ `max`, and whether it must be whole.
fn parse_number(object: &Map<String, Value>) -> Result<InputKind, String> {
    only_fields(
        object,
        &[
            "type",
            "min",
            "max",
            "integer",
            "default",
            "description",
            "hint",
        ],
    )?;
    let min = optional_number(object, "min")?;
    let max = optional_number(object, "max")?;
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err("\"min\" is greater than \"max\"".into());
        }
    }
    let integer = match object.get("integer") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("\"integer\" must be true or false".into()),
    };
    Ok(InputKind::Number { min, max, integer })
}

/// A `string`: a `pattern` its whole value must match (compiled within
/// [`PATTERN_SIZE_LIMIT`]), and a `max_length` of at most
/// [`MAX_VALUE_CHARS`].
fn parse_string(object: &Map<String, Value>) -> Result<InputKind, String> {
    only_fields(
        object,
        &[
            "type",
            "pattern",
            "max_length",
            "default",
            "description",
            "hint",
        ],
    )?;
    let text = match object.get("pattern") {
        Some(Value::String(text)) => text,
        Some(_) => return Err("\"pattern\" must be a string".into()),
        None => {
            return Err(
                "a string input needs a \"pattern\" its whole value must match \
                 (free text is never passed to a pipeline)"
                    .into(),
            )
        }
    };
    if text.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!(
            "\"pattern\" is longer than {MAX_PATTERN_CHARS} characters"
        ));
    }
    let pattern = RegexBuilder::new(&format!("^(?:{text})$"))
        .size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("\"pattern\" does not compile: {e}"))?;
    let max_length = match object.get("max_length") {
        None => MAX_VALUE_CHARS,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if (1..=MAX_VALUE_CHARS as u64).contains(&n) => n as usize,
            _ => {
                return Err(format!(
                    "\"max_length\" must be a whole number from 1 to {MAX_VALUE_CHARS}"
                ))
            }
        },
        Some(_) => return Err("\"max_length\" must be a number".into()),
    };
    Ok(InputKind::String {
        pattern,
        max_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs(declared: Value) -> Inputs {
        Inputs::parse(&declared).expect("valid declarations")
    }

    fn example() -> Inputs {
        inputs(json!({
            "env": {"type": "choice", "options": ["staging", "production"], "default": "staging"},
            "dry_run": {"type": "boolean", "default": false},
            "replicas": {"type": "number", "min": 1, "max": 10, "integer": true},
            "branch": {"type": "string", "pattern": "[a-z0-9][a-z0-9/-]{0,62}", "max_length": 63,
                       "description": "the branch to build"},
        }))
    }

    fn errors(result: Result<InputValues, Vec<InputError>>) -> Vec<(String, String)> {
        result
            .expect_err("refused")
            .into_iter()
            .map(|e| (e.input, e.detail))
            .collect()
    }

    #[test]
    fn values_are_checked_and_defaults_filled() {
        let values = example()
            .resolve(Some(&json!({"replicas": 3, "branch": "feature/x"})))
            .unwrap();
        let variables: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (k.clone(), v.variable_value()))
            .collect();
        assert_eq!(
            variables,
            [
                ("branch".to_string(), "feature/x".to_string()),
                ("dry_run".into(), "false".into()),
                ("env".into(), "staging".into()),
                ("replicas".into(), "3".into()),
            ]
        );
        assert_eq!(
            values_to_json(&values),
            json!({"branch": "feature/x", "dry_run": false, "env": "staging", "replicas": 3})
        );
    }

    #[test]
    fn every_error_is_listed_at_once_without_the_values() {
        let found = errors(example().resolve(Some(&json!({
            "env": "moon",
            "dry_run": "yes",
            "replicas": 2.5,
            "branch": "x; rm -rf /",
            "extra": 1,
        }))));
        assert_eq!(
            found,
            [
                (
                    "extra".to_string(),
                    "is not an input of this pipeline".to_string()
                ),
                (
                    "branch".into(),
                    "must match the pattern [a-z0-9][a-z0-9/-]{0,62}".into()
                ),
                ("dry_run".into(), "must be true or false".into()),
                ("env".into(), "must be one of: staging, production".into()),
                ("replicas".into(), "must be a whole number".into()),
            ]
        );
        let text = format!("{found:?}");
        assert!(!text.contains("rm -rf") && !text.contains("moon"), "{text}");
    }

    #[test]
    fn required_inputs_and_types_are_enforced_without_coercion() {
        assert_eq!(
            errors(example().resolve(None)),
            [
                ("branch".to_string(), "is required".to_string()),
                ("replicas".into(), "is required".into()),
            ]
        );
        let found = errors(example().resolve(Some(&json!({"replicas": "3", "branch": 7}))));
        assert_eq!(
            found,
            [
                ("branch".to_string(), "must be a string".to_string()),
                ("replicas".into(), "must be a number".into()),
            ]
        );
        for bad in [json!(0), json!(11), json!(-1)] {
            let found = errors(example().resolve(Some(&json!({"replicas": bad, "branch": "b"}))));
            assert_eq!(
                found,
                [(
                    "replicas".to_string(),
                    "must be between 1 and 10".to_string()
                )]
            );
        }
        assert_eq!(
            errors(example().resolve(Some(&json!([1, 2])))),
            [(
                String::new(),
                "\"inputs\" must be an object of input values".to_string()
            )]
        );
    }

    #[test]
    fn patterns_match_the_whole_value_and_lengths_are_bounded() {
        let i = inputs(json!({"tag": {"type": "string", "pattern": "v[0-9]+", "max_length": 5}}));
        assert!(i.resolve(Some(&json!({"tag": "v12"}))).is_ok());
        for bad in ["xv12", "v12x", "v12\nv1", "v123456"] {
            assert!(i.resolve(Some(&json!({"tag": bad}))).is_err(), "{bad:?}");
        }
        // An alternation cannot escape the anchors.
        let i = inputs(json!({"tag": {"type": "string", "pattern": "a|b"}}));
        assert!(i.resolve(Some(&json!({"tag": "a"}))).is_ok());
        assert!(i.resolve(Some(&json!({"tag": "ab"}))).is_err());
    }

    #[test]
    fn numbers_become_their_shortest_decimal_form() {
        let i = inputs(json!({"n": {"type": "number"}}));
        for (given, variable) in [
            (json!(10), "10"),
            (json!(10.0), "10"),
            (json!(0.5), "0.5"),
            (json!(-3), "-3"),
            (json!(1e21), "1000000000000000000000"),
            (json!(0.1), "0.1"),
            (json!(18446744073709551615u64), "18446744073709551615"),
        ] {
            let values = i.resolve(Some(&json!({ "n": given }))).unwrap();
            assert_eq!(values["n"].variable_value(), variable, "{given}");
        }
    }

    #[test]
    fn declarations_are_validated() {
        for (declared, expected) in [
            (
                json!({"s": {"type": "string"}}),
                "input s: a string input needs a \"pattern\"",
            ),
            (
                json!({"s": {"type": "string", "pattern": "(unclosed"}}),
                "input s: \"pattern\" does not compile",
            ),
            (
                json!({"s": {"type": "string", "pattern": "a{1000}{1000}"}}),
                "input s: \"pattern\" does not compile",
            ),
            (
                json!({"s": {"type": "string", "pattern": "a", "max_length": 1001}}),
                "input s: \"max_length\" must be",
            ),
            (
                json!({"c": {"type": "choice", "options": []}}),
                "input c: a choice needs 1 to",
            ),
            (
                json!({"c": {"type": "choice", "options": ["a"], "default": "b"}}),
                "input c: its default must be one of: a",
            ),
            (
                json!({"n": {"type": "number", "min": 5, "max": 1}}),
                "input n: \"min\" is greater",
            ),
            (
                json!({"n": {"type": "number", "max": 1, "default": 2}}),
                "input n: its default must be at most 1",
            ),
            (
                json!({"b": {"type": "boolean", "default": "true"}}),
                "input b: its default must be true or false",
            ),
            (
                json!({"b": {"type": "boolean", "pattern": "x"}}),
                "input b: unknown field \"pattern\"",
            ),
            (
                json!({"x": {"type": "file"}}),
                "input x: unknown type \"file\"",
            ),
            (json!({"x": {}}), "input x: needs a \"type\""),
            (
                json!({"bad name": {"type": "boolean"}}),
                "input \"bad name\": not a valid name",
            ),
            (
                json!({"d": {"type": "boolean", "description": "a\nb"}}),
                "input d: \"description\" must not contain",
            ),
            (json!([]), "\"inputs\" must be an object"),
        ] {
            let err = Inputs::parse(&declared).expect_err("refused");
            assert!(err.starts_with(expected), "{declared}: {err}");
        }
        let many: Map<String, Value> = (0..51)
            .map(|i| (format!("i{i}"), json!({"type": "boolean"})))
            .collect();
        assert!(Inputs::parse(&Value::Object(many))
            .unwrap_err()
            .contains("at most 50"));
    }

    #[test]
    fn input_names_follow_codepipeline_variable_names() {
        assert!(is_valid_input_name("a@b-c_D9"));
        assert!(is_valid_input_name(&"a".repeat(128)));
        assert!(!is_valid_input_name(&"a".repeat(129)));
        assert!(!is_valid_input_name(""));
        assert!(!is_valid_input_name("a.b"));
        assert!(!is_valid_input_name("ü"));
    }

    #[test]
    fn the_catalog_shows_declarations_not_values() {
        let catalog = example().to_json();
        assert_eq!(
            catalog["branch"],
            json!({"type": "string", "pattern": "[a-z0-9][a-z0-9/-]{0,62}", "max_length": 63,
                   "description": "the branch to build", "required": true})
        );
        assert_eq!(
            catalog["replicas"],
            json!({"type": "number", "min": 1.0, "max": 10.0, "integer": true, "required": true})
        );
        assert_eq!(catalog["env"]["default"], "staging");
        assert_eq!(catalog["env"]["required"], false);
    }

    #[test]
    fn a_hint_replaces_the_pattern_in_what_people_read() {
        let i = inputs(
            json!({"ref": {"type": "string", "pattern": "[a-z0-9-]{1,40}",
            "hint": "1 to 40 lowercase letters, digits or dashes"}}),
        );
        assert_eq!(
            errors(i.resolve(Some(&json!({"ref": "Main"})))),
            [(
                "ref".into(),
                "must be 1 to 40 lowercase letters, digits or dashes".into()
            )]
        );
        assert_eq!(
            i.to_json()["ref"]["hint"],
            "1 to 40 lowercase letters, digits or dashes"
        );
        assert_eq!(
            i.to_json()["ref"]["pattern"],
            "[a-z0-9-]{1,40}",
            "tools still see it"
        );
        for bad in [
            json!({"type": "boolean", "hint": 3}),
            json!({"type": "boolean", "hint": "a\u{202E}b"}),
        ] {
            let refused = Inputs::parse(&json!({"b": bad})).expect_err("refused");
            assert!(refused.starts_with("input b: \"hint\""), "{refused}");
        }
    }

    #[test]
    fn invisible_or_decomposed_values_are_refused_whatever_the_pattern_says() {
        // `(?s).*` admits anything, `[^/]+` anything but a slash.
        let i = inputs(json!({
            "any": {"type": "string", "pattern": "(?s).*"},
            "part": {"type": "string", "pattern": "[^/]+"},
        }));
        for hostile in [
            "main\r\nx",
            "ma\u{202E}in",
            "ma\u{200B}in",
            "cafe\u{301}",
            "a\u{2069}",
            // Default-ignorable and blank look-alikes, each once a run of
            // its own behind a loose pattern.
            "main\u{3164}",
            "main\u{FFA0}",
            "main\u{FE0F}",
            "ma\u{34F}in",
            "main\u{2800}",
            "main\u{A0}",
        ] {
            for name in ["any", "part"] {
                let refused =
                    errors(i.resolve(Some(&json!({"any": "ok", "part": "ok", name: hostile}))));
                assert_eq!(refused.len(), 1, "{hostile:?}: {refused:?}");
                assert_eq!(refused[0].0, name);
                assert!(!refused[0].1.contains(hostile), "never echoed: {refused:?}");
            }
        }
        assert!(i
            .resolve(Some(&json!({"any": "caf\u{e9} 東京", "part": "release-1"})))
            .is_ok());
    }

    /// A pattern means what it looks like: `\d`, `\w`, `\s` and `(?i)` are
    /// ASCII, so no other script's digits or look-alike letters get through;
    /// Unicode classes do not compile (the service does not start).
    #[test]
    fn patterns_are_ascii_classes_and_ascii_case_folding() {
        let i = inputs(json!({"v": {"type": "string", "pattern": "v\\d+\\.\\w+"},
                              "b": {"type": "string", "pattern": "(?i)[a-z]+"},
                              "s": {"type": "string", "pattern": "a\\sb"}}));
        assert!(i
            .resolve(Some(&json!({"v": "v12.rc_1", "b": "Main", "s": "a b"})))
            .is_ok());
        for (name, value) in [
            ("v", "v\u{661}\u{662}.rc"),   // Arabic-Indic digits
            ("v", "v\u{FF11}\u{FF12}.rc"), // fullwidth digits
            ("v", "v1.r\u{e9}"),           // a letter outside ASCII for \w
            ("b", "ma\u{17F}ter"),         // LONG S folds to s in Unicode
            ("s", "a\u{2002}b"),           // en space for \s
        ] {
            let refused = errors(i.resolve(Some(&json!({ name: value }))));
            assert!(
                refused.iter().any(|(input, why)| input == name
                    && (why.contains("must match") || why.contains("U+2002"))),
                "{name}={value:?}: {refused:?}"
            );
        }
        for pattern in ["\\p{L}+", "\\pN", "[\\p{Greek}]"] {
            let declared = json!({"u": {"type": "string", "pattern": pattern}});
            let refused = Inputs::parse(&declared).err().unwrap_or_default();
            assert!(
                refused.contains("input u: \"pattern\" does not compile"),
                "{pattern}: {refused:?}"
            );
        }
    }

    proptest::proptest! {
        /// Whatever a value holds, an accepted one is readable text: no
        /// control, format or separator character, and in NFC.
        #[test]
        fn accepted_values_are_always_readable(value in "\\PC{0,8}[\u{0}-\u{1F}\u{7F}\u{AD}\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2060}-\u{2069}\u{FEFF}\u{301}]?\\PC{0,8}") {
            let i = inputs(json!({"any": {"type": "string", "pattern": "(?s).*"}}));
            match i.resolve(Some(&json!({"any": value.clone()}))) {
                Ok(values) => {
                    proptest::prop_assert!(crate::rules::text::unreadable(&value).is_none());
                    proptest::prop_assert_eq!(values["any"].variable_value(), value);
                }
                Err(errors) => {
                    proptest::prop_assert!(crate::rules::text::unreadable(&value).is_some());
                    proptest::prop_assert_eq!(errors.len(), 1);
                }
            }
        }
    }
}

//! The catalog: the `PIPELINES` allowlist (public name → CodePipeline name,
//! CodePipeline's rule for names) and each public pipeline's settings as
//! `PIPELINE_SETTINGS` declares them (description, coalescing, its queue's
//! bound, typed inputs); docs/reference/configuration.md.

use super::inputs::{cut, description_of, only_fields, Inputs};
use serde_json::Value;
use std::collections::BTreeMap;

/// One allowlisted pipeline: the name the public uses and the CodePipeline name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub public: String,
    pub name: String,
}

/// The `PIPELINES` allowlist; never empty, the first entry is the default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipelines(Vec<Pipeline>);

/// CodePipeline's own rule for names: `[A-Za-z0-9.@_-]{1,100}`.
pub fn is_valid_pipeline_name(name: &str) -> bool {
    (1..=100).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'@' | b'_' | b'-'))
}

impl Pipelines {
    /// `name` or `public=pipeline`, comma separated.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries: Vec<Pipeline> = Vec::new();
        for item in text.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(
                    "empty entry (expected name or public=pipeline, comma separated)".into(),
                );
            }
            let (public, name) = match item.split_once('=') {
                Some((public, name)) => (public.trim(), name.trim()),
                None => (item, item),
            };
            for part in [public, name] {
                if !is_valid_pipeline_name(part) {
                    return Err(format!(
                        "{part:?} is not a valid name (1-100 of A-Z a-z 0-9 . @ _ -)"
                    ));
                }
            }
            if entries.iter().any(|p| p.public == public) {
                return Err(format!("public name {public:?} appears twice"));
            }
            entries.push(Pipeline {
                public: public.to_string(),
                name: name.to_string(),
            });
        }
        Ok(Self(entries))
    }

    pub fn default_pipeline(&self) -> &Pipeline {
        &self.0[0]
    }

    pub fn by_public(&self, public: &str) -> Option<&Pipeline> {
        self.0.iter().find(|p| p.public == public)
    }

    /// Is this CodePipeline name allowlisted?
    pub fn by_name(&self, name: &str) -> Option<&Pipeline> {
        self.0.iter().find(|p| p.name == name)
    }

    pub fn public_names(&self) -> Vec<&str> {
        self.0.iter().map(|p| p.public.as_str()).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Pipeline> {
        self.0.iter()
    }
}

/// Runs of one pipeline pending at once when `max_pending` is not set.
pub const DEFAULT_MAX_PENDING: u64 = 3;
/// The most `max_pending` may be.
pub const MAX_PENDING_LIMIT: u64 = 100;
/// Slots of `max_pending` only keyed triggers may fill, when
/// `reserved_pending` is not set (fewer when `max_pending` is 1).
pub const DEFAULT_RESERVED_PENDING: u64 = 1;

/// One public pipeline's settings.
#[derive(Debug, Clone)]
pub struct PipelineSetting {
    pub description: Option<String>,
    /// Triggers join a pending run of the same input set (default on).
    pub coalesce: bool,
    /// The most runs of this pipeline pending at once, over all input sets
    /// (`max_pending`, default [`DEFAULT_MAX_PENDING`]); a trigger that would
    /// open one more is refused, charged nothing.
    pub max_pending: u64,
    /// Of `max_pending`, the slots only keyed triggers may fill
    /// (`reserved_pending`, 0 to `max_pending` - 1; default
    /// [`DEFAULT_RESERVED_PENDING`], or 0 when `max_pending` is 1):
    /// anonymous triggers may have at most `max_pending` - this pending.
    pub reserved_pending: u64,
    pub inputs: Inputs,
}

impl Default for PipelineSetting {
    fn default() -> Self {
        Self {
            description: None,
            coalesce: true,
            max_pending: DEFAULT_MAX_PENDING,
            reserved_pending: DEFAULT_RESERVED_PENDING,
            inputs: Inputs::default(),
        }
    }
}

/// The bound of one CodePipeline's queue (over the public names that
/// point at it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Pending runs at most, every lane.
    pub max_pending: u64,
    /// Of those, the slots only keyed runs may fill.
    pub reserved_pending: u64,
}

impl Bound {
    /// Pending anonymous runs at most.
    pub fn anonymous_max(&self) -> u64 {
        self.max_pending - self.reserved_pending
    }
}

/// `PIPELINE_SETTINGS`: settings by public pipeline name; a pipeline not
/// named has the defaults.
#[derive(Debug, Clone, Default)]
pub struct PipelineSettings(BTreeMap<String, PipelineSetting>);

impl PipelineSettings {
    /// Reads `PIPELINE_SETTINGS` (a JSON object keyed by public name, each in
    /// `pipelines`). The error names the pipeline and the input at fault.
    pub fn parse(text: &str, pipelines: &Pipelines) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let Value::Object(by_public) = value else {
            return Err("must be a JSON object keyed by public pipeline name".into());
        };
        let mut settings = BTreeMap::new();
        for (public, setting) in by_public {
            if pipelines.by_public(&public).is_none() {
                return Err(format!(
                    "{:?} is not a public name in PIPELINES ({})",
                    cut(&public, 100),
                    pipelines.public_names().join(", ")
                ));
            }
            let parsed = parse_setting(&setting).map_err(|reason| format!("{public}: {reason}"))?;
            settings.insert(public, parsed);
        }
        Ok(Self(settings))
    }

    /// The bound of a CodePipeline's queue: every public name that points
    /// at it shares one lane and one bound (docs/reference/configuration.md):
    /// the tightest `max_pending` of them, and the most `reserved_pending`
    /// any of them asks that fits under it.
    pub fn bound(&self, pipelines: &Pipelines, target: &str) -> Bound {
        let aliases: Vec<&PipelineSetting> = pipelines
            .iter()
            .filter(|p| p.name == target)
            .map(|p| self.of(&p.public))
            .collect();
        let max_pending = aliases
            .iter()
            .map(|s| s.max_pending)
            .min()
            .unwrap_or(DEFAULT_MAX_PENDING);
        let reserved_pending = aliases
            .iter()
            .map(|s| s.reserved_pending)
            .max()
            .unwrap_or(DEFAULT_RESERVED_PENDING)
            .min(max_pending - 1);
        Bound {
            max_pending,
            reserved_pending,
        }
    }

    /// The settings of a public pipeline (the defaults if it has none).
    pub fn of(&self, public: &str) -> &PipelineSetting {
        static DEFAULT: std::sync::LazyLock<PipelineSetting> =
            std::sync::LazyLock::new(PipelineSetting::default);
        self.0.get(public).unwrap_or(&DEFAULT)
    }
}

fn parse_setting(value: &Value) -> Result<PipelineSetting, String> {
    let Value::Object(object) = value else {
        return Err(
            "must be an object (description, coalesce, max_pending, reserved_pending, inputs)"
                .into(),
        );
    };
    only_fields(
        object,
        &[
            "description",
            "coalesce",
            "max_pending",
            "reserved_pending",
            "inputs",
        ],
    )?;
    let max_pending = match object.get("max_pending") {
        None => DEFAULT_MAX_PENDING,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if (1..=MAX_PENDING_LIMIT).contains(&n) => n,
            _ => {
                return Err(format!(
                    "\"max_pending\" must be a whole number from 1 to {MAX_PENDING_LIMIT}"
                ))
            }
        },
        Some(_) => return Err("\"max_pending\" must be a number".into()),
    };
    let reserved_pending = match object.get("reserved_pending") {
        None => DEFAULT_RESERVED_PENDING.min(max_pending - 1),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(n) if n < max_pending => n,
            _ => {
                return Err(format!(
                    "\"reserved_pending\" must be a whole number from 0 to max_pending - 1 ({})",
                    max_pending - 1
                ))
            }
        },
        Some(_) => return Err("\"reserved_pending\" must be a number".into()),
    };
    let coalesce = match object.get("coalesce") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("\"coalesce\" must be true or false".into()),
    };
    let inputs = match object.get("inputs") {
        None => Inputs::default(),
        Some(inputs) => Inputs::parse(inputs)?,
    };
    Ok(PipelineSetting {
        description: description_of(object)?,
        coalesce,
        max_pending,
        reserved_pending,
        inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines_map_public_names_and_keep_order() {
        let p = Pipelines::parse("app, docs=docs-pipeline-v2").unwrap();
        assert_eq!(p.default_pipeline().public, "app");
        assert_eq!(p.default_pipeline().name, "app");
        assert_eq!(p.by_public("docs").unwrap().name, "docs-pipeline-v2");
        assert!(p.by_public("docs-pipeline-v2").is_none());
        assert_eq!(p.by_name("docs-pipeline-v2").unwrap().public, "docs");
        assert_eq!(p.public_names(), ["app", "docs"]);
    }

    #[test]
    fn pipeline_names_follow_codepipeline_rules() {
        assert!(is_valid_pipeline_name("my.pipe@1_x-y"));
        assert!(is_valid_pipeline_name(&"a".repeat(100)));
        assert!(!is_valid_pipeline_name(&"a".repeat(101)));
        assert!(!is_valid_pipeline_name(""));
        assert!(!is_valid_pipeline_name("a/b"));
        assert!(!is_valid_pipeline_name("ünicode"));
    }
    #[test]
    fn max_pending_defaults_to_three_and_is_bounded() {
        let pipelines = Pipelines::parse("app,docs").unwrap();
        let settings =
            PipelineSettings::parse(r#"{"app": {"max_pending": 10}}"#, &pipelines).unwrap();
        assert_eq!(settings.of("app").max_pending, 10);
        assert_eq!(settings.of("docs").max_pending, DEFAULT_MAX_PENDING);
        refused_naming(
            "max_pending",
            &pipelines,
            &[
                r#"{"app": {"max_pending": 0}}"#,
                r#"{"app": {"max_pending": 101}}"#,
                r#"{"app": {"max_pending": 2.5}}"#,
                r#"{"app": {"max_pending": "3"}}"#,
            ],
        );
    }

    /// Each of `bads` is refused with an error that names `field`.
    fn refused_naming(field: &str, pipelines: &Pipelines, bads: &[&str]) {
        for bad in bads {
            let err = PipelineSettings::parse(bad, pipelines).unwrap_err();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn reserved_pending_defaults_to_one_slot_that_fits_and_is_bounded() {
        let pipelines = Pipelines::parse("app,docs,one").unwrap();
        let settings = PipelineSettings::parse(
            r#"{"app": {"max_pending": 10, "reserved_pending": 9}, "one": {"max_pending": 1}}"#,
            &pipelines,
        )
        .unwrap();
        assert_eq!(settings.of("app").reserved_pending, 9);
        assert_eq!(
            settings.of("docs").reserved_pending,
            DEFAULT_RESERVED_PENDING
        );
        // One pending run at most: none of it can be kept for keys unless asked.
        assert_eq!(settings.of("one").reserved_pending, 0);
        refused_naming(
            "reserved_pending",
            &pipelines,
            &[
                r#"{"app": {"reserved_pending": 3}}"#,
                r#"{"app": {"max_pending": 1, "reserved_pending": 1}}"#,
                r#"{"app": {"reserved_pending": -1}}"#,
                r#"{"app": {"reserved_pending": 0.5}}"#,
                r#"{"app": {"reserved_pending": "1"}}"#,
            ],
        );
    }

    #[test]
    fn aliases_of_one_codepipeline_share_the_tightest_bound() {
        let pipelines = Pipelines::parse("app=x,app2=x,docs=y").unwrap();
        let settings = PipelineSettings::parse(
            r#"{"app": {"max_pending": 5, "reserved_pending": 1},
                "app2": {"max_pending": 2, "reserved_pending": 0},
                "docs": {"max_pending": 4, "reserved_pending": 3}}"#,
            &pipelines,
        )
        .unwrap();
        let shared = settings.bound(&pipelines, "x");
        assert_eq!(
            shared,
            Bound {
                max_pending: 2,
                reserved_pending: 1
            }
        );
        assert_eq!(shared.anonymous_max(), 1);
        assert_eq!(settings.bound(&pipelines, "y").anonymous_max(), 1);
        // A name without settings has the defaults; one CodePipeline alone
        // has its own.
        let plain = Pipelines::parse("a").unwrap();
        let none = PipelineSettings::parse("{}", &plain).unwrap();
        assert_eq!(
            none.bound(&plain, "a"),
            Bound {
                max_pending: DEFAULT_MAX_PENDING,
                reserved_pending: DEFAULT_RESERVED_PENDING
            }
        );
    }

    #[test]
    fn pipeline_settings_name_the_pipeline_and_the_input_at_fault() {
        let pipelines = Pipelines::parse("app=app-pipeline,docs").unwrap();
        let settings = PipelineSettings::parse(
            r#"{"app": {"description": "The app", "coalesce": false,
                        "inputs": {"env": {"type": "choice", "options": ["a"]}}}}"#,
            &pipelines,
        )
        .unwrap();
        let app = settings.of("app");
        assert_eq!(app.description.as_deref(), Some("The app"));
        assert!(!app.coalesce);
        assert_eq!(app.inputs.iter().count(), 1);
        let docs = settings.of("docs");
        assert!(docs.coalesce && docs.inputs.is_empty() && docs.description.is_none());
        for (text, expected) in [
            (
                r#"{"nope": {}}"#,
                "\"nope\" is not a public name in PIPELINES (app, docs)",
            ),
            (
                r#"{"app-pipeline": {}}"#,
                "\"app-pipeline\" is not a public name",
            ),
            (
                r#"{"app": {"inputs": {"s": {"type": "string"}}}}"#,
                "app: input s: a string input needs",
            ),
            (
                r#"{"app": {"colesce": true}}"#,
                "app: unknown field \"colesce\"",
            ),
            (
                r#"{"app": {"coalesce": "yes"}}"#,
                "app: \"coalesce\" must be true or false",
            ),
            (r#"[]"#, "must be a JSON object"),
            (r#"{"#, "not JSON"),
        ] {
            let err = PipelineSettings::parse(text, &pipelines).expect_err("refused");
            assert!(err.starts_with(expected), "{text}: {err}");
        }
    }
}

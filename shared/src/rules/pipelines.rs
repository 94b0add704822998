//! Pipelines by name: the `PIPELINES` allowlist (public name → CodePipeline
//! name), CodePipeline's rule for names, and the execution states
//! CodePipeline reports. Both the configuration and the event parser use
//! these, so they live here, importing neither.

use super::trigger::TriggerStatus;

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

/// A pipeline execution's state, as CodePipeline names it in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelineState {
    Started,
    Resumed,
    Stopping,
    Stopped,
    Succeeded,
    Failed,
    Superseded,
    Canceled,
}

impl PipelineState {
    pub const ALL: [PipelineState; 8] = [
        Self::Started,
        Self::Resumed,
        Self::Stopping,
        Self::Stopped,
        Self::Succeeded,
        Self::Failed,
        Self::Superseded,
        Self::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Resumed => "RESUMED",
            Self::Stopping => "STOPPING",
            Self::Stopped => "STOPPED",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Superseded => "SUPERSEDED",
            Self::Canceled => "CANCELED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What a public trigger's status becomes. `None`: the execution is
    /// still running (the worker already recorded `started`).
    pub fn trigger_status(self) -> Option<TriggerStatus> {
        match self {
            Self::Succeeded => Some(TriggerStatus::Succeeded),
            Self::Failed => Some(TriggerStatus::Failed),
            // A canceled execution was stopped before it ran to its end.
            Self::Stopped | Self::Canceled => Some(TriggerStatus::Stopped),
            Self::Superseded => Some(TriggerStatus::Superseded),
            // A failed execution can be retried: it runs again.
            Self::Resumed => Some(TriggerStatus::Started),
            Self::Started | Self::Stopping => None,
        }
    }
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
}

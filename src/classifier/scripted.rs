//! Scripted outcomes for integration tests against this server: a JSON fixtures file says
//! "documents like this come back as X", "…fail with this message" or "…take this long".
//! The file is re-read when it changes; unmatched documents go to the configured backend.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;

use super::{Classification, Rule};

/// What is known about the document being classified, for matching.
pub struct DocumentFacts<'a> {
    pub file_name: &'a str,
    pub file_id: &'a str,
    pub sha256: &'a str,
    pub project_id: &'a str,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixturesFile {
    fixtures: Vec<Fixture>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    #[serde(rename = "match", default)]
    matcher: Matcher,
    #[serde(flatten)]
    outcome: ScriptedOutcome,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matcher {
    file_name: Option<String>,
    file_id: Option<String>,
    sha256: Option<String>,
    project_id: Option<String>,
    /// Matches when every listed type is among the job's rule types.
    rule_types: Option<Vec<String>>,
}

/// The scripted part of a job's outcome.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScriptedOutcome {
    /// Wait this long before answering (the job stays RUNNING meanwhile).
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// End the job FAILED with this message.
    #[serde(default)]
    pub fail: Option<String>,
    /// Answer this instead of asking the backend.
    #[serde(default)]
    pub result: Option<Classification>,
}

/// The fixtures as last read, with the file's modification time then.
type Loaded = (Option<SystemTime>, Arc<Vec<Fixture>>);

/// A fixtures file, re-read whenever its modification time changes.
#[derive(Debug, Clone)]
pub struct Fixtures {
    path: PathBuf,
    loaded: Arc<Mutex<Loaded>>,
}

impl Fixtures {
    /// Loads the file now so that a broken file stops start-up with a clear message.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let fixtures = Self {
            path: path.to_path_buf(),
            loaded: Arc::new(Mutex::new((None, Arc::new(Vec::new())))),
        };
        fixtures.current()?;
        Ok(fixtures)
    }

    fn current(&self) -> anyhow::Result<Arc<Vec<Fixture>>> {
        let modified = std::fs::metadata(&self.path)?.modified().ok();
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.0.is_none() || loaded.0 != modified {
            let text = std::fs::read_to_string(&self.path)?;
            let file: FixturesFile = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("fixtures file {}: {e}", self.path.display()))?;
            *loaded = (modified, Arc::new(file.fixtures));
        }
        Ok(loaded.1.clone())
    }

    /// The first fixture matching the document, if any. A file that became unreadable keeps
    /// the last good version (and says so in the log).
    pub fn outcome_for(
        &self,
        facts: &DocumentFacts<'_>,
        rules: &[Rule],
    ) -> Option<ScriptedOutcome> {
        let fixtures = match self.current() {
            Ok(fixtures) => fixtures,
            Err(error) => {
                tracing::warn!(%error, "fixtures file unreadable; keeping the previous version");
                self.loaded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .1
                    .clone()
            }
        };
        fixtures
            .iter()
            .find(|fixture| fixture.matcher.matches(facts, rules))
            .map(|fixture| fixture.outcome.clone())
    }
}

impl Matcher {
    fn matches(&self, facts: &DocumentFacts<'_>, rules: &[Rule]) -> bool {
        let glob_ok = self
            .file_name
            .as_deref()
            .is_none_or(|g| glob_match(g, facts.file_name));
        let id_ok = self.file_id.as_deref().is_none_or(|id| id == facts.file_id);
        let sha_ok = self
            .sha256
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case(facts.sha256));
        let project_ok = self
            .project_id
            .as_deref()
            .is_none_or(|p| p == facts.project_id);
        let types_ok = self
            .rule_types
            .as_ref()
            .is_none_or(|types| types.iter().all(|t| rules.iter().any(|r| &r.label == t)));
        glob_ok && id_ok && sha_ok && project_ok && types_ok
    }
}

/// `*` matches any run of characters, `?` exactly one.
fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let (mut star, mut star_t) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            star_t = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            star_t += 1;
            t = star_t;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("slow-*", "slow-1.txt"));
        assert!(glob_match("*.pdf", "a.pdf"));
        assert!(!glob_match("*.pdf", "a.txt"));
        assert!(glob_match("a?c", "abc"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "acd"));
    }
}

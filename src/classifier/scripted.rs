//! Scripted outcomes for integration tests against this server: a JSON fixtures file says
//! "documents like this come back as X", "…fail with this message" or "…take this long", and
//! (when fault injection is enabled) "this request answers 429 twice". The file is re-read
//! when it changes; unmatched documents go to the configured backend.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
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
    #[serde(default)]
    fixtures: Vec<Fixture>,
    #[serde(default)]
    api_faults: Vec<ApiFault>,
}

/// An HTTP answer forced on matching requests, a given number of times.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFault {
    #[serde(rename = "match", default)]
    pub matcher: RequestMatcher,
    /// The status to answer (4xx or 5xx).
    pub status: u16,
    /// How many matching requests get the fault before requests pass again.
    #[serde(default = "one")]
    pub times: u64,
    /// Sent as `Retry-After` when set.
    #[serde(default)]
    pub retry_after_seconds: Option<u64>,
    #[serde(default)]
    pub detail: Option<String>,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMatcher {
    /// HTTP method, e.g. `POST`; any when absent.
    pub method: Option<String>,
    /// Glob over the path, e.g. `/api/v2/classify` or `/api/v1/beta/files*`.
    pub path: Option<String>,
    pub project_id: Option<String>,
    /// Headers that must be present with these values (names case-insensitive).
    #[serde(default)]
    pub headers: HashMap<String, String>,
}

impl RequestMatcher {
    pub fn matches(
        &self,
        method: &str,
        path: &str,
        project_id: Option<&str>,
        header: impl Fn(&str) -> Option<String>,
    ) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self.path.as_deref().is_none_or(|p| glob_match(p, path))
            && self
                .project_id
                .as_deref()
                .is_none_or(|p| Some(p) == project_id)
            && self
                .headers
                .iter()
                .all(|(name, value)| header(name).as_deref() == Some(value.as_str()))
    }
}

/// The loaded file: document fixtures, API faults and how often each fault has fired.
#[derive(Debug, Default)]
struct Script {
    fixtures: Vec<Fixture>,
    api_faults: Vec<ApiFault>,
    fired: Vec<AtomicU64>,
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
    /// Answer this instead of asking the backend (for the page-level endpoint: on every page
    /// that `pages` does not name).
    #[serde(default)]
    pub result: Option<Classification>,
    /// Page-level answers keyed by 0-based page index (`"0"`, `"1"`, …), for
    /// `POST /v1/ade/classify`; pages not named here get `result`, or the backend's answer when
    /// there is none. String keys because JSON object keys are strings; checked at load.
    #[serde(default)]
    pub pages: BTreeMap<String, Classification>,
}

impl ScriptedOutcome {
    /// The scripted answer for one page (0-based), if the fixture gives one.
    pub fn page_result(&self, index: usize) -> Option<&Classification> {
        self.pages.get(&index.to_string()).or(self.result.as_ref())
    }
}

/// The script as last read, with the file's modification time then.
type Loaded = (Option<SystemTime>, Arc<Script>);

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
            loaded: Arc::new(Mutex::new((None, Arc::new(Script::default())))),
        };
        fixtures.current()?;
        Ok(fixtures)
    }

    fn current(&self) -> anyhow::Result<Arc<Script>> {
        let modified = std::fs::metadata(&self.path)?.modified().ok();
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if loaded.0.is_none() || loaded.0 != modified {
            let text = std::fs::read_to_string(&self.path)?;
            let file: FixturesFile = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("fixtures file {}: {e}", self.path.display()))?;
            if let Some(fault) = file
                .api_faults
                .iter()
                .find(|f| !(400..=599).contains(&f.status))
            {
                anyhow::bail!(
                    "fixtures file {}: api fault status {} is not a 4xx or 5xx",
                    self.path.display(),
                    fault.status
                );
            }
            if let Some(key) = file
                .fixtures
                .iter()
                .flat_map(|f| f.outcome.pages.keys())
                .find(|key| key.parse::<usize>().map(|n| n.to_string()) != Ok(key.to_string()))
            {
                anyhow::bail!(
                    "fixtures file {}: page key {key:?} is not a 0-based page number like \"0\"",
                    self.path.display()
                );
            }
            let fired = file.api_faults.iter().map(|_| AtomicU64::new(0)).collect();
            let script = Script {
                fixtures: file.fixtures,
                api_faults: file.api_faults,
                fired,
            };
            *loaded = (modified, Arc::new(script));
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
        self.script()
            .fixtures
            .iter()
            .find(|fixture| fixture.matcher.matches(facts, rules))
            .map(|fixture| fixture.outcome.clone())
    }
}

impl Fixtures {
    fn script(&self) -> Arc<Script> {
        match self.current() {
            Ok(script) => script,
            Err(error) => {
                tracing::warn!(%error, "fixtures file unreadable; keeping the previous version");
                self.loaded
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .1
                    .clone()
            }
        }
    }

    /// The first API fault that matches the request and has not yet fired its `times`;
    /// counts the firing.
    pub fn fault_for(
        &self,
        method: &str,
        path: &str,
        project_id: Option<&str>,
        header: impl Fn(&str) -> Option<String>,
    ) -> Option<ApiFault> {
        let script = self.script();
        script
            .api_faults
            .iter()
            .enumerate()
            .find_map(|(index, fault)| {
                if !fault.matcher.matches(method, path, project_id, &header) {
                    return None;
                }
                let fired = script.fired[index].fetch_add(1, Ordering::SeqCst);
                (fired < fault.times).then(|| fault.clone())
            })
    }

    /// Whether the file declares API faults (so start-up can warn when they stay disabled).
    pub fn has_api_faults(&self) -> bool {
        !self.script().api_faults.is_empty()
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
    use super::{glob_match, Fixtures};

    fn load(json: &str) -> anyhow::Result<Fixtures> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), json)?;
        Fixtures::load(file.path())
    }

    #[test]
    fn page_keys_must_be_page_numbers() {
        let page = r#"{"type": "invoice", "confidence": 0.5, "reasoning": "r"}"#;
        let fixture = |key: &str| format!(r#"{{"fixtures": [{{"pages": {{"{key}": {page}}}}}]}}"#);
        let scripted = load(&fixture("2")).expect("a numeric page key loads");
        let facts = super::DocumentFacts {
            file_name: "a.pdf",
            file_id: "",
            sha256: "",
            project_id: "p",
        };
        let outcome = scripted.outcome_for(&facts, &[]).expect("matches anything");
        assert!(outcome.page_result(2).is_some());
        assert!(outcome.page_result(0).is_none());
        for bad in ["first", "-1", "01", ""] {
            let error = load(&fixture(bad)).expect_err(bad).to_string();
            assert!(error.contains("0-based page number"), "{bad}: {error}");
        }
    }

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

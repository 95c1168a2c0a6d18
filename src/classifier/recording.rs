//! Record and replay of the `openai` backend's model exchanges: one run against a real model
//! with `CLASSIFYD_MODEL_RECORD` writes them to a file, later runs with `CLASSIFYD_MODEL_REPLAY`
//! answer from that file alone — no network, no key — so a CI job gets a real model's answers
//! deterministically.
//!
//! The file is JSON lines, one exchange per line:
//! `{"key": "<hex sha256>", "model": "…", "status": 200, "body": "<response body>", "request": {…}}`.
//! `key` is the SHA-256 of the request body in canonical form (object keys sorted, no
//! whitespace), so a replayed request matches when the model, messages, `response_format` and
//! every other field are the same as when recorded. `request` is there for people reading the
//! file; replay looks at `key`, `status` and `body` only. Only answers that depend on the request
//! alone are recorded (2xx, and the 400/422 refusals of a request format); rate limits, server
//! errors and credentials errors are moments of the endpoint, not of the request. When a key
//! appears more than once, the last line wins, so recording again into the same file updates it.
//! The API key travels in a header and never reaches the file.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the backend does with its exchanges, when either setting is given.
#[derive(Debug)]
pub enum Tape {
    Record(Recorder),
    Replay(Replay),
}

impl Tape {
    /// From `CLASSIFYD_MODEL_RECORD` and `CLASSIFYD_MODEL_REPLAY`; errors name the setting.
    pub fn from_settings(
        record: Option<&Path>,
        replay: Option<&Path>,
    ) -> anyhow::Result<Option<Self>> {
        let record = record.filter(|p| !p.as_os_str().is_empty());
        let replay = replay.filter(|p| !p.as_os_str().is_empty());
        match (record, replay) {
            (Some(_), Some(_)) => anyhow::bail!(
                "CLASSIFYD_MODEL_RECORD and CLASSIFYD_MODEL_REPLAY are mutually exclusive: record in one run, replay in another"
            ),
            (Some(path), None) => Ok(Some(Self::Record(Recorder::open(path)?))),
            (None, Some(path)) => Ok(Some(Self::Replay(Replay::load(path)?))),
            (None, None) => Ok(None),
        }
    }
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
struct Line<'a> {
    key: String,
    #[serde(default)]
    model: Option<String>,
    status: u16,
    body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request: Option<std::borrow::Cow<'a, Value>>,
}

/// A recorded answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub status: u16,
    pub body: String,
}

/// Appends exchanges to the recording; one line per write, under a lock, so concurrent tasks
/// never interleave.
#[derive(Debug)]
pub struct Recorder {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl Recorder {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| {
                format!(
                    "CLASSIFYD_MODEL_RECORD: cannot open {} for appending",
                    path.display()
                )
            })?;
        tracing::info!(path = %path.display(), "recording model exchanges (CLASSIFYD_MODEL_RECORD)");
        Ok(Self {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Whether an answer with this status belongs in a recording (see the module documentation).
    pub fn keeps(status: u16) -> bool {
        matches!(status, 200..=299 | 400 | 422)
    }

    pub fn record(&self, request: &Value, status: u16, body: &str) -> Result<(), String> {
        let line = Line {
            key: key(request),
            model: request
                .get("model")
                .and_then(Value::as_str)
                .map(String::from),
            status,
            body: body.to_string(),
            request: Some(std::borrow::Cow::Borrowed(request)),
        };
        let mut text = serde_json::to_string(&line).map_err(|e| e.to_string())?;
        text.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(text.as_bytes()).map_err(|e| {
            format!(
                "cannot append to the recording {} (CLASSIFYD_MODEL_RECORD): {e}",
                self.path.display()
            )
        })
    }
}

/// The recorded exchanges, by key.
#[derive(Debug)]
pub struct Replay {
    path: PathBuf,
    exchanges: HashMap<String, Exchange>,
}

impl Replay {
    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("CLASSIFYD_MODEL_REPLAY: cannot read {}", path.display()))?;
        let mut exchanges = HashMap::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(line).with_context(|| {
                format!(
                    "CLASSIFYD_MODEL_REPLAY: line {} of {} is not a recorded exchange",
                    number + 1,
                    path.display()
                )
            })?;
            exchanges.insert(
                line.key,
                Exchange {
                    status: line.status,
                    body: line.body,
                },
            );
        }
        tracing::info!(path = %path.display(), exchanges = exchanges.len(), "replaying recorded model exchanges (CLASSIFYD_MODEL_REPLAY); the model endpoint is not contacted");
        Ok(Self {
            path: path.to_path_buf(),
            exchanges,
        })
    }

    pub fn lookup(&self, request: &Value) -> Option<&Exchange> {
        self.exchanges.get(&key(request))
    }

    /// The job's error when no request format of a classification was recorded.
    pub fn miss_message(&self, model: &str) -> String {
        format!(
            "No recorded model exchange matched this request (CLASSIFYD_MODEL_REPLAY={}, model {model}): the document, the rules or the model settings differ from the recorded run. Record it against a real model with CLASSIFYD_MODEL_RECORD.",
            self.path.display()
        )
    }
}

/// Hex SHA-256 of the request body in canonical form.
pub fn key(request: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(request, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// JSON with object keys sorted and no whitespace, whatever the map's own order.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (name, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(name.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_key_ignores_key_order_and_sees_every_value() {
        let a =
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 0});
        let b: Value = serde_json::from_str(
            r#"{"temperature": 0, "messages": [{"content": "x", "role": "user"}], "model": "m"}"#,
        )
        .unwrap();
        assert_eq!(key(&a), key(&b));
        assert_eq!(key(&a).len(), 64);
        let other =
            json!({"model": "m", "messages": [{"role": "user", "content": "y"}], "temperature": 0});
        assert_ne!(key(&a), key(&other));
    }

    #[test]
    fn recorded_lines_replay_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.jsonl");
        let request = json!({"model": "m", "messages": []});
        {
            let tape = Tape::from_settings(Some(&path), None).unwrap().unwrap();
            let Tape::Record(recorder) = tape else {
                panic!("a recorder")
            };
            recorder.record(&request, 200, "first").unwrap();
            recorder.record(&request, 200, "second").unwrap();
        }
        let Some(Tape::Replay(replay)) = Tape::from_settings(None, Some(&path)).unwrap() else {
            panic!("a replay")
        };
        assert_eq!(
            replay.lookup(&request),
            Some(&Exchange {
                status: 200,
                body: "second".into()
            })
        );
        assert_eq!(replay.lookup(&json!({"model": "other"})), None);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let both = Tape::from_settings(Some(&path), Some(&path)).unwrap_err();
        assert!(both.to_string().contains("mutually exclusive"), "{both}");
        let missing = Tape::from_settings(None, Some(&path)).unwrap_err();
        assert!(
            missing.to_string().contains("CLASSIFYD_MODEL_REPLAY"),
            "{missing}"
        );
        std::fs::write(
            &path,
            "{\"key\": \"k\", \"status\": 200, \"body\": \"\"}\nnot json\n",
        )
        .unwrap();
        let garbled = Tape::from_settings(None, Some(&path)).unwrap_err();
        assert!(garbled.to_string().contains("line 2"), "{garbled}");
        assert!(Tape::from_settings(None, None).unwrap().is_none());
    }
}

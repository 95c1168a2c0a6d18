//! A benchmark's figures and budget verdicts, printed for people and appended as JSON lines.

use std::io::Write;
use std::path::Path;

use serde_json::{json, Map, Value};

pub struct Report {
    name: String,
    figures: Vec<(String, Value)>,
    budget: Vec<Verdict>,
}

struct Verdict {
    target: String,
    measured: String,
    pass: bool,
}

impl Report {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            figures: Vec::new(),
            budget: Vec::new(),
        }
    }

    pub fn figure(&mut self, key: &str, value: impl Into<Value>) {
        self.figures.push((key.to_string(), value.into()));
    }

    /// A budget line: the target as written in BENCHMARKS.md, what was measured, pass/fail.
    pub fn check(&mut self, target: &str, measured: String, pass: bool) {
        self.budget.push(Verdict {
            target: target.to_string(),
            measured,
            pass,
        });
    }

    pub fn print(&self) {
        println!("== {}", self.name);
        for (key, value) in &self.figures {
            match value {
                Value::String(s) => println!("{key:>32}: {s}"),
                other => println!("{key:>32}: {other}"),
            }
        }
        for verdict in &self.budget {
            println!(
                "  budget {}: {} (measured {})",
                if verdict.pass { "PASS" } else { "FAIL" },
                verdict.target,
                verdict.measured
            );
        }
    }

    pub fn append_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let figures: Map<String, Value> = self.figures.iter().cloned().collect();
        let budget: Vec<Value> = self
            .budget
            .iter()
            .map(|v| json!({"target": v.target, "measured": v.measured, "pass": v.pass}))
            .collect();
        let line = json!({
            "benchmark": self.name,
            "at": chrono::Utc::now().to_rfc3339(),
            "figures": figures,
            "budget": budget,
        });
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{line}")?;
        Ok(())
    }
}

/// Nearest-rank percentile of unsorted samples (0 when empty).
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Rounds for display.
pub fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

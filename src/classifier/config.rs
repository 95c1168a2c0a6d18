//! The classify configuration as stored on a job and echoed by the API.

use serde::{Deserialize, Serialize};

use super::Rule;
use crate::document::PageSelection;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifyConfiguration {
    pub rules: Vec<Rule>,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default)]
    pub parsing_configuration: Option<ParsingConfiguration>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParsingConfiguration {
    #[serde(default)]
    pub lang: Option<String>,
    #[serde(default)]
    pub max_pages: Option<i64>,
    /// v2: 1-based pages and ranges, "1,3,5-7".
    #[serde(default)]
    pub target_pages: Option<String>,
}

fn default_mode() -> String {
    "FAST".to_string()
}

impl ClassifyConfiguration {
    pub fn page_selection(&self) -> Result<PageSelection, String> {
        let parsing = self.parsing_configuration.clone().unwrap_or_default();
        PageSelection::parse(parsing.target_pages.as_deref(), parsing.max_pages)
    }
}

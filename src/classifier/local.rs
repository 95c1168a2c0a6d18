//! The offline classifier: lexical evidence for each rule, read from the document's own words.
//!
//! Each rule becomes weighted terms: the words of its type weigh most, the content words of its
//! description less, and a word shared by several rules counts for little because it cannot
//! tell them apart. Words are lower-cased, lightly stemmed and mapped through a small
//! multilingual lexicon. A rule's score is the weighted share of its terms found in the
//! document (repeats and early pages count more); the confidence combines how much evidence
//! the best rule has with its margin over the runner-up, and below a threshold no rule is
//! chosen. The reasoning lists the words that decided.

use std::collections::{HashMap, HashSet};

use super::lexicon::CONCEPTS;
use super::{Classification, PageText, Rule};

/// Below this confidence the answer is `type: null`.
const NO_MATCH_CONFIDENCE: f64 = 0.3;
/// Weight of a type word (and its translations) relative to a description word.
const TYPE_WEIGHT: f64 = 3.0;
/// Characters of a word kept by the stemmer.
const STEM_LENGTH: usize = 7;

const STOPWORDS: &[&str] = &[
    "a",
    "an",
    "and",
    "or",
    "the",
    "of",
    "for",
    "with",
    "in",
    "on",
    "to",
    "by",
    "as",
    "at",
    "from",
    "is",
    "are",
    "be",
    "been",
    "this",
    "that",
    "these",
    "those",
    "which",
    "who",
    "it",
    "its",
    "their",
    "his",
    "her",
    "such",
    "any",
    "other",
    "some",
    "each",
    "all",
    "into",
    "than",
    "then",
    "when",
    "where",
    "while",
    "about",
    "between",
    "usually",
    "typically",
    "often",
    "generally",
    "mostly",
    "may",
    "might",
    "can",
    "could",
    "should",
    "would",
    "will",
    "has",
    "have",
    "had",
    "having",
    "not",
    "no",
    "but",
    "if",
    "so",
    "also",
    "only",
    "one",
    "more",
    "most",
    "document",
    "documents",
    "doc",
    "file",
    "page",
    "pages",
    "contains",
    "containing",
    "contain",
    "include",
    "includes",
    "including",
    "like",
    "e",
    "g",
    "eg",
    "etc",
    "ie",
    "kind",
    "type",
    "sort",
    "something",
    "someone",
    "showing",
    "shows",
    "show",
    "listing",
    "lists",
    "list",
    "issued",
    "given",
    "provided",
    "describing",
    "describes",
    "describe",
    "about",
    "there",
    "here",
    "what",
    "how",
    "very",
    "much",
    "many",
    "several",
    "per",
];

/// Offline lexical classifier; stateless apart from its lexicon index.
#[derive(Debug, Clone)]
pub struct LocalClassifier {
    concept_of: HashMap<String, usize>,
    stopwords: HashSet<&'static str>,
}

impl Default for LocalClassifier {
    fn default() -> Self {
        let mut concept_of = HashMap::new();
        for (index, group) in CONCEPTS.iter().enumerate() {
            for word in group.iter() {
                for token in tokens(word) {
                    concept_of.entry(stem(&token)).or_insert(index);
                }
            }
        }
        Self {
            concept_of,
            stopwords: STOPWORDS.iter().copied().collect(),
        }
    }
}

/// A term of a rule: a lexicon concept or a plain stem.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Term {
    Concept(usize),
    Stem(String),
}

/// A rule's index, its score and the terms found, strongest first.
type RuleScore = (usize, f64, Vec<(Term, f64)>);

struct RuleTerms {
    weights: HashMap<Term, f64>,
}

/// How often each term occurs in the document, weighted by page position, and the first
/// surface word seen for it (for the reasoning).
struct Evidence {
    weighted_count: HashMap<Term, f64>,
    surface: HashMap<Term, String>,
    first_page: HashMap<Term, usize>,
}

impl LocalClassifier {
    pub fn classify(&self, rules: &[Rule], pages: &[PageText]) -> Classification {
        let rule_terms: Vec<RuleTerms> = self.rule_terms(rules);
        let evidence = self.evidence(pages);

        let mut scored: Vec<RuleScore> = rule_terms
            .iter()
            .enumerate()
            .map(|(index, terms)| {
                let total: f64 = terms.weights.values().sum();
                let mut found: Vec<(Term, f64)> = terms
                    .weights
                    .iter()
                    .filter_map(|(term, weight)| {
                        let count = *evidence.weighted_count.get(term)?;
                        let strength = 1.0 - 0.5f64.powf(count);
                        Some((term.clone(), weight * strength))
                    })
                    .collect();
                found.sort_by(|a, b| b.1.total_cmp(&a.1));
                let matched: f64 = found.iter().map(|(_, w)| w).sum();
                let score = if total > 0.0 { matched / total } else { 0.0 };
                (index, score, found)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));

        let (best_index, best_score, best_found) = &scored[0];
        let runner_up = scored.get(1).map_or(0.0, |s| s.1);
        let confidence = confidence(*best_score, runner_up);
        let best_rule = &rules[*best_index];
        let words = describe_evidence(best_found, &evidence, 6);

        if confidence < NO_MATCH_CONFIDENCE || best_found.is_empty() {
            let reasoning = if best_found.is_empty() {
                "No rule matched: none of the rules' key words occur in the document's text."
                    .to_string()
            } else {
                format!(
                    "No rule matched well enough. The closest was '{}' ({:.0}% of its key words, e.g. {}), which is too little evidence to assign it.",
                    best_rule.label,
                    best_score * 100.0,
                    words
                )
            };
            return Classification {
                label: None,
                confidence: round(confidence),
                reasoning,
            };
        }

        let mut reasoning = format!(
            "Classified as '{}': the text mentions {} ({:.0}% of the rule's weighted key words).",
            best_rule.label,
            words,
            best_score * 100.0
        );
        if let Some((index, score, found)) = scored.get(1).filter(|s| s.1 > 0.0) {
            reasoning.push_str(&format!(
                " Next best: '{}' at {:.0}% ({}).",
                rules[*index].label,
                score * 100.0,
                describe_evidence(found, &evidence, 3)
            ));
        }
        Classification {
            label: Some(best_rule.label.clone()),
            confidence: round(confidence),
            reasoning,
        }
    }

    fn term(&self, stem: String) -> Term {
        match self.concept_of.get(&stem) {
            Some(&concept) => Term::Concept(concept),
            None => Term::Stem(stem),
        }
    }

    fn rule_terms(&self, rules: &[Rule]) -> Vec<RuleTerms> {
        let mut per_rule: Vec<RuleTerms> = rules
            .iter()
            .map(|rule| {
                let mut weights: HashMap<Term, f64> = HashMap::new();
                for token in tokens(&rule.label) {
                    if self.stopwords.contains(token.as_str()) {
                        continue;
                    }
                    let term = self.term(stem(&token));
                    weights.insert(term, TYPE_WEIGHT);
                }
                for token in tokens(&rule.description) {
                    if self.stopwords.contains(token.as_str()) || token.chars().count() < 2 {
                        continue;
                    }
                    let term = self.term(stem(&token));
                    weights.entry(term).or_insert(1.0);
                }
                RuleTerms { weights }
            })
            .collect();
        // A term several rules share says little about which of them applies.
        let mut rules_with: HashMap<Term, usize> = HashMap::new();
        for rule in &per_rule {
            for term in rule.weights.keys() {
                *rules_with.entry(term.clone()).or_default() += 1;
            }
        }
        for rule in &mut per_rule {
            for (term, weight) in rule.weights.iter_mut() {
                *weight /= rules_with[term] as f64;
            }
        }
        per_rule
    }

    fn evidence(&self, pages: &[PageText]) -> Evidence {
        let mut evidence = Evidence {
            weighted_count: HashMap::new(),
            surface: HashMap::new(),
            first_page: HashMap::new(),
        };
        for (position, page) in pages.iter().enumerate() {
            // The first pages say most about what a document is.
            let page_weight = 1.0 / (1.0 + position as f64 * 0.5);
            for token in tokens(&page.text) {
                if self.stopwords.contains(token.as_str()) {
                    continue;
                }
                let term = self.term(stem(&token));
                *evidence.weighted_count.entry(term.clone()).or_default() += page_weight;
                evidence
                    .first_page
                    .entry(term.clone())
                    .or_insert(page.number);
                evidence.surface.entry(term).or_insert(token);
            }
        }
        evidence
    }
}

/// Evidence strength of the best rule, discounted by how close the runner-up is.
fn confidence(best: f64, runner_up: f64) -> f64 {
    if best <= 0.0 {
        return 0.0;
    }
    let strength = (best / 0.35).min(1.0);
    let margin = ((best - runner_up) / best).clamp(0.0, 1.0);
    (strength * (0.35 + 0.65 * margin)).clamp(0.0, 0.99)
}

fn describe_evidence(found: &[(Term, f64)], evidence: &Evidence, limit: usize) -> String {
    let parts: Vec<String> = found
        .iter()
        .take(limit)
        .filter_map(|(term, _)| {
            let word = evidence.surface.get(term)?;
            let count = evidence.weighted_count.get(term).copied().unwrap_or(0.0);
            let page = evidence.first_page.get(term).copied().unwrap_or(1);
            Some(if count >= 1.5 {
                format!("'{word}' (several times, first on page {page})")
            } else {
                format!("'{word}' (page {page})")
            })
        })
        .collect();
    if parts.is_empty() {
        "none of its key words".to_string()
    } else {
        parts.join(", ")
    }
}

fn round(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
}

/// Lower-cased words; CJK runs become overlapping character pairs (they have no spaces).
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk_run: Vec<char> = Vec::new();
    let flush_cjk = |run: &mut Vec<char>, out: &mut Vec<String>| {
        match run.len() {
            0 => {}
            1 => out.push(run[0].to_string()),
            _ => out.extend(run.windows(2).map(|pair| pair.iter().collect::<String>())),
        }
        run.clear();
    };
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            cjk_run.push(c);
        } else if c.is_alphanumeric() {
            flush_cjk(&mut cjk_run, &mut out);
            word.extend(c.to_lowercase());
        } else {
            flush_cjk(&mut cjk_run, &mut out);
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
        }
    }
    flush_cjk(&mut cjk_run, &mut out);
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Plural `s` removed, then cut to a fixed length: crude, language-neutral, and enough to
/// make "invoices" meet "invoice" and "agreements" meet "agreement".
fn stem(token: &str) -> String {
    let mut word = token;
    if word.chars().count() > 3 && word.ends_with('s') && !word.ends_with("ss") {
        word = &word[..word.len() - 1];
    }
    word.chars().take(STEM_LENGTH).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        vec![
            Rule {
                label: "invoice".into(),
                description:
                    "a bill requesting payment, with invoice number, line items and a total due"
                        .into(),
            },
            Rule {
                label: "contract".into(),
                description:
                    "a legal agreement between parties with terms, obligations and signatures"
                        .into(),
            },
        ]
    }

    fn page(text: &str) -> Vec<PageText> {
        vec![PageText {
            number: 1,
            text: text.into(),
            image: None,
        }]
    }

    #[test]
    fn an_invoice_is_an_invoice_and_the_reasoning_names_the_words() {
        let result = LocalClassifier::default().classify(
            &rules(),
            &page("INVOICE No. 2024-17\nItem  Qty  Price\nWidgets 2 50.00\nTotal due: 100.00 EUR\nPayment within 30 days"),
        );
        assert_eq!(result.label.as_deref(), Some("invoice"), "{result:?}");
        assert!(result.confidence > 0.5, "{result:?}");
        assert!(
            result.reasoning.contains("'invoice'"),
            "{}",
            result.reasoning
        );
    }

    #[test]
    fn a_contract_is_a_contract() {
        let result = LocalClassifier::default().classify(
            &rules(),
            &page("SERVICE AGREEMENT between the parties ACME and Beta. Terms and obligations. Signatures of both parties."),
        );
        assert_eq!(result.label.as_deref(), Some("contract"), "{result:?}");
    }

    #[test]
    fn a_german_invoice_is_recognised_through_the_lexicon() {
        let result = LocalClassifier::default().classify(
            &rules(),
            &page("Rechnung Nr. 4711\nGesamtbetrag 119,00 EUR\nZahlbar innerhalb von 14 Tagen"),
        );
        assert_eq!(result.label.as_deref(), Some("invoice"), "{result:?}");
    }

    #[test]
    fn unrelated_text_matches_no_rule_with_low_confidence_in_a_match() {
        let result = LocalClassifier::default().classify(
            &rules(),
            &page("The quick brown fox jumps over the lazy dog. A poem about autumn leaves."),
        );
        assert_eq!(result.label, None, "{result:?}");
        assert!(
            result.reasoning.starts_with("No rule matched"),
            "{}",
            result.reasoning
        );
    }

    #[test]
    fn tokens_split_words_and_cjk_pairs() {
        assert_eq!(tokens("Total-Due: 5"), vec!["total", "due", "5"]);
        assert_eq!(
            tokens("血液检验报告"),
            vec!["血液", "液检", "检验", "验报", "报告"]
        );
        assert_eq!(stem("invoices"), "invoice");
        assert_eq!(stem("agreements"), "agreeme");
    }
}

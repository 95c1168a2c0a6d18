//! Which pages to classify. v2 names them as a 1-based string ("1,3,5-7"), v1 as 0-based
//! indexes; both become inclusive 1-based ranges here, validated when the job is created and
//! resolved against the real page count when the document is read.

use serde::{Deserialize, Serialize};

/// Largest page number a selection may name; beyond this it is certainly a typo.
const MAX_PAGE_NUMBER: usize = 100_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageSelection {
    /// Inclusive 1-based ranges in the order given; `None` = every page.
    pub ranges: Option<Vec<(usize, usize)>>,
    /// Keep at most this many of the selected pages (the first ones).
    pub max_pages: Option<usize>,
}

impl PageSelection {
    /// Parses v2's `target_pages` ("1,3,5-7") and `max_pages`.
    pub fn parse(target_pages: Option<&str>, max_pages: Option<i64>) -> Result<Self, String> {
        let max_pages = match max_pages {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => return Err(format!("max_pages must be at least 1, got {n}")),
        };
        let ranges = match target_pages.map(str::trim) {
            None | Some("") => None,
            Some(spec) => Some(parse_ranges(spec)?),
        };
        Ok(Self { ranges, max_pages })
    }

    /// Builds a selection from v1's 0-based page indexes.
    pub fn from_zero_based(indexes: &[i64], max_pages: Option<i64>) -> Result<Self, String> {
        let mut selection = Self::parse(None, max_pages)?;
        if indexes.is_empty() {
            return Ok(selection);
        }
        let mut ranges = Vec::with_capacity(indexes.len());
        for &index in indexes {
            if index < 0 || index as usize >= MAX_PAGE_NUMBER {
                return Err(format!(
                    "target_pages index {index} is out of range (0-based, 0 = first page)"
                ));
            }
            let page = index as usize + 1;
            ranges.push((page, page));
        }
        selection.ranges = Some(ranges);
        Ok(selection)
    }

    /// The 1-based page numbers to read from a document of `page_count` pages, in document
    /// order without repeats.
    pub fn resolve(&self, page_count: usize) -> Result<Vec<usize>, String> {
        let mut pages: Vec<usize> = match &self.ranges {
            None => (1..=page_count).collect(),
            Some(ranges) => {
                if let Some(&(_, end)) = ranges.iter().find(|(_, end)| *end > page_count) {
                    return Err(format!(
                        "target_pages asks for page {end}, but the document has {page_count} page{}.",
                        if page_count == 1 { "" } else { "s" }
                    ));
                }
                let mut pages: Vec<usize> = ranges
                    .iter()
                    .flat_map(|&(start, end)| start..=end)
                    .collect();
                pages.sort_unstable();
                pages.dedup();
                pages
            }
        };
        if let Some(max) = self.max_pages {
            pages.truncate(max);
        }
        Ok(pages)
    }
}

fn parse_ranges(spec: &str) -> Result<Vec<(usize, usize)>, String> {
    spec.split(',')
        .map(|part| {
            let part = part.trim();
            let (start, end) = match part.split_once('-') {
                Some((start, end)) => (parse_page(start, spec)?, parse_page(end, spec)?),
                None => {
                    let page = parse_page(part, spec)?;
                    (page, page)
                }
            };
            if start > end {
                return Err(format!(
                    "target_pages range {part:?} is reversed; write it as {end}-{start}"
                ));
            }
            Ok((start, end))
        })
        .collect()
}

fn parse_page(text: &str, spec: &str) -> Result<usize, String> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "target_pages {spec:?} is not a list of 1-based pages and ranges such as \"1,3,5-7\""
        ));
    }
    match text.parse::<usize>() {
        Ok(0) => Err(format!(
            "target_pages {spec:?} names page 0; pages are numbered from 1"
        )),
        Ok(n) if n <= MAX_PAGE_NUMBER => Ok(n),
        _ => Err(format!(
            "target_pages {spec:?} names a page beyond {MAX_PAGE_NUMBER}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_selections_resolve_in_document_order() {
        let cases: &[(&str, Option<i64>, usize, &[usize])] = &[
            ("1", None, 3, &[1]),
            ("1,3", None, 3, &[1, 3]),
            ("3,1", None, 3, &[1, 3]),
            ("1-3", None, 5, &[1, 2, 3]),
            ("1,3,5-7", None, 7, &[1, 3, 5, 6, 7]),
            (" 2 , 4-4 ", None, 4, &[2, 4]),
            ("1-2,2-3", None, 3, &[1, 2, 3]),
            ("", None, 2, &[1, 2]),
            ("1-5", Some(2), 5, &[1, 2]),
            ("", Some(1), 4, &[1]),
            ("", Some(10), 2, &[1, 2]),
        ];
        for (spec, max, count, expected) in cases {
            let selection =
                PageSelection::parse(Some(spec), *max).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
            assert_eq!(
                selection.resolve(*count).unwrap(),
                *expected,
                "spec {spec:?}"
            );
        }
    }

    #[test]
    fn invalid_selections_are_refused_with_a_reason() {
        let cases: &[(&str, &str)] = &[
            ("0", "page 0"),
            ("0-2", "page 0"),
            ("3-1", "reversed"),
            ("abc", "not a list"),
            ("1,,2", "not a list"),
            ("1-", "not a list"),
            ("-3", "not a list"),
            ("1.5", "not a list"),
            ("-1", "not a list"),
            ("1-2-3", "not a list"),
            ("999999999999999999999", "beyond"),
        ];
        for (spec, reason) in cases {
            let error = PageSelection::parse(Some(spec), None).expect_err(spec);
            assert!(
                error.contains(reason),
                "{spec:?} gave {error:?}, expected {reason:?}"
            );
        }
        assert!(PageSelection::parse(None, Some(0))
            .unwrap_err()
            .contains("max_pages"));
        assert!(PageSelection::parse(None, Some(-4))
            .unwrap_err()
            .contains("max_pages"));
    }

    #[test]
    fn pages_beyond_the_document_are_reported() {
        let selection = PageSelection::parse(Some("2,9"), None).unwrap();
        let error = selection.resolve(3).unwrap_err();
        assert!(
            error.contains("page 9") && error.contains("3 pages"),
            "{error}"
        );
    }

    #[test]
    fn zero_based_indexes_become_pages() {
        let selection = PageSelection::from_zero_based(&[0, 2], None).unwrap();
        assert_eq!(selection.resolve(3).unwrap(), vec![1, 3]);
        assert!(PageSelection::from_zero_based(&[-1], None).is_err());
    }
}

//! A structural check of a PDF's raw bytes before any parser sees them. PDF parsers recurse
//! into nested arrays and dictionaries (a file nested 20 000 deep overflows their stack and
//! aborts the process) and inflate streams without a bound (a 1 MiB flate bomb becomes 1 GiB).
//! The sandbox's limits would stop both, but only with a generic "crashed" or "out of memory";
//! this scan names the limit instead. It never recurses and never holds more than one
//! bounded stream in memory.

use std::io::Read;

use super::{find, DocumentError};

/// The bounds the scan enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct GuardLimits {
    pub max_depth: usize,
    pub max_stream_bytes: u64,
}

/// Deflate's best ratio is about 1032:1, so a stream this many times smaller than the limit
/// cannot exceed it and need not be inflated just to be measured.
const DEFLATE_MAX_RATIO: u64 = 1032;

pub(super) fn check(bytes: &[u8], limits: GuardLimits) -> Result<(), DocumentError> {
    Scanner {
        limits,
        content: false,
    }
    .scan(bytes)
}

struct Scanner {
    limits: GuardLimits,
    /// Scanning a decoded stream (content or object stream) rather than the file itself.
    content: bool,
}

impl Scanner {
    fn scan(&self, bytes: &[u8]) -> Result<(), DocumentError> {
        let mut depth = 0usize;
        // Where the last top-level dictionary began and ended: a stream's own dictionary.
        let mut dict_start = 0;
        let mut last_dict = 0..0;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'%' => i = skip_line(bytes, i),
                b'(' => i = skip_literal_string(bytes, i),
                b'<' if bytes.get(i + 1) == Some(&b'<') => {
                    if depth == 0 {
                        dict_start = i;
                    }
                    depth += 1;
                    self.check_depth(depth)?;
                    i += 2;
                }
                b'<' => i = skip_past(bytes, i, b'>'),
                b'>' if bytes.get(i + 1) == Some(&b'>') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        last_dict = dict_start..i + 2;
                    }
                    i += 2;
                }
                b'[' => {
                    depth += 1;
                    self.check_depth(depth)?;
                    i += 1;
                }
                b']' => {
                    depth = depth.saturating_sub(1);
                    i += 1;
                }
                b'e' if keyword_at(bytes, i, b"endobj") => {
                    // Objects never span each other: unbalanced brackets in a damaged object
                    // must not add up across the file.
                    depth = 0;
                    i += b"endobj".len();
                }
                b's' if !self.content && keyword_at(bytes, i, b"stream") => {
                    let body_start = skip_eol(bytes, i + b"stream".len());
                    let body_end = find(&bytes[body_start..], b"endstream")
                        .map_or(bytes.len(), |n| body_start + n);
                    self.check_stream(&bytes[last_dict.clone()], &bytes[body_start..body_end])?;
                    depth = 0;
                    i = body_end;
                }
                b'I' if self.content && keyword_at(bytes, i, b"ID") => {
                    // Inline image data is binary; its brackets mean nothing.
                    i = find(&bytes[i..], b"EI")
                        .map_or(bytes.len(), |n| i + n + 2)
                        .max(i + 2);
                }
                _ => i += 1,
            }
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), DocumentError> {
        if depth > self.limits.max_depth {
            return Err(DocumentError::TooDeep {
                limit: self.limits.max_depth,
            });
        }
        Ok(())
    }

    fn check_stream(&self, dict: &[u8], body: &[u8]) -> Result<(), DocumentError> {
        let flate_layers = leading_flate_filters(dict);
        if flate_layers == 0 {
            return Ok(());
        }
        let is_image = name_after(dict, b"/Subtype") == Some(b"Image".as_slice());
        let small =
            (body.len() as u64).saturating_mul(DEFLATE_MAX_RATIO) <= self.limits.max_stream_bytes;
        if is_image && small && flate_layers == 1 {
            return Ok(());
        }
        let mut decoded = body.to_vec();
        for _ in 0..flate_layers {
            match self.inflate(&decoded)? {
                Some(next) => decoded = next,
                // Damaged data: the parser reports it better than we can.
                None => return Ok(()),
            }
        }
        if is_image {
            return Ok(());
        }
        Scanner {
            limits: self.limits,
            content: true,
        }
        .scan(&decoded)
    }

    /// Inflates at most the limit; `None` when the data is not valid zlib.
    fn inflate(&self, data: &[u8]) -> Result<Option<Vec<u8>>, DocumentError> {
        let limit = self.limits.max_stream_bytes;
        let mut out = Vec::new();
        let mut decoder = flate2::read::ZlibDecoder::new(data).take(limit.saturating_add(1));
        let complete = decoder.read_to_end(&mut out).is_ok();
        if out.len() as u64 > limit {
            return Err(DocumentError::StreamTooLarge {
                limit_mib: limit / (1024 * 1024),
            });
        }
        Ok((complete || !out.is_empty()).then_some(out))
    }
}

/// The name value of `key` in the dictionary, without its slash.
fn name_after<'a>(dict: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = find(dict, key)?;
    let rest = trim_start(&dict[at + key.len()..]);
    let rest = rest.strip_prefix(b"/")?;
    let end = rest
        .iter()
        .position(|&b| is_delimiter(b))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

/// How many `/FlateDecode` filters the dictionary applies before any other filter.
fn leading_flate_filters(dict: &[u8]) -> usize {
    let Some(at) = find(dict, b"/Filter") else {
        return 0;
    };
    let rest = &dict[at + b"/Filter".len()..];
    let rest = trim_start(rest);
    let names: &[u8] = if rest.first() == Some(&b'[') {
        let end = rest.iter().position(|&b| b == b']').unwrap_or(rest.len());
        &rest[1..end]
    } else {
        let end = rest[1.min(rest.len())..]
            .iter()
            .position(|&b| b == b'/' || b == b'>' || b.is_ascii_whitespace())
            .map_or(rest.len(), |n| n + 1);
        &rest[..end]
    };
    names
        .split(|&b| b == b'/' || b.is_ascii_whitespace())
        .filter(|name| !name.is_empty())
        .take_while(|name| *name == b"FlateDecode" || *name == b"Fl")
        .count()
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn is_delimiter(byte: u8) -> bool {
    byte.is_ascii_whitespace() || b"()<>[]{}/%".contains(&byte)
}

/// `word` at `i`, not part of a longer token (so `endstream` is not `stream`).
fn keyword_at(bytes: &[u8], i: usize, word: &[u8]) -> bool {
    bytes[i..].starts_with(word)
        && (i == 0 || is_delimiter(bytes[i - 1]))
        && bytes.get(i + word.len()).is_none_or(|&b| is_delimiter(b))
}

fn skip_line(bytes: &[u8], i: usize) -> usize {
    bytes[i..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map_or(bytes.len(), |n| i + n + 1)
}

fn skip_eol(bytes: &[u8], mut i: usize) -> usize {
    if bytes.get(i) == Some(&b'\r') {
        i += 1;
    }
    if bytes.get(i) == Some(&b'\n') {
        i += 1;
    }
    i
}

fn skip_past(bytes: &[u8], i: usize, end: u8) -> usize {
    bytes[i + 1..]
        .iter()
        .position(|&b| b == end)
        .map_or(bytes.len(), |n| i + n + 2)
}

/// Past the `)` that closes the string opened at `i`; parentheses nest, `\` escapes.
fn skip_literal_string(bytes: &[u8], i: usize) -> usize {
    let mut open = 0usize;
    let mut j = i;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 1,
            b'(' => open += 1,
            b')' => {
                open -= 1;
                if open == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LIMITS: GuardLimits = GuardLimits {
        max_depth: 64,
        max_stream_bytes: 1024 * 1024,
    };

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn stream_object(dict: &str, body: &[u8]) -> Vec<u8> {
        let mut pdf = format!("%PDF-1.5\n1 0 obj\n{dict}\nstream\n").into_bytes();
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        pdf
    }

    #[test]
    fn ordinary_structure_passes() {
        let pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Kids [ [1 2] << /A (a ] ( nested ) [ ) >> ] /S <48656c6c6f> >> endobj\n% [[[[ comment\n";
        check(pdf, LIMITS).unwrap();
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut pdf = b"%PDF-1.4\n1 0 obj\n".to_vec();
        pdf.extend(std::iter::repeat_n(b'[', 20_000));
        pdf.extend(std::iter::repeat_n(b']', 20_000));
        assert_eq!(
            check(&pdf, LIMITS).unwrap_err(),
            DocumentError::TooDeep { limit: 64 }
        );
        let mut dicts = b"%PDF-1.4\n1 0 obj\n".to_vec();
        for _ in 0..100 {
            dicts.extend_from_slice(b"<< /A ");
        }
        assert!(matches!(
            check(&dicts, LIMITS),
            Err(DocumentError::TooDeep { .. })
        ));
    }

    #[test]
    fn brackets_inside_strings_and_streams_do_not_count() {
        let mut pdf = b"%PDF-1.4\n1 0 obj (".to_vec();
        pdf.extend(std::iter::repeat_n(b'[', 1000));
        pdf.extend_from_slice(b") endobj\n");
        pdf.extend(stream_object("<< /Length 1000 >>", &[b'['; 1000]));
        check(&pdf, LIMITS).unwrap();
    }

    #[test]
    fn unbalanced_objects_do_not_add_up() {
        let mut pdf = b"%PDF-1.4\n".to_vec();
        for n in 0..100 {
            pdf.extend_from_slice(format!("{n} 0 obj [ [ endobj\n").as_bytes());
        }
        check(&pdf, LIMITS).unwrap();
    }

    #[test]
    fn flate_bombs_are_refused() {
        let bomb = zlib(&vec![0u8; 4 * 1024 * 1024]);
        let pdf = stream_object(
            &format!("<< /Length {} /Filter /FlateDecode >>", bomb.len()),
            &bomb,
        );
        assert_eq!(
            check(&pdf, LIMITS).unwrap_err(),
            DocumentError::StreamTooLarge { limit_mib: 1 }
        );
        let double = zlib(&bomb);
        let pdf = stream_object(
            &format!(
                "<< /Length {} /Filter [/FlateDecode /FlateDecode] >>",
                double.len()
            ),
            &double,
        );
        assert!(matches!(
            check(&pdf, LIMITS),
            Err(DocumentError::StreamTooLarge { .. })
        ));
    }

    #[test]
    fn nesting_inside_compressed_streams_is_found() {
        let mut content = b"BT ".to_vec();
        content.extend(std::iter::repeat_n(b'[', 5000));
        let packed = zlib(&content);
        let pdf = stream_object(
            &format!("<< /Length {} /Filter /FlateDecode >>", packed.len()),
            &packed,
        );
        assert!(matches!(
            check(&pdf, LIMITS),
            Err(DocumentError::TooDeep { .. })
        ));
        let mut inline = b"BI /W 1 /H 1 ID ".to_vec();
        inline.extend(std::iter::repeat_n(b'[', 5000));
        inline.extend_from_slice(b" EI Q");
        let packed = zlib(&inline);
        let pdf = stream_object(
            &format!("<< /Length {} /Filter /FlateDecode >>", packed.len()),
            &packed,
        );
        check(&pdf, LIMITS).unwrap();
    }

    #[test]
    fn filters_are_read_from_the_dictionary() {
        assert_eq!(leading_flate_filters(b"<< /Filter /FlateDecode >>"), 1);
        assert_eq!(
            leading_flate_filters(b"<</Filter/FlateDecode/Length 5>>"),
            1
        );
        assert_eq!(
            leading_flate_filters(b"<< /Filter [ /FlateDecode /FlateDecode ] >>"),
            2
        );
        assert_eq!(
            leading_flate_filters(b"<< /Filter [/ASCII85Decode /FlateDecode] >>"),
            0
        );
        assert_eq!(leading_flate_filters(b"<< /Filter /DCTDecode >>"), 0);
        assert_eq!(leading_flate_filters(b"<< /Length 5 >>"), 0);
        assert_eq!(
            name_after(b"<</Subtype/Image/Width 2>>", b"/Subtype"),
            Some(b"Image".as_slice())
        );
        assert_eq!(name_after(b"<< /ProcSet [/ImageB] >>", b"/Subtype"), None);
    }
}

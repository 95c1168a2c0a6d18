//! ToUnicode CMaps for composite (Type0) fonts that come without one. pdf-extract maps a CID
//! font's glyphs to text only through the font's /ToUnicode CMap and writes nothing for the
//! glyphs of a font without one, so such a page reads as empty. Other readers (poppler,
//! pdf.js, hayro) fall back on what the font itself says, and so does this: a font of one of
//! Adobe's CJK character collections gets that collection's CID-to-Unicode table, and an
//! embedded TrueType font gets its own `cmap` table read backwards (glyph to character). The
//! result is written into the document as a ToUnicode stream, which pdf-extract then reads
//! like any other.

use std::collections::{BTreeSet, HashMap};

use hayro_cmap::{BfString, CMap, CidFamily};
use lopdf::content::Content;
use lopdf::{dictionary, Dictionary, Document, Object, ObjectId, Stream};

/// Fonts given a CMap per document at most; more is hostile (each costs a table build).
const MAX_FONTS: usize = 64;

/// Adds a ToUnicode CMap to each Type0 font with an Identity encoding (character code = CID)
/// that has none and whose CIDs can be mapped to Unicode. The CMap holds only the codes the
/// document's text shows: pdf-extract parses a font's CMap for every page, and a whole
/// collection's table (some 20 000 entries) took it 100 ms a page.
pub(super) fn add_missing(doc: &mut Document) {
    let fonts: Vec<ObjectId> = doc
        .objects
        .iter()
        .filter(|(_, object)| object.as_dict().is_ok_and(|font| needs_cmap(doc, font)))
        .map(|(&id, _)| id)
        .take(MAX_FONTS)
        .collect();
    if fonts.is_empty() {
        return;
    }
    let shown = shown_codes(doc);
    // Fonts of one collection share a CMap (a Japanese document often has several).
    let mut by_collection: HashMap<CidFamily, Option<ObjectId>> = HashMap::new();
    for font_id in fonts {
        let Some(descendant) = descendant(doc, font_id) else {
            continue;
        };
        let collection = collection(doc, &descendant);
        let cmap_id = match collection.filter(|family| family.ucs2_cmap().is_some()) {
            Some(family) => *by_collection.entry(family).or_insert_with_key(|family| {
                let mappings = collection_unicode(family, &shown)?;
                Some(doc.add_object(cmap_stream(&mappings)))
            }),
            None => truetype_unicode(doc, &descendant, &shown)
                .map(|mappings| doc.add_object(cmap_stream(&mappings))),
        };
        if let (Some(cmap_id), Ok(font)) = (cmap_id, doc.get_dictionary_mut(font_id)) {
            font.set("ToUnicode", cmap_id);
        }
    }
}

/// Every two-byte code that a string shown by a text operator holds, in the pages' content
/// and in form XObjects, whatever its font: a superset of the codes shown with any one
/// Identity-encoded font.
fn shown_codes(doc: &Document) -> BTreeSet<u32> {
    let mut contents: Vec<Vec<u8>> = doc
        .get_pages()
        .into_values()
        .filter_map(|page_id| doc.get_page_content(page_id).ok())
        .collect();
    contents.extend(doc.objects.values().filter_map(|object| {
        let stream = object.as_stream().ok()?;
        (stream.dict.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Form"))
            .then(|| stream.decompressed_content().ok())?
    }));
    let mut codes = BTreeSet::new();
    let mut add = |object: &Object| {
        if let Object::String(bytes, _) = object {
            codes.extend(
                bytes
                    .chunks_exact(2)
                    .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]]))),
            );
        }
    };
    for content in contents {
        let Ok(content) = Content::decode(&content) else {
            continue;
        };
        for operation in &content.operations {
            if !matches!(operation.operator.as_str(), "Tj" | "TJ" | "'" | "\"") {
                continue;
            }
            for operand in &operation.operands {
                match operand {
                    Object::Array(items) => items.iter().for_each(&mut add),
                    other => add(other),
                }
            }
        }
    }
    codes
}

/// A Type0 font whose /Encoding is Identity-H or Identity-V and whose /ToUnicode is not a
/// CMap stream. Some producers write `/ToUnicode /Identity-H` (miner-02 in the corpus);
/// poppler ignores anything but a stream there, and pdf-extract reads nothing through it.
fn needs_cmap(doc: &Document, font: &Dictionary) -> bool {
    let is = |key: &[u8], value: &[u8]| font.get(key).and_then(Object::as_name).ok() == Some(value);
    is(b"Type", b"Font")
        && is(b"Subtype", b"Type0")
        && (is(b"Encoding", b"Identity-H") || is(b"Encoding", b"Identity-V"))
        && !matches!(
            font.get(b"ToUnicode").ok().and_then(|o| resolve(doc, o)),
            Some(Object::Stream(_))
        )
}

fn resolve<'a>(doc: &'a Document, object: &'a Object) -> Option<&'a Object> {
    doc.dereference(object).ok().map(|(_, resolved)| resolved)
}

/// The font's CIDFont (the first of its /DescendantFonts), copied out of the document.
fn descendant(doc: &Document, font_id: ObjectId) -> Option<Dictionary> {
    let font = doc.get_dictionary(font_id).ok()?;
    let Object::Array(descendants) = resolve(doc, font.get(b"DescendantFonts").ok()?)? else {
        return None;
    };
    resolve(doc, descendants.first()?)?.as_dict().ok().cloned()
}

/// The character collection named by the CIDFont's /CIDSystemInfo.
fn collection(doc: &Document, cid_font: &Dictionary) -> Option<CidFamily> {
    let Object::Dictionary(info) = resolve(doc, cid_font.get(b"CIDSystemInfo").ok()?)? else {
        return None;
    };
    let text = |key: &[u8]| match resolve(doc, info.get(key).ok()?)? {
        Object::String(bytes, _) => Some(bytes.clone()),
        _ => None,
    };
    Some(CidFamily::from_registry_ordering(
        &text(b"Registry")?,
        &text(b"Ordering")?,
    ))
}

/// CID → text for the `shown` CIDs of one of Adobe's CJK collections, from the tables hayro
/// ships.
fn collection_unicode(family: &CidFamily, shown: &BTreeSet<u32>) -> Option<Vec<(u32, String)>> {
    let data = hayro_cmap::load_embedded(family.ucs2_cmap()?)?;
    let table = CMap::parse(data, hayro_cmap::load_embedded)?;
    Some(
        shown
            .iter()
            .filter_map(|&cid| {
                let text = match table.lookup_bf_string(cid)? {
                    BfString::Char(c) => c.to_string(),
                    BfString::String(s) => s,
                };
                let text = without_variation_selectors(&text);
                (!text.is_empty()).then_some((cid, text))
            })
            .collect(),
    )
}

/// The tables pin some CIDs to a glyph variant with a variation selector (芦 + U+E0100);
/// the selector names a glyph shape, not text, and would split a word wherever it occurs.
fn without_variation_selectors(text: &str) -> String {
    text.chars()
        .filter(|c| !matches!(c, '\u{FE00}'..='\u{FE0F}' | '\u{E0100}'..='\u{E01EF}'))
        .collect()
}

/// CID → character for the `shown` CIDs of a CIDFont with an embedded TrueType program: the
/// CID's glyph (through /CIDToGIDMap) and the character the font's Unicode `cmap` subtables
/// give that glyph.
fn truetype_unicode(
    doc: &Document,
    cid_font: &Dictionary,
    shown: &BTreeSet<u32>,
) -> Option<Vec<(u32, String)>> {
    if cid_font.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"CIDFontType2") {
        return None;
    }
    let Object::Dictionary(descriptor) = resolve(doc, cid_font.get(b"FontDescriptor").ok()?)?
    else {
        return None;
    };
    let Object::Stream(program) = resolve(doc, descriptor.get(b"FontFile2").ok()?)? else {
        return None;
    };
    let program = program.decompressed_content().ok()?;
    let face = ttf_parser::Face::parse(&program, 0).ok()?;
    let mut by_glyph: HashMap<u16, char> = HashMap::new();
    for subtable in face.tables().cmap?.subtables {
        if !subtable.is_unicode() {
            continue;
        }
        subtable.codepoints(|code| {
            let (Some(glyph), Some(c)) = (subtable.glyph_index(code), char::from_u32(code)) else {
                return;
            };
            // Several characters can share a glyph (space and no-break space); the first,
            // lowest one wins, except over a private-use one.
            let slot = by_glyph.entry(glyph.0).or_insert(c);
            if is_private_use(*slot) && !is_private_use(c) {
                *slot = c;
            }
        });
    }
    let glyph_of = match cid_font
        .get(b"CIDToGIDMap")
        .ok()
        .and_then(|o| resolve(doc, o))
    {
        Some(Object::Stream(map)) => {
            let bytes = map.decompressed_content().ok()?;
            Some(
                bytes
                    .chunks_exact(2)
                    .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
                    .collect::<Vec<u16>>(),
            )
        }
        _ => None, // /Identity or absent: CID = glyph index.
    };
    let mappings: Vec<(u32, String)> = shown
        .iter()
        .filter_map(|&cid| {
            let glyph = match &glyph_of {
                Some(glyphs) => *glyphs.get(cid as usize)?,
                None => u16::try_from(cid).ok()?,
            };
            Some((cid, by_glyph.get(&glyph)?.to_string()))
        })
        .collect();
    (!mappings.is_empty()).then_some(mappings)
}

fn is_private_use(c: char) -> bool {
    matches!(c, '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..)
}

/// A ToUnicode CMap for two-byte codes.
fn cmap_stream(mappings: &[(u32, String)]) -> Stream {
    let mut body = String::new();
    for chunk in mappings.chunks(100) {
        body.push_str(&format!("{} beginbfchar\n", chunk.len()));
        for (code, text) in chunk {
            body.push_str(&format!("<{code:04X}> <"));
            for unit in text.encode_utf16() {
                body.push_str(&format!("{unit:04X}"));
            }
            body.push_str(">\n");
        }
        body.push_str("endbfchar\n");
    }
    let content = format!(
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
         /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
         /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
         1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n{body}\
         endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    );
    Stream::new(dictionary! {}, content.into_bytes())
}

#[cfg(test)]
mod tests {
    use lopdf::{dictionary, Object, Stream};

    use crate::document::pdf::extract_pages;

    /// A one-page PDF whose content stream `content` shows text with the Type0 font `font`
    /// (as /F1); `font` builds that dictionary and adds what it refers to.
    fn one_page(
        content: &str,
        font: impl FnOnce(&mut lopdf::Document) -> lopdf::Dictionary,
    ) -> Vec<u8> {
        let mut doc = lopdf::Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font = font(&mut doc);
        let font_id = doc.add_object(font);
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.as_bytes().to_vec()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
            "Resources" => dictionary! { "Font" => dictionary! { "F1" => font_id } },
            "MediaBox" => vec![0.into(), 0.into(), 792.into(), 612.into()],
        });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1,
            }),
        );
        let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog_id);
        let mut bytes = Vec::new();
        doc.save_to(&mut bytes).unwrap();
        bytes
    }

    /// Ryumin-Light as dvipdfmx writes it (miner-04 in the corpus): a non-embedded Adobe-Japan1
    /// CIDFont in vertical writing, with no ToUnicode CMap unless `to_unicode` is given.
    fn ryumin(doc: &mut lopdf::Document, to_unicode: Option<&str>) -> lopdf::Dictionary {
        let descriptor_id = doc.add_object(dictionary! {
            "Type" => "FontDescriptor", "FontName" => "Ryumin-Light", "Flags" => 6,
            "FontBBox" => vec![(-170).into(), (-331).into(), 1024.into(), 903.into()],
            "ItalicAngle" => 0, "Ascent" => 723, "Descent" => -241, "CapHeight" => 709,
            "StemV" => 69,
        });
        let cid_font_id = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "CIDFontType0", "BaseFont" => "Ryumin-Light",
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Japan1"),
                "Supplement" => 2,
            },
            "FontDescriptor" => descriptor_id,
            "DW" => 1000,
        });
        let mut font = dictionary! {
            "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "Ryumin-Light-Identity-V",
            "Encoding" => "Identity-V", "DescendantFonts" => vec![cid_font_id.into()],
        };
        if let Some(cmap) = to_unicode {
            let cmap_id = doc.add_object(Stream::new(dictionary! {}, cmap.as_bytes().to_vec()));
            font.set("ToUnicode", cmap_id);
        }
        font
    }

    /// Two columns of vertical Japanese. The CIDs are Adobe-Japan1's (as poppler's
    /// cidToUnicode table lists them): わ 0x398, た 0x368, く 0x358, し 0x360, 現 0x771,
    /// 象 0x9C5, and 0x476, a glyph variant of 芦 that the table gives with a variation
    /// selector, which is no text of its own.
    const COLUMNS: &str = "BT /F1 12 Tf 1 0 0 1 500 560 Tm <0398036803580360> Tj \
                           1 0 0 1 480 560 Tm <077109C50476> Tj ET";

    /// A CID font of one of Adobe's CJK collections without a ToUnicode CMap (miner-04):
    /// pdf-extract read no text at all from it; the collection's own table maps its CIDs.
    #[test]
    fn a_cjk_font_without_a_to_unicode_cmap_reads_through_its_collection() {
        let pages = extract_pages(&one_page(COLUMNS, |doc| ryumin(doc, None)), 10).unwrap();
        let words: Vec<&str> = pages[0].split_whitespace().collect();
        assert_eq!(words, ["わたくし", "現象芦"], "{pages:?}");
    }

    /// A font's own ToUnicode CMap stays what the text is read through.
    #[test]
    fn a_to_unicode_cmap_of_the_font_is_kept() {
        let cmap = "/CIDInit /ProcSet findresource begin 12 dict begin begincmap \
                    1 begincodespacerange <0000> <FFFF> endcodespacerange \
                    1 beginbfrange <0000> <00FF> <0041> endbfrange \
                    endcmap CMapName currentdict /CMap defineresource pop end end";
        let content = "BT /F1 12 Tf 1 0 0 1 500 560 Tm <00000001> Tj ET";
        let pages = extract_pages(&one_page(content, |doc| ryumin(doc, Some(cmap))), 10).unwrap();
        assert_eq!(pages, ["AB\n"]);
    }

    /// A minimal TrueType program (the tables a parser requires and a Windows Unicode `cmap`)
    /// mapping each character to a glyph index.
    fn truetype(glyphs: &[(char, u16)]) -> Vec<u8> {
        let mut head = vec![0u8; 54];
        head[0..4].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        head[12..16].copy_from_slice(&0x5F0F_3CF5u32.to_be_bytes());
        head[18..20].copy_from_slice(&1000u16.to_be_bytes());
        let mut hhea = vec![0u8; 36];
        hhea[0..4].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        let count = glyphs.iter().map(|&(_, glyph)| glyph).max().unwrap_or(0) + 1;
        let mut maxp = 0x0000_5000u32.to_be_bytes().to_vec();
        maxp.extend(count.to_be_bytes());
        // Format 4: one segment per character (glyph = code + delta), then the 0xFFFF end.
        let mut sorted = glyphs.to_vec();
        sorted.sort_unstable();
        let mut segments: Vec<(u16, u16)> = sorted
            .iter()
            .map(|&(c, glyph)| (c as u16, glyph.wrapping_sub(c as u16)))
            .collect();
        segments.push((0xFFFF, 1));
        let mut format4 = Vec::new();
        let words = |values: &mut Vec<u8>, items: &[u16]| {
            values.extend(items.iter().flat_map(|v| v.to_be_bytes()));
        };
        let seg_x2 = segments.len() as u16 * 2;
        words(&mut format4, &[4, 16 + 4 * seg_x2, 0, seg_x2, 0, 0, 0]);
        words(
            &mut format4,
            &segments.iter().map(|s| s.0).collect::<Vec<_>>(),
        );
        words(&mut format4, &[0]);
        words(
            &mut format4,
            &segments.iter().map(|s| s.0).collect::<Vec<_>>(),
        );
        words(
            &mut format4,
            &segments.iter().map(|s| s.1).collect::<Vec<_>>(),
        );
        words(&mut format4, &vec![0; segments.len()]);
        let mut cmap = Vec::new();
        words(&mut cmap, &[0, 1, 3, 1, 0, 12]);
        cmap.extend(format4);
        let tables = [
            (b"cmap", cmap),
            (b"head", head),
            (b"hhea", hhea),
            (b"maxp", maxp),
        ];
        let mut font = Vec::new();
        font.extend(0x0001_0000u32.to_be_bytes());
        words(&mut font, &[tables.len() as u16, 0, 0, 0]);
        let mut offset = 12 + 16 * tables.len();
        let mut data = Vec::new();
        for (tag, table) in &tables {
            font.extend(*tag);
            font.extend(0u32.to_be_bytes());
            font.extend((offset as u32).to_be_bytes());
            font.extend((table.len() as u32).to_be_bytes());
            data.extend(table);
            data.resize(data.len().next_multiple_of(4), 0);
            offset = 12 + 16 * tables.len() + data.len();
        }
        font.extend(data);
        font
    }

    /// An embedded TrueType CIDFont whose /ToUnicode is the name Identity-H instead of a CMap
    /// (miner-02, an invoice from wFirma: lopdf read its Polish letters as `|`, `B`, `[`). The
    /// CIDs go through /CIDToGIDMap to glyphs and the font's `cmap` back to characters.
    #[test]
    fn an_embedded_truetype_font_without_a_to_unicode_cmap_reads_through_its_cmap() {
        let program = truetype(&[('Ł', 1), ('ó', 2), ('d', 3), ('ź', 4), ('Ż', 5)]);
        // The producer's CIDs are the characters' code points; the glyphs are numbered anew.
        let mut cid_to_gid = vec![0u8; 2 * 0x200];
        for (cid, glyph) in [(0x141, 1u16), (0xF3, 2), (0x64, 3), (0x17A, 4), (0x17B, 5)] {
            cid_to_gid[2 * cid..2 * cid + 2].copy_from_slice(&glyph.to_be_bytes());
        }
        let pdf = one_page(
            "BT /F1 12 Tf 72 500 Td <014100F30064017A> Tj 0 -20 Td <017B00F3> Tj ET",
            |doc| {
                let program_id = doc.add_object(Stream::new(dictionary! {}, program));
                let map_id = doc.add_object(Stream::new(dictionary! {}, cid_to_gid));
                let descriptor_id = doc.add_object(dictionary! {
                    "Type" => "FontDescriptor", "FontName" => "LiberationSans", "Flags" => 32,
                    "FontBBox" => vec![(-203).into(), (-303).into(), 1050.into(), 910.into()],
                    "ItalicAngle" => 0, "Ascent" => 905, "Descent" => -212, "CapHeight" => 729,
                    "StemV" => 70, "FontFile2" => program_id,
                });
                let cid_font_id = doc.add_object(dictionary! {
                    "Type" => "Font", "Subtype" => "CIDFontType2", "BaseFont" => "LiberationSans",
                    "CIDSystemInfo" => dictionary! {
                        "Registry" => Object::string_literal("Adobe"),
                        "Ordering" => Object::string_literal("Identity"),
                        "Supplement" => 0,
                    },
                    "FontDescriptor" => descriptor_id, "CIDToGIDMap" => map_id, "DW" => 600,
                });
                dictionary! {
                    "Type" => "Font", "Subtype" => "Type0", "BaseFont" => "LiberationSans",
                    "Encoding" => "Identity-H", "ToUnicode" => "Identity-H",
                    "DescendantFonts" => vec![cid_font_id.into()],
                }
            },
        );
        assert_eq!(extract_pages(&pdf, 10).unwrap(), ["Łódź\nŻó\n"]);
    }
}

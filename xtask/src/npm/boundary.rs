//! Short names on the JS/wasm boundary.
//!
//! wasm-bindgen names each import after the JS it calls plus a hash
//! (`__wbg_instanceof_MessageEvent_7f71d71db210f737`, from the module `./ws_lifeline_bg.js`) and
//! each export after the Rust item (`lifelinesocket_set_onmessage`). Every name is stored twice:
//! in the wasm's import or export section and in the glue. wasm-opt's
//! `--minify-imports-and-exports-and-modules` renames them all to one- or two-character names
//! and prints the mapping; [`Mapping`] reads it, checks it against the wasm, and applies it to
//! the glue as wasm-bindgen wrote it (where the exports object is always the variable `wasm`),
//! before rolldown minifies it. [`check_minified_glue`] then proves no old name is left.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::Result;

/// Exports that keep their names: `init()` and `initSync()` return the exports object, and
/// `InitOutput` in index.d.ts promises its `memory`.
const PUBLIC_EXPORTS: [&str; 1] = ["memory"];

/// The glue's variable holding the wasm exports (`wasm = instance.exports`).
const EXPORTS_OBJECT: &str = "wasm";

/// wasm-opt's renames, old name to new.
#[derive(Debug, Default)]
pub(super) struct Mapping {
    /// The import modules the wasm had; wasm-opt merges them into one.
    modules: BTreeSet<String>,
    /// Import base names (unique across modules, which merging them requires).
    imports: BTreeMap<String, String>,
    /// Export names, less [`PUBLIC_EXPORTS`] once [`Mapping::restore_public_exports`] ran.
    exports: BTreeMap<String, String>,
}

impl Mapping {
    /// Reads what wasm-opt prints:
    /// `{"imports": [[module, old, new], ...], "exports": [[old, new], ...]}`.
    pub(super) fn parse(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("wasm-opt's name mapping is not JSON ({e}): {json}"))?;
        let rows = |key: &str, width: usize| -> Result<Vec<Vec<String>>> {
            let rows = value
                .get(key)
                .and_then(serde_json::Value::as_array)
                .ok_or_else(|| format!("wasm-opt's name mapping has no `{key}` array"))?;
            rows.iter()
                .map(|row| {
                    let cells: Option<Vec<String>> = row.as_array().and_then(|cells| {
                        cells
                            .iter()
                            .map(|cell| cell.as_str().map(str::to_string))
                            .collect()
                    });
                    cells.filter(|cells| cells.len() == width).ok_or_else(|| {
                        format!("wasm-opt's `{key}` row {row} is not {width} strings")
                    })
                })
                .collect()
        };
        let mut mapping = Self::default();
        for row in rows("imports", 3)? {
            let [module, old, new] = <[String; 3]>::try_from(row).unwrap_or_default();
            mapping.modules.insert(module);
            if mapping.imports.insert(old.clone(), new).is_some() {
                return Err(format!(
                    "two import modules both provide `{old}`: they cannot be merged into one"
                ));
            }
        }
        for row in rows("exports", 2)? {
            let [old, new] = <[String; 2]>::try_from(row).unwrap_or_default();
            if mapping.exports.insert(old.clone(), new).is_some() {
                return Err(format!("wasm-opt's mapping names the export `{old}` twice"));
            }
        }
        let news: Vec<&String> = mapping
            .imports
            .values()
            .chain(mapping.exports.values())
            .collect();
        if news.iter().collect::<BTreeSet<_>>().len() != news.len() {
            return Err("wasm-opt gave two imports or exports the same new name".into());
        }
        Ok(mapping)
    }

    /// Gives the [`PUBLIC_EXPORTS`] back their names in `wasm`, and drops them from the mapping.
    pub(super) fn restore_public_exports(&mut self, wasm: &[u8]) -> Result<Vec<u8>> {
        let mut renames = BTreeMap::new();
        for name in PUBLIC_EXPORTS {
            if let Some(minified) = self.exports.remove(name) {
                renames.insert(minified, name.to_string());
            }
        }
        rename_exports(wasm, &renames)
    }

    /// Checks the mapping against the wasm wasm-opt wrote: one import module, and every import
    /// and export named as the mapping says. Returns the import module's new name.
    pub(super) fn check_against(&self, wasm: &[u8]) -> Result<String> {
        let imports = imports(wasm)?;
        let modules: BTreeSet<&str> = imports.iter().map(|(module, _)| module.as_str()).collect();
        let [module] =
            <[&str; 1]>::try_from(modules.into_iter().collect::<Vec<_>>()).map_err(|modules| {
                format!("the minified wasm imports from {modules:?}, not one module")
            })?;
        if self.modules.len() != 1 {
            return Err(format!(
                "the wasm imported from {:?}; the glue has one import object to rename",
                self.modules
            ));
        }
        let expected: BTreeSet<&str> = self.imports.values().map(String::as_str).collect();
        let found: BTreeSet<&str> = imports.iter().map(|(_, base)| base.as_str()).collect();
        if expected != found || found.len() != imports.len() {
            return Err(format!(
                "the minified wasm's imports {found:?} are not the mapping's {expected:?}"
            ));
        }
        let mut expected: BTreeSet<&str> = self.exports.values().map(String::as_str).collect();
        let exports = exports(wasm)?;
        expected.extend(
            PUBLIC_EXPORTS
                .iter()
                .copied()
                .filter(|name| exports.iter().any(|e| e.as_str() == *name)),
        );
        let found: BTreeSet<&str> = exports.iter().map(String::as_str).collect();
        if expected != found {
            return Err(format!(
                "the minified wasm's exports {found:?} are not the mapping's {expected:?}"
            ));
        }
        Ok(module.to_string())
    }

    /// Renames, in the glue as wasm-bindgen wrote it, the import object's module key, each import
    /// (a key of that object, once) and each `wasm.<export>`. Fails on anything it cannot rename
    /// exactly: an import missing or named twice, a `wasm.<name>` that is no export.
    pub(super) fn rewrite_glue(&self, glue: &str, new_module: &str) -> Result<String> {
        let mut edits: Vec<(Range<usize>, &str)> = Vec::new();
        let mut import_uses: BTreeMap<&str, usize> = BTreeMap::new();
        for word in identifiers(glue) {
            let name = &glue[word.clone()];
            if let Some(new) = self.imports.get(name) {
                if !glue[word.end..].trim_start().starts_with(':') {
                    return Err(format!(
                        "the glue names the import `{name}` other than as a key of the import \
                         object: {}",
                        context(glue, &word)
                    ));
                }
                *import_uses.entry(name).or_default() += 1;
                edits.push((word, new));
            } else if name == EXPORTS_OBJECT
                && !glue[..word.start].ends_with('.')
                && glue[word.end..].starts_with('.')
            {
                let start = word.end + 1;
                let end = glue[start..]
                    .find(|c| !is_identifier_char(c))
                    .map_or(glue.len(), |n| start + n);
                let export = &glue[start..end];
                if export.is_empty() || PUBLIC_EXPORTS.contains(&export) {
                    continue;
                }
                let new = self.exports.get(export).ok_or_else(|| {
                    format!(
                        "the glue reads `{EXPORTS_OBJECT}.{export}`, which is no export of the \
                         wasm: {}",
                        context(glue, &word)
                    )
                })?;
                edits.push((start..end, new));
            }
        }
        for old in self.imports.keys() {
            match import_uses.get(old.as_str()) {
                Some(1) => {}
                Some(n) => return Err(format!("the glue's import object has `{old}` {n} times")),
                None => return Err(format!("the glue's import object has no `{old}`")),
            }
        }
        let mut out = String::with_capacity(glue.len());
        let mut at = 0;
        for (range, new) in edits {
            if range.start < at {
                return Err(format!("overlapping renames at {}", context(glue, &range)));
            }
            out.push_str(&glue[at..range.start]);
            out.push_str(new);
            at = range.end;
        }
        out.push_str(&glue[at..]);
        // The import object's key for the one module (checked by `check_against`).
        for old in &self.modules {
            let quoted = format!("\"{old}\"");
            match out.matches(&quoted).count() {
                1 => out = out.replacen(&quoted, &format!("\"{new_module}\""), 1),
                n => return Err(format!("the glue has {quoted} {n} times, not once")),
            }
        }
        Ok(out)
    }
}

/// Fails if the minified glue still holds an old name: a module or import name anywhere, or an
/// export name as an identifier (property, key or variable). Only the module's own `export{...}`
/// clause may repeat one, since the package's JS API (`isLifelineError`, `liveResources`) shares
/// names with the wasm exports that implement it.
pub(super) fn check_minified_glue(glue: &str, mapping: &Mapping) -> Result {
    let mut left: BTreeSet<&str> = mapping
        .modules
        .iter()
        .chain(mapping.imports.keys())
        .filter(|old| glue.contains(old.as_str()))
        .map(String::as_str)
        .collect();
    let clause = glue
        .rfind("export{")
        .and_then(|start| glue[start..].find('}').map(|end| start..start + end + 1));
    for word in identifiers(glue) {
        if clause.as_ref().is_some_and(|c| c.contains(&word.start)) {
            continue;
        }
        if let Some((old, _)) = mapping.exports.get_key_value(&glue[word]) {
            left.insert(old);
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the minified glue still uses wasm names that wasm-opt renamed: {left:?}"
        ))
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// Byte ranges of the maximal runs of identifier characters (so numbers are words too).
fn identifiers(text: &str) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let start = at + text[at..].find(is_identifier_char)?;
        let end = text[start..]
            .find(|c| !is_identifier_char(c))
            .map_or(text.len(), |n| start + n);
        at = end;
        Some(start..end)
    })
}

/// The line around `range`, for error messages.
fn context(text: &str, range: &Range<usize>) -> String {
    let start = text[..range.start].rfind('\n').map_or(0, |n| n + 1);
    let end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |n| range.end + n);
    format!("`{}`", text[start..end].trim())
}

// ---------------------------------------------------------------------------------------------
// The wasm binary: just enough of https://webassembly.github.io/spec/core/binary/modules.html
// ---------------------------------------------------------------------------------------------

const IMPORT_SECTION: u8 = 2;
const EXPORT_SECTION: u8 = 7;

/// `(module, name)` of each import. Only function imports are read: the only kind
/// wasm-bindgen's output imports without threads.
fn imports(wasm: &[u8]) -> Result<Vec<(String, String)>> {
    let Some(payload) = section(wasm, IMPORT_SECTION)? else {
        return Ok(Vec::new());
    };
    let mut reader = Reader::new(payload);
    let mut imports = Vec::new();
    for _ in 0..reader.u32()? {
        let module = reader.name()?;
        let name = reader.name()?;
        match reader.byte()? {
            0 => drop(reader.u32()?),
            kind => {
                return Err(format!(
                    "the wasm imports {module}.{name} of kind {kind}; only functions are expected"
                ));
            }
        }
        imports.push((module.to_string(), name.to_string()));
    }
    Ok(imports)
}

/// The export names.
fn exports(wasm: &[u8]) -> Result<Vec<String>> {
    let Some(payload) = section(wasm, EXPORT_SECTION)? else {
        return Ok(Vec::new());
    };
    let mut reader = Reader::new(payload);
    let mut names = Vec::new();
    for _ in 0..reader.u32()? {
        names.push(reader.name()?.to_string());
        reader.byte()?;
        reader.u32()?;
    }
    Ok(names)
}

/// `wasm` with exports renamed (old name to new); each rename must apply to one export, and
/// the names stay unique.
fn rename_exports(wasm: &[u8], renames: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    if renames.is_empty() {
        return Ok(wasm.to_vec());
    }
    let payload = section(wasm, EXPORT_SECTION)?.ok_or("the wasm has no export section")?;
    let mut reader = Reader::new(payload);
    let count = reader.u32()?;
    let mut rewritten = Vec::with_capacity(payload.len());
    leb128(&mut rewritten, count);
    let mut names = BTreeSet::new();
    let mut applied = 0;
    for _ in 0..count {
        let old = reader.name()?;
        let name = renames.get(old).map_or(old, |new| {
            applied += 1;
            new.as_str()
        });
        if !names.insert(name.to_string()) {
            return Err(format!("renaming exports would name two `{name}`"));
        }
        leb128(
            &mut rewritten,
            u32::try_from(name.len()).map_err(|e| e.to_string())?,
        );
        rewritten.extend_from_slice(name.as_bytes());
        let kind = reader.byte()?;
        rewritten.push(kind);
        leb128(&mut rewritten, reader.u32()?);
    }
    if applied != renames.len() || reader.at != payload.len() {
        return Err(format!("could not rename the exports {renames:?}"));
    }
    // The payload is a subslice of `wasm`: splice the new one in, with its new size.
    let start = payload.as_ptr() as usize - wasm.as_ptr() as usize;
    let mut size_start = start - 1;
    while wasm[size_start - 1] & 0x80 != 0 {
        size_start -= 1;
    }
    let mut out = wasm[..size_start].to_vec();
    leb128(
        &mut out,
        u32::try_from(rewritten.len()).map_err(|e| e.to_string())?,
    );
    out.extend_from_slice(&rewritten);
    out.extend_from_slice(&wasm[start + payload.len()..]);
    Ok(out)
}

/// The payload of the section with this id (at most one, as for every known section).
fn section(wasm: &[u8], id: u8) -> Result<Option<&[u8]>> {
    if wasm.get(..8) != Some(b"\0asm\x01\0\0\0".as_slice()) {
        return Err("not a wasm module (version 1)".into());
    }
    let mut reader = Reader::new(wasm);
    reader.at = 8;
    let mut found = None;
    while reader.at < wasm.len() {
        let this = reader.byte()?;
        let size = reader.u32()? as usize;
        let payload = reader.take(size)?;
        if this == id {
            if found.is_some() {
                return Err(format!("the wasm has two sections of id {id}"));
            }
            found = Some(payload);
        }
    }
    Ok(found)
}

fn leb128(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let taken = self
            .bytes
            .get(self.at..self.at.saturating_add(n))
            .ok_or("the wasm ends inside a section")?;
        self.at += n;
        Ok(taken)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let byte = self.byte()?;
            value |= u32::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a LEB128 number in the wasm is longer than 5 bytes".into())
    }

    fn name(&mut self) -> Result<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|e| format!("a wasm name is not UTF-8: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module importing `./m.js`.`f_hash` and exporting `memory` and `run`, then the same
    /// renamed as wasm-opt would: imports from `a`.`a`, exports `b` and `c`.
    fn module(module: &str, import: &str, exports: [&str; 2]) -> Vec<u8> {
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        let mut types = vec![1, 0x60, 0, 0];
        let mut section = |id: u8, payload: &mut Vec<u8>| {
            wasm.push(id);
            leb128(&mut wasm, payload.len() as u32);
            wasm.append(payload);
        };
        section(1, &mut types);
        let mut imports = vec![1];
        for name in [module, import] {
            leb128(&mut imports, name.len() as u32);
            imports.extend_from_slice(name.as_bytes());
        }
        imports.extend([0, 0]);
        section(IMPORT_SECTION, &mut imports);
        section(5, &mut vec![1, 0, 1]);
        let mut export_payload = vec![2];
        for (name, kind) in exports.into_iter().zip([2u8, 0]) {
            leb128(&mut export_payload, name.len() as u32);
            export_payload.extend_from_slice(name.as_bytes());
            export_payload.extend([kind, 0]);
        }
        section(EXPORT_SECTION, &mut export_payload);
        wasm
    }

    const MAPPING: &str = r#"{
 "imports": [
  ["./m.js", "__wbg_f_0123456789abcdef", "a"]
 ],
"exports": [
  ["memory", "b"],
  ["thing_run", "c"]
 ]
}"#;

    const GLUE: &str = r#"
/** Calls wasm.thing_run. */
export function run() { wasm.thing_run(); return wasm.memory.buffer; }
function __wbg_get_imports() {
    const import0 = {
        __proto__: null,
        __wbg_f_0123456789abcdef: function() { wasm.thing_run(); },
    };
    return { __proto__: null, "./m.js": import0 };
}
let wasm;
"#;

    #[test]
    fn renames_the_boundary_in_wasm_and_glue() {
        let mut mapping = Mapping::parse(MAPPING).unwrap();
        let wasm = module("a", "a", ["b", "c"]);
        let wasm = mapping.restore_public_exports(&wasm).unwrap();
        assert_eq!(wasm, module("a", "a", ["memory", "c"]));
        assert_eq!(mapping.check_against(&wasm).unwrap(), "a");
        let glue = mapping.rewrite_glue(GLUE, "a").unwrap();
        assert_eq!(
            glue,
            GLUE.replace("wasm.thing_run", "wasm.c")
                .replace("__wbg_f_0123456789abcdef", "a")
                .replace("\"./m.js\"", "\"a\"")
        );
        let minified = "function r(){A.c();return A.memory.buffer}let A;export{r as run};";
        check_minified_glue(minified, &mapping).unwrap();
        let minified = "function r(){A.c()}let A;export{r as thing_run};";
        check_minified_glue(minified, &mapping).unwrap();
    }

    #[test]
    fn fails_on_what_it_cannot_rename_exactly() {
        let mapping = Mapping::parse(MAPPING).unwrap();
        let twice = GLUE.replace("let wasm;", "let wasm; __wbg_f_0123456789abcdef: 1");
        assert!(mapping.rewrite_glue(&twice, "a").is_err());
        let called = GLUE.replace("let wasm;", "let wasm; __wbg_f_0123456789abcdef();");
        assert!(mapping.rewrite_glue(&called, "a").is_err());
        let unknown = GLUE.replace("let wasm;", "let wasm; wasm.other();");
        assert!(mapping.rewrite_glue(&unknown, "a").is_err());
        let missing = GLUE.replace("__wbg_f_0123456789abcdef", "other");
        assert!(mapping.rewrite_glue(&missing, "a").is_err());
        for left in [
            "A.thing_run()",
            "A[\"thing_run\"]()",
            "let{thing_run:r}=A",
            "x=`./m.js`",
            "x.__wbg_f_0123456789abcdef",
        ] {
            assert!(check_minified_glue(left, &mapping).is_err(), "{left}");
        }
    }

    #[test]
    fn checks_the_wasm_against_the_mapping() {
        let mut mapping = Mapping::parse(MAPPING).unwrap();
        let wasm = mapping
            .restore_public_exports(&module("a", "a", ["b", "c"]))
            .unwrap();
        assert!(
            mapping
                .check_against(&module("a", "z", ["memory", "c"]))
                .is_err()
        );
        assert!(
            mapping
                .check_against(&module("a", "a", ["memory", "d"]))
                .is_err()
        );
        assert!(mapping.check_against(&wasm).is_ok());
    }
}

//! The JS side of the wasm/JS boundary, generated from its one table in Rust.
//!
//! `client-wasm/src/js/boundary.rs` declares the numbers that cross between `src/js.rs` and
//! `js/index.js` in two macros: `numbered!` (fieldless enums) and `page_events!` (event kinds
//! with their field names). This module parses both invocations with syn and writes
//! `client-wasm/js/boundary.gen.js`: a constant per variant (`INPUT_TEXT`), the variants' names
//! by number (`STATE_NAMES`; `null` for an `#[unnamed]` one, so that the minified package
//! carries no name `index.js` never reads) and, for events, their fields (`PAGE_EVENT_FIELDS`).
//! The file is
//! committed, so `index.js` reads as plain JS; the test below fails when it is stale. The
//! events' TypeScript side is [`super::boundary_ts`]'s.

use std::path::PathBuf;

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Ident, Item, Lit, LitStr, Meta, Token, braced};

use crate::Result;

/// The table, relative to the workspace root.
pub(super) const SOURCE: &str = "client-wasm/src/js/boundary.rs";
/// The generated file, relative to the workspace root.
const GENERATED: &str = "client-wasm/js/boundary.gen.js";

/// Writes the generated file if its text changed.
pub(super) fn write() -> Result {
    let path = crate::root().join(GENERATED);
    let text = generate(&source_text()?)?;
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        println!("xtask: regenerated {GENERATED} from {SOURCE}");
    }
    Ok(())
}

pub(super) fn source_text() -> Result<String> {
    let path: PathBuf = crate::root().join(SOURCE);
    std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
}

/// One enum of the table.
pub(super) struct Table {
    doc: String,
    pub(super) name: Ident,
    pub(super) variants: Vec<Variant>,
}

pub(super) struct Variant {
    pub(super) doc: String,
    pub(super) name: Ident,
    /// `#[cfg(feature = "rooms")]`: only the build with protocol v1 has it.
    pub(super) rooms_only: bool,
    /// `#[unnamed]`: `index.js` never looks its name up.
    unnamed: bool,
    /// `#[cfg(feature = "persist")]`: only the build with the persistent outbox (the
    /// `ws-lifeline/persist` entry) has it.
    pub(super) persist_only: bool,
    /// The `key = "value"` pairs of its `#[ts(...)]`.
    pub(super) ts: Vec<(Ident, String)>,
    /// `Some` for event kinds: the event's fields.
    pub(super) fields: Option<Vec<Field>>,
}

/// An event's field: `name: "TypeScript type"`.
pub(super) struct Field {
    pub(super) doc: String,
    pub(super) name: Ident,
    pub(super) ts_type: String,
    /// `#[ts(into = "object.property")]`: where `index.js` puts the value instead.
    pub(super) into: Option<String>,
}

/// The text of `///` comments, lines joined with spaces.
fn doc_of(attrs: &[Attribute]) -> String {
    let lines = attrs.iter().filter_map(|attr| match &attr.meta {
        Meta::NameValue(pair) if pair.path.is_ident("doc") => match &pair.value {
            Expr::Lit(lit) => match &lit.lit {
                Lit::Str(text) => Some(text.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    });
    lines.collect::<Vec<_>>().join(" ")
}

/// The `key = "value"` pairs of the `#[ts(...)]` among `attrs`.
fn ts_of(attrs: &[Attribute]) -> syn::Result<Vec<(Ident, String)>> {
    let mut pairs = Vec::new();
    for attr in attrs.iter().filter(|a| a.path().is_ident("ts")) {
        attr.parse_nested_meta(|meta| {
            let key = meta.path.require_ident()?.clone();
            let value: LitStr = meta.value()?.parse()?;
            pairs.push((key, value.value()));
            Ok(())
        })?;
    }
    Ok(pairs)
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let name = input.parse()?;
        input.parse::<Token![:]>()?;
        let ts_type = input.parse::<LitStr>()?.value();
        let mut into = None;
        for (key, value) in ts_of(&attrs)? {
            if key != "into" {
                return Err(syn::Error::new(
                    key.span(),
                    "a field's `ts` knows only `into`",
                ));
            }
            into = Some(value);
        }
        Ok(Field {
            doc: doc_of(&attrs),
            name,
            ts_type,
            into,
        })
    }
}

impl Parse for Table {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let doc = doc_of(&input.call(Attribute::parse_outer)?);
        input.parse::<Token![enum]>()?;
        let name = input.parse()?;
        let body;
        braced!(body in input);
        let mut variants = Vec::new();
        while !body.is_empty() {
            // Every build numbers all variants; `#[cfg(feature = "rooms")]` ones are left out of
            // the names and fields of the raw build, `persist` ones out of those of the builds
            // without the outbox.
            let attrs = body.call(Attribute::parse_outer)?;
            let unnamed = attrs.iter().any(|a| a.path().is_ident("unnamed"));
            let feature = feature_of(&attrs)?;
            let rooms_only = feature.as_deref() == Some("rooms");
            let persist_only = feature.as_deref() == Some("persist");
            let doc = doc_of(&attrs);
            let ts = ts_of(&attrs)?;
            let name = body.parse()?;
            let fields = if body.peek(syn::token::Brace) {
                let list;
                braced!(list in body);
                let fields = Punctuated::<Field, Token![,]>::parse_terminated(&list)?;
                Some(fields.into_iter().collect())
            } else {
                None
            };
            body.parse::<Token![,]>()?;
            variants.push(Variant {
                doc,
                name,
                rooms_only,
                unnamed,
                persist_only,
                ts,
                fields,
            });
        }
        Ok(Table {
            doc,
            name,
            variants,
        })
    }
}

/// The feature of `attrs`' `#[cfg(feature = "rooms" | "persist")]`, if any; any other `cfg`
/// is refused.
fn feature_of(attrs: &[Attribute]) -> syn::Result<Option<String>> {
    let mut feature = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("cfg")) {
        let condition: syn::MetaNameValue = attr.parse_args()?;
        let name = match &condition.value {
            Expr::Lit(l) if condition.path.is_ident("feature") => match &l.lit {
                Lit::Str(s) if ["rooms", "persist"].contains(&s.value().as_str()) => s.value(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        if name.is_empty() {
            return Err(syn::Error::new(
                attr.pound_token.span,
                "only `cfg(feature = \"rooms\")` and `cfg(feature = \"persist\")` are known",
            ));
        }
        feature = Some(name);
    }
    Ok(feature)
}

/// Every table of the source, in order.
pub(super) fn tables(source: &str) -> Result<Vec<Table>> {
    let file = syn::parse_file(source).map_err(|e| format!("parsing {SOURCE}: {e}"))?;
    let mut tables = Vec::new();
    for item in file.items {
        let Item::Macro(item) = item else { continue };
        let parsed = if item.mac.path.is_ident("numbered") {
            item.mac.parse_body_with(|input: ParseStream<'_>| {
                let mut tables = Vec::new();
                while !input.is_empty() {
                    tables.push(input.parse::<Table>()?);
                }
                Ok(tables)
            })
        } else if item.mac.path.is_ident("page_events") {
            item.mac.parse_body::<Table>().map(|table| vec![table])
        } else {
            continue;
        };
        tables.extend(parsed.map_err(|e| format!("parsing a table of {SOURCE}: {e}"))?);
    }
    if tables.is_empty() {
        return Err(format!("{SOURCE} declares no table"));
    }
    Ok(tables)
}

/// `SendText` → `SEND_TEXT`.
fn screaming(name: &str) -> String {
    let mut out = String::new();
    for (at, c) in name.chars().enumerate() {
        if c.is_uppercase() && at > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// `RoomMessage` → `roomMessage`, `was_clean` → `wasClean`.
pub(super) fn lower_camel(name: &str) -> String {
    let mut out = String::new();
    let mut upper_next = false;
    for (at, c) in name.chars().enumerate() {
        if c == '_' {
            upper_next = true;
        } else if at == 0 {
            out.push(c.to_ascii_lowercase());
        } else if upper_next {
            out.push(c.to_ascii_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn quoted(names: impl IntoIterator<Item = String>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("\"{n}\"")).collect();
    format!("[{}]", names.join(", "))
}

/// A JS array of `item` for each variant: the rooms-only ones (after the common ones) behind
/// `HAS_ROOMS` and the persist-only ones (last) behind `HAS_PERSIST`, which the package build
/// defines (see `index.js`); one item a line if `one_a_line`.
fn per_variant(
    table: &Table,
    one_a_line: bool,
    item: impl Fn(&Variant) -> String,
) -> Result<String> {
    let group = |v: &Variant| usize::from(v.rooms_only) + 2 * usize::from(v.persist_only);
    if table
        .variants
        .windows(2)
        .any(|pair| group(&pair[0]) > group(&pair[1]))
    {
        return Err(format!(
            "{}: rooms-only variants must come last (persist-only ones after them), so that \
             the numbers of every build agree",
            table.name
        ));
    }
    let of_group = |wanted: usize| -> Vec<&Variant> {
        let variants = table.variants.iter();
        variants.filter(|v| group(v) == wanted).collect()
    };
    let list = |variants: Vec<&Variant>, indent: &str| {
        let items = variants.into_iter().map(&item);
        if one_a_line {
            items
                .map(|i| format!("\n{indent}  {i},"))
                .collect::<String>()
                + "\n"
        } else {
            items.collect::<Vec<_>>().join(", ")
        }
    };
    let mut text = list(of_group(0), "");
    for (wanted, define) in [(1, "HAS_ROOMS"), (2, "HAS_PERSIST")] {
        let variants = of_group(wanted);
        if variants.is_empty() {
            continue;
        }
        let more = list(variants, "  ");
        text = if one_a_line {
            format!("{text}  ...({define} ? [{more}  ] : []),\n")
        } else {
            format!("{text}, ...({define} ? [{more}] : [])")
        };
    }
    Ok(format!("[{text}]"))
}

/// `text` as `//` lines of at most 100 characters.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("//");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 100 && line.len() > 2 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("//");
        }
        line.push(' ');
        line.push_str(word);
    }
    out + &line + "\n"
}

/// The JS module for the table in `source`.
fn generate(source: &str) -> Result<String> {
    let mut js = format!(
        "// Generated from {SOURCE} by `cargo xtask package`: do not edit.\n\
         // `cargo test -p xtask` fails when this file is stale.\n\
         /* global HAS_ROOMS, HAS_PERSIST */\n"
    );
    for table in tables(source)? {
        let prefix = screaming(&table.name.to_string());
        js.push('\n');
        js.push_str(&comment(&format!("{}: {}", table.name, table.doc)));
        for (number, variant) in table.variants.iter().enumerate() {
            js.push_str(&super::boundary_ts::comment(&variant.doc, ""));
            let name = screaming(&variant.name.to_string());
            js.push_str(&format!("export const {prefix}_{name} = {number};\n"));
        }
        let names = per_variant(&table, false, |v| {
            if v.unnamed {
                "null".to_string()
            } else {
                format!("\"{}\"", lower_camel(&v.name.to_string()))
            }
        })?;
        js.push_str(&format!("export const {prefix}_NAMES = {names};\n"));
        if table.variants.iter().any(|v| v.fields.is_some()) {
            let fields = per_variant(&table, true, |v| {
                quoted(
                    v.fields
                        .iter()
                        .flatten()
                        .map(|f| lower_camel(&f.name.to_string())),
                )
            })?;
            js.push_str(&format!("export const {prefix}_FIELDS = {fields};\n"));
        }
    }
    Ok(js)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_boundary_js_is_current() {
        let committed = std::fs::read_to_string(crate::root().join(GENERATED))
            .expect("the generated file is committed");
        let fresh = generate(&source_text().expect("the table reads")).expect("the table parses");
        assert!(
            committed == fresh,
            "{GENERATED} is stale: run `cargo xtask package` to regenerate it from {SOURCE}"
        );
    }

    #[test]
    fn variants_are_numbered_in_order_with_their_fields() {
        let source = r#"
            numbered! {
                /// Calls.
                enum Call {
                    /// Sends.
                    SendText,
                    Close,
                    /// Read by number only.
                    #[unnamed]
                    Seed,
                }
            }
            page_events! {
                enum PageEvent {
                    Open { protocol: "string" },
                    Giveup {},
                    #[cfg(feature = "rooms")]
                    RoomMessage { room: "string", was_clean: "boolean" },
                }
            }
        "#;
        let js = generate(source).expect("parses");
        assert!(js.contains("/** Sends. */\nexport const CALL_SEND_TEXT = 0;\n"));
        assert!(js.contains("export const CALL_CLOSE = 1;\n"));
        assert!(js.contains("/** Read by number only. */\nexport const CALL_SEED = 2;\n"));
        assert!(js.contains("export const CALL_NAMES = [\"sendText\", \"close\", null];\n"));
        assert!(js.contains("export const PAGE_EVENT_GIVEUP = 1;\n"));
        assert!(js.contains("export const PAGE_EVENT_ROOM_MESSAGE = 2;\n"));
        assert!(js.contains(
            "export const PAGE_EVENT_NAMES = [\"open\", \"giveup\", ...(HAS_ROOMS ? [\"roomMessage\"] : [])];\n"
        ));
        assert!(js.contains(
            "export const PAGE_EVENT_FIELDS = [\n  [\"protocol\"],\n  [],\n  \
             ...(HAS_ROOMS ? [\n    [\"room\", \"wasClean\"],\n  ] : []),\n];\n"
        ));
    }

    #[test]
    fn persist_only_variants_come_last_behind_their_define() {
        let source = r#"
            page_events! {
                enum PageEvent {
                    Open { protocol: "string" },
                    #[cfg(feature = "rooms")]
                    Left { room: "string" },
                    #[cfg(feature = "persist")]
                    OutboxDelivered { ids: "readonly number[]" },
                }
            }
        "#;
        let js = generate(source).expect("parses");
        assert!(js.contains(
            "export const PAGE_EVENT_NAMES = [\"open\", ...(HAS_ROOMS ? [\"left\"] : []), \
             ...(HAS_PERSIST ? [\"outboxDelivered\"] : [])];\n"
        ));
        let misplaced = source.replace("#[cfg(feature = \"rooms\")]", "#[cfg(feature = \"x\")]");
        assert!(
            generate(&misplaced).is_err(),
            "an unknown feature is refused"
        );
        let reordered = r#"
            page_events! {
                enum PageEvent {
                    #[cfg(feature = "persist")]
                    OutboxDelivered { ids: "readonly number[]" },
                    #[cfg(feature = "rooms")]
                    Left { room: "string" },
                }
            }
        "#;
        let error = generate(reordered).err().unwrap_or_default();
        assert!(error.contains("must come last"), "{error}");
    }

    #[test]
    fn a_rooms_only_variant_before_a_common_one_is_refused() {
        let source = r#"
            page_events! {
                enum PageEvent {
                    #[cfg(feature = "rooms")]
                    Welcome { name: "string" },
                    Open { protocol: "string" },
                }
            }
        "#;
        let error = generate(source).err().unwrap_or_default();
        assert!(error.contains("must come last"), "{error}");
    }
}

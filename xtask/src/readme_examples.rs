//! `client-wasm/README.md` shows its examples in full, and `client-wasm/examples/` holds the
//! copies that the build checks. This test keeps the two equal: every line of a README example
//! appears in the example file it names, in order (`use` lines anywhere), apart from
//! indentation and the `pub(crate)` an item needs inside the example's module.

#[cfg(test)]
mod tests {
    const PAIRS: [(&str, &str); 4] = [
        ("## Example (Yew)", "yew_room.rs"),
        ("## Without Yew (browser)", "browser_rooms.rs"),
        ("## Native (tokio)", "native_rooms.rs"),
        (
            "## Persistent outbox (feature `persist`)",
            "native_outbox.rs",
        ),
    ];

    /// The first ```rust block after `heading`.
    fn block_after<'a>(readme: &'a str, heading: &str) -> &'a str {
        let from = readme.find(heading).expect("README heading");
        let start = readme[from..].find("```rust\n").expect("a rust block") + from + 8;
        let end = readme[start..].find("\n```").expect("the block's end") + start;
        &readme[start..end]
    }

    #[test]
    fn readme_examples_are_the_compiled_examples() {
        let root = crate::root().join("client-wasm");
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        for (heading, file) in PAIRS {
            let example = std::fs::read_to_string(root.join("examples").join(file)).unwrap();
            let normalized: Vec<&str> = example
                .lines()
                .map(|line| line.trim().trim_start_matches("pub(crate) "))
                .collect();
            let mut lines = normalized.iter();
            for wanted in block_after(&readme, heading).lines().map(str::trim) {
                if wanted.is_empty() {
                    continue;
                }
                let found = if wanted.starts_with("use ") {
                    normalized.contains(&wanted)
                } else {
                    lines.any(|line| *line == wanted)
                };
                assert!(
                    found,
                    "client-wasm/README.md ({heading}) has `{wanted}`, which examples/{file} \
                     lacks or has out of order"
                );
            }
        }
    }
}

//! The documentation holds together: docs/configuration.md is what the code generates from the
//! CRD schemas, every relative link and anchor in the README and docs/ resolves, and the README
//! stays a front door (at most 300 lines, no section over 60). Reads files only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn configuration_reference_is_what_the_code_generates() {
    let generated = digital_channels_operator::api::reference::configuration_reference();
    let on_disk = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap_or_default();
    if on_disk == generated {
        return;
    }
    let (old, new): (Vec<&str>, Vec<&str>) =
        (on_disk.lines().collect(), generated.lines().collect());
    let line = old
        .iter()
        .zip(&new)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(new.len()));
    panic!(
        "docs/configuration.md differs from the CRD schemas: run scripts/update-crds.\n\
         First difference at line {}:\n  file:      {}\n  generated: {}\n\
         ({} lines in the file, {} generated)",
        line + 1,
        old.get(line).unwrap_or(&"<end of file>"),
        new.get(line).unwrap_or(&"<end of file>"),
        old.len(),
        new.len()
    );
}

/// The markdown files whose links are checked.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    let chart = root().join("charts/digital-channels-operator/README.md");
    if chart.exists() {
        files.push(chart);
    }
    files
}

/// Lines outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fence: Option<&str> = None;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(open), Some(m)) if open == m => fence = None,
            (None, None) => lines.push((i + 1, line)),
            _ => {}
        }
    }
    lines
}

/// A heading's anchor as GitHub makes it: lowercase, punctuation but `-` and `_` dropped,
/// spaces to `-`. Link text stands for the link.
fn slug(heading: &str) -> String {
    let mut text = heading.to_string();
    while let (Some(open), Some(mid)) = (text.find('['), text.find("](")) {
        let Some(close) = text[mid..].find(')') else {
            break;
        };
        if open > mid {
            break;
        }
        let label = text[open + 1..mid].to_string();
        text.replace_range(open..mid + close + 1, &label);
    }
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every anchor of a markdown text; a repeated heading gets `-1`, `-2`, ...
fn anchors(text: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = Vec::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let count = seen.entry(base.clone()).or_insert(0);
        anchors.push(match *count {
            0 => base.clone(),
            n => format!("{base}-{n}"),
        });
        *count += 1;
    }
    anchors
}

/// `line` without its code spans.
fn without_code(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// The targets of the inline links and images of a line: `[text](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let prose = without_code(line);
    let mut targets = Vec::new();
    let mut rest = prose.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after.find(')').unwrap_or(after.len());
        let target = after[..end].split_whitespace().next().unwrap_or_default();
        targets.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end..];
    }
    targets
}

/// What is wrong with one link of `file`, if anything.
fn broken(file: &Path, target: &str) -> Option<String> {
    if target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
    {
        return None;
    }
    let (path, anchor) = target.split_once('#').unwrap_or((target, ""));
    let resolved = match path {
        "" => file.to_path_buf(),
        _ => file.parent().expect("a file has a folder").join(path),
    };
    if !resolved.exists() {
        return Some(format!("{target}: no file {}", resolved.display()));
    }
    if anchor.is_empty() {
        return None;
    }
    if resolved.extension().is_none_or(|e| e != "md") {
        return Some(format!(
            "{target}: an anchor into a file that is not markdown"
        ));
    }
    let known = anchors(&read(&resolved));
    (!known.iter().any(|a| a == anchor)).then(|| format!("{target}: no heading #{anchor}"))
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut problems = Vec::new();
    for file in documents() {
        let text = read(&file);
        let name = file
            .strip_prefix(root())
            .unwrap_or(&file)
            .display()
            .to_string();
        for (number, line) in prose_lines(&text) {
            for target in link_targets(line) {
                if let Some(problem) = broken(&file, &target) {
                    problems.push(format!("{name}:{number}: {problem}"));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n{}",
        problems.join("\n")
    );
}

/// Each `##` section of the README with its length in lines, its `###` subsections included;
/// the text before the first one counts as a section too.
fn readme_sections(text: &str) -> Vec<(String, usize)> {
    let mut sections = vec![("(top)".to_string(), 0)];
    let prose: std::collections::BTreeSet<usize> =
        prose_lines(text).into_iter().map(|(n, _)| n).collect();
    for (i, line) in text.lines().enumerate() {
        let heading =
            prose.contains(&(i + 1)) && (line.starts_with("## ") || line.starts_with("### "));
        if heading && line.starts_with("## ") {
            sections.push((line.to_string(), 0));
        }
        sections.last_mut().expect("one section at least").1 += 1;
    }
    sections
}

#[test]
fn the_readme_is_a_front_door() {
    let text = read(&root().join("README.md"));
    let lines = text.lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines; at most 300: move detail into docs/"
    );
    let long: Vec<String> = readme_sections(&text)
        .into_iter()
        .filter(|(_, length)| *length > 60)
        .map(|(heading, length)| format!("{heading}: {length} lines"))
        .collect();
    assert!(long.is_empty(), "README sections over 60 lines: {long:?}");
}

#[test]
fn the_checker_finds_what_github_would() {
    assert_eq!(slug(" `dc-operator run`"), "dc-operator-run");
    assert_eq!(
        slug(" Conditions and what to do"),
        "conditions-and-what-to-do"
    );
    assert_eq!(
        slug(" RBAC: what the operator may do, and why"),
        "rbac-what-the-operator-may-do-and-why"
    );
    assert_eq!(slug(" See [status](status.md) now"), "see-status-now");
    let text = "# A\n```sh\n# not a heading\n```\n## A\n### b_c.d\n";
    assert_eq!(anchors(text), ["a", "a-1", "b_cd"]);
    assert_eq!(
        link_targets("see [x](a.md#b) and `[y](no.md)` ![i](p.png \"t\")"),
        ["a.md#b", "p.png"]
    );
    let readme = root().join("README.md");
    assert!(broken(&readme, "docs/no-such-page.md").is_some());
    assert!(broken(&readme, "#no-such-heading").is_some());
    assert!(broken(&readme, "https://example.com/x.md#y").is_none());
    let sections = readme_sections("# T\nintro\n## A\n1\n### B\n2\n## C\n");
    assert_eq!(
        sections,
        [("(top)".into(), 2), ("## A".into(), 4), ("## C".into(), 1)]
    );
}

/// The YAML blocks of a markdown text.
fn yaml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_readme_manifests_are_valid_resources() {
    use digital_channels_operator::api::{
        DigitalChannelsEnvironment, DigitalChannelsTenant, validation,
    };
    use serde::Deserialize;
    let text = read(&root().join("README.md"));
    let mut kinds = Vec::new();
    for block in yaml_blocks(&text) {
        for document in serde_yaml_ng::Deserializer::from_str(&block) {
            let value = serde_yaml_ng::Value::deserialize(document).expect("README YAML parses");
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            let problems = match kind.as_str() {
                "DigitalChannelsEnvironment" => {
                    let env: DigitalChannelsEnvironment =
                        serde_yaml_ng::from_value(value).expect("an environment");
                    validation::environment_problems(&env.spec)
                }
                "DigitalChannelsTenant" => {
                    let tenant: DigitalChannelsTenant =
                        serde_yaml_ng::from_value(value).expect("a tenant");
                    let name = tenant.metadata.name.clone().unwrap_or_default();
                    validation::tenant_problems_named(&name, &tenant.spec)
                }
                _ => Vec::new(),
            };
            assert!(problems.is_empty(), "README's {kind}: {problems:?}");
            kinds.push(kind);
        }
    }
    for kind in [
        "DigitalChannelsEnvironment",
        "DigitalChannelsTenant",
        "Secret",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "README shows no {kind}: {kinds:?}"
        );
    }
}

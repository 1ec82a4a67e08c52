//! The estate as a person reads it (a tree as `crossplane beta trace` draws one, `-o wide`
//! with every message and detail) or as a script does (`-o json`, `-o yaml`).

use jiff::Timestamp;

use super::Format;
use super::model::{Estate, Group, Resource};
use crate::api::conditions::{Condition, ConditionStatus};

/// Longest message in the default view; `-o wide` shows them whole.
pub const MESSAGE_LIMIT: usize = 100;

/// The estate in `format`, ages as of `now`; with `all_namespaces`, a NAMESPACE column.
pub fn render(estate: &Estate, format: Format, now: Timestamp, all_namespaces: bool) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(estate).expect("the estate serializes");
            text.push('\n');
            text
        }
        Format::Yaml => serde_yaml_ng::to_string(estate).expect("the estate serializes"),
        Format::Text | Format::Wide => {
            let view = View {
                now,
                wide: format == Format::Wide,
            };
            let trees: Vec<Node> = estate.environments.iter().map(|g| view.group(g)).collect();
            table(&trees, all_namespaces)
        }
    }
}

/// One line of the table, before the tree is drawn.
#[derive(Clone, Default)]
struct Row {
    namespace: String,
    name: String,
    ready: String,
    reason: String,
    state: String,
    policy: String,
    age: String,
    message: String,
}

/// A row, the notes under it (what to do, the next retry, details) and its children.
struct Node {
    row: Row,
    notes: Vec<String>,
    children: Vec<Node>,
}

struct View {
    now: Timestamp,
    wide: bool,
}

impl View {
    fn group(&self, g: &Group) -> Node {
        let mut root = match &g.environment {
            Some(env) if g.context_only => Node {
                row: self.resource_row(env),
                notes: vec![],
                children: vec![],
            },
            Some(env) => self.resource(env),
            None => Node {
                row: Row {
                    namespace: g.namespace.clone(),
                    name: format!("DigitalChannelsEnvironment/{}", g.name),
                    ready: "-".into(),
                    reason: "NotFound".into(),
                    state: "-".into(),
                    policy: "-".into(),
                    age: "-".into(),
                    message: format!(
                        "missing environment: no DigitalChannelsEnvironment {} in namespace {}",
                        g.name, g.namespace
                    ),
                },
                notes: g.to_do.iter().map(|t| format!("to do: {t}")).collect(),
                children: vec![],
            },
        };
        root.children
            .extend(g.tenants.iter().map(|t| self.resource(t)));
        root
    }

    fn resource(&self, r: &Resource) -> Node {
        let mut notes: Vec<String> = r.to_do.iter().map(|t| format!("to do: {t}")).collect();
        if let Some(at) = &r.next_retry_at {
            notes.push(format!("next retry: {}", self.retry(at)));
        }
        if self.wide {
            notes.extend(details(r));
        }
        Node {
            row: self.resource_row(r),
            notes,
            children: r.conditions.iter().map(|c| self.step(c)).collect(),
        }
    }

    fn resource_row(&self, r: &Resource) -> Row {
        let ready = r.ready_condition.as_ref();
        Row {
            namespace: r.namespace.clone(),
            name: format!("{}/{}", r.kind, r.name),
            ready: ready.map_or("-".into(), |c| status(c.status).into()),
            reason: ready.map_or("-".into(), |c| c.reason.clone()),
            state: r.state.as_str().into(),
            policy: format!("{:?}", r.management_policy),
            age: ready.map_or("-".into(), |c| self.age(c)),
            message: ready.map_or(String::new(), |c| self.message(c)),
        }
    }

    fn step(&self, c: &Condition) -> Node {
        Node {
            row: Row {
                name: c.type_.clone(),
                ready: status(c.status).into(),
                reason: c.reason.clone(),
                age: self.age(c),
                message: self.message(c),
                ..Row::default()
            },
            notes: vec![],
            children: vec![],
        }
    }

    /// Since `lastTransitionTime`, as `kubectl get` writes ages.
    fn age(&self, c: &Condition) -> String {
        c.last_transition_time
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or("-".into(), |t| {
                human_duration(self.now.duration_since(t).as_secs())
            })
    }

    /// On one line; in the default view only where the condition is not True, and cut.
    fn message(&self, c: &Condition) -> String {
        let one_line = c.message.split_whitespace().collect::<Vec<_>>().join(" ");
        match (self.wide, c.status) {
            (true, _) => one_line,
            (false, ConditionStatus::True) => String::new(),
            (false, _) => cut(&one_line, MESSAGE_LIMIT),
        }
    }

    fn retry(&self, at: &str) -> String {
        let Ok(when) = at.parse::<Timestamp>() else {
            return at.to_string();
        };
        let wait = when.duration_since(self.now).as_secs();
        let relative = match wait > 0 {
            true => format!("in {}", human_duration(wait)),
            false => "due now".to_string(),
        };
        match self.wide {
            true => format!("{relative} ({at})"),
            false => relative,
        }
    }
}

/// `-o wide`: what else status records.
fn details(r: &Resource) -> Vec<String> {
    let mut parts = vec![format!(
        "generation {}, observed {}",
        r.generation.map_or("-".into(), |g| g.to_string()),
        r.observed_generation.map_or("-".into(), |g| g.to_string())
    )];
    if r.suspended {
        parts.push("spec.suspend true".into());
    }
    if let Some(cc) = &r.contact_center_id {
        parts.push(format!("contact center {cc}"));
    }
    if let Some(secret) = &r.output_secret_name {
        parts.push(format!("output Secret {secret}"));
    }
    vec![parts.join("; ")]
}

fn status(s: ConditionStatus) -> &'static str {
    match s {
        ConditionStatus::True => "True",
        ConditionStatus::False => "False",
        ConditionStatus::Unknown => "Unknown",
    }
}

fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", text[..end].trim_end()),
        None => text.to_string(),
    }
}

/// Seconds as `kubectl get` shows an age (its `HumanDuration`): `45s`, `3m20s`, `12m`,
/// `5h3m`, `30h`, `3d4h`, `20d`, `2y5d`, `9y`.
pub fn human_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (minutes, hours, days) = (s / 60, s / 3600, s / 86_400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if minutes < 10 && s % 60 == 0 => format!("{minutes}m"),
        _ if minutes < 10 => format!("{minutes}m{}s", s % 60),
        _ if minutes < 180 => format!("{minutes}m"),
        _ if hours < 8 && minutes % 60 == 0 => format!("{hours}h"),
        _ if hours < 8 => format!("{hours}h{}m", minutes % 60),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 192 && hours % 24 == 0 => format!("{days}d"),
        _ if hours < 192 => format!("{days}d{}h", hours % 24),
        _ if days < 730 => format!("{days}d"),
        _ if days < 2920 && days % 365 == 0 => format!("{}y", days / 365),
        _ if days < 2920 => format!("{}y{}d", days / 365, days % 365),
        _ => format!("{}y", days / 365),
    }
}

/// The trees as one table: columns aligned over every row, the tree drawn in the NAME
/// column, notes on lines of their own, a blank line between environments.
fn table(trees: &[Node], all_namespaces: bool) -> String {
    let mut lines: Vec<Line> = Vec::new();
    for (i, tree) in trees.iter().enumerate() {
        if i > 0 {
            lines.push(Line::Blank);
        }
        draw(tree, "", "", &mut lines);
    }
    let header = Row {
        namespace: "NAMESPACE".into(),
        name: "NAME".into(),
        ready: "READY".into(),
        reason: "REASON".into(),
        state: "STATE".into(),
        policy: "POLICY".into(),
        age: "AGE".into(),
        message: "MESSAGE".into(),
    };
    let rows = std::iter::once(&header).chain(lines.iter().filter_map(|l| match l {
        Line::Row(row) => Some(row),
        _ => None,
    }));
    let columns = cells(&header, all_namespaces).len();
    let widths = rows.fold(vec![0usize; columns], |mut w, r| {
        for (i, cell) in cells(r, all_namespaces).iter().enumerate() {
            w[i] = w[i].max(cell.chars().count());
        }
        w
    });
    let mut out = line_of(&header, &widths, all_namespaces);
    for line in &lines {
        match line {
            Line::Row(row) => out.push_str(&line_of(row, &widths, all_namespaces)),
            Line::Note(text) => out.push_str(&format!("{}\n", text.trim_end())),
            Line::Blank => out.push('\n'),
        }
    }
    out
}

enum Line {
    Row(Row),
    Note(String),
    Blank,
}

/// A node's row, its notes, then its children, with the tree's branches.
fn draw(node: &Node, lead: &str, below: &str, lines: &mut Vec<Line>) {
    lines.push(Line::Row(Row {
        name: format!("{lead}{}", node.row.name),
        ..node.row.clone()
    }));
    let stem = match node.children.is_empty() {
        true => "   ",
        false => "│  ",
    };
    for note in &node.notes {
        lines.push(Line::Note(format!("{below}{stem}{note}")));
    }
    for (i, child) in node.children.iter().enumerate() {
        let last = i + 1 == node.children.len();
        let (branch, rest) = match last {
            true => ("└─ ", "   "),
            false => ("├─ ", "│  "),
        };
        draw(
            child,
            &format!("{below}{branch}"),
            &format!("{below}{rest}"),
            lines,
        );
    }
}

/// The cells of a row in column order; the namespace only with `-A`.
fn cells(r: &Row, all_namespaces: bool) -> Vec<&str> {
    let mut cells = vec![];
    if all_namespaces {
        cells.push(r.namespace.as_str());
    }
    cells.extend([
        r.name.as_str(),
        &r.ready,
        &r.reason,
        &r.state,
        &r.policy,
        &r.age,
        &r.message,
    ]);
    cells
}

/// A row padded to the widths (three spaces between columns, as kubectl), the last column
/// as it is.
fn line_of(r: &Row, widths: &[usize], all_namespaces: bool) -> String {
    let cells = cells(r, all_namespaces);
    let last = cells.len() - 1;
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i == last {
            line.push_str(cell);
        } else {
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.push_str(cell);
            line.push_str(&" ".repeat(pad + 3));
        }
    }
    format!("{}\n", line.trim_end())
}

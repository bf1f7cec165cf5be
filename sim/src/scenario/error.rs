//! Scenario errors that point at the place: file, line, column and key.

use std::fmt;
use std::ops::Range;

/// A scenario file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// The file's path as given.
    pub file: String,
    /// 1-based line, when the problem has a place.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// The key path, such as `workload.demper.interval` or `fault[2].share`.
    pub key: Option<String>,
    /// What is wrong, with the valid choices where there are some.
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let (Some(line), Some(col)) = (self.line, self.column) {
            write!(f, ":{line}:{col}")?;
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "`{key}`: ")?;
        }
        f.write_str(&self.message)
    }
}

impl ScenarioError {
    /// An error with no place in the file (the file cannot be read, say).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ScenarioError { file: file.to_owned(), line: None, column: None, key: None, message: message.into() }
    }

    /// An error at byte range `span` of `source`.
    pub fn at(file: &str, source: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        let mut err = ScenarioError::whole_file(file, message);
        if let Some(span) = span {
            let (line, column, key) = locate(source, span.start);
            err.line = Some(line);
            err.column = Some(column);
            err.key = key;
        }
        err
    }
}

/// Line, column and key path of byte `offset` in TOML `source`.
fn locate(source: &str, offset: usize) -> (usize, usize, Option<String>) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = source[line_start..offset].chars().count() + 1;
    let line_text = source[line_start..].lines().next().unwrap_or("");

    // The table the line belongs to: the nearest header above it, with an index for arrays.
    let mut table: Option<String> = None;
    let mut array_counts: Vec<(String, usize)> = Vec::new();
    for l in source[..line_start].lines() {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_owned();
            let n = if let Some((_, n)) = array_counts.iter_mut().find(|(k, _)| *k == name) {
                *n += 1;
                *n
            } else {
                array_counts.push((name.clone(), 0));
                0
            };
            table = Some(format!("{name}[{n}]"));
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = Some(name.trim().to_owned());
        }
    }
    if line_text.trim_start().starts_with('[') {
        let header = line_text.trim().trim_matches(|c| c == '[' || c == ']').trim().to_owned();
        return (line_no, column, Some(header));
    }
    // The keys on the line up to the offset: `outer = { inner = value }` gives `outer.inner`.
    let upto = &source[line_start..offset];
    let mut keys: Vec<&str> = Vec::new();
    for (i, _) in upto.match_indices('=') {
        let lhs = upto[..i].trim_end();
        let start = lhs
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-' || c == '"'))
            .map_or(0, |j| j + 1);
        let key = lhs[start..].trim_matches('"');
        if !key.is_empty() {
            keys.push(key);
        }
    }
    if keys.is_empty()
        && let Some((k, _)) = line_text.split_once('=')
    {
        keys.push(k.trim());
    }
    let mut path: Vec<String> = table.into_iter().collect();
    path.extend(keys.into_iter().map(str::to_owned));
    let key = (!path.is_empty()).then(|| path.join("."));
    (line_no, column, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_line_column_and_key_path() {
        let src = "seed = 1\n[workload.demper]\ninterval = \"3x\"\n[[fault]]\nkind = \"a\"\n[[fault]]\nshare = 2.0\n[engine]\ndead = { window = 99 }\n";
        let off = src.find("\"3x\"").unwrap();
        assert_eq!(locate(src, off), (3, 12, Some("workload.demper.interval".into())));
        let off = src.find("2.0").unwrap();
        assert_eq!(locate(src, off), (7, 9, Some("fault[1].share".into())));
        let off = src.find("99").unwrap();
        assert_eq!(locate(src, off), (9, 19, Some("engine.dead.window".into())));
        let off = src.find("seed").unwrap();
        assert_eq!(locate(src, off), (1, 1, Some("seed".into())));
    }

    #[test]
    fn display_names_file_place_and_key() {
        let e = ScenarioError::at("s.toml", "a = 1\n", Some(0..1), "bad");
        assert_eq!(e.to_string(), "s.toml:1:1: `a`: bad");
        assert_eq!(ScenarioError::whole_file("x.toml", "cannot read").to_string(), "x.toml: cannot read");
    }
}

//! Output of shell commands: aligned tables for people, JSON for scripts.

use serde_json::{json, Map, Value};

/// What a command prints.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Nothing to print (the command said it all, or the user cancelled).
    Done(String),
    /// Named values.
    Fields(Vec<(String, String)>),
    Table { title: Option<String>, headers: Vec<String>, rows: Vec<Vec<String>> },
    Many(Vec<Out>),
}

impl Out {
    pub fn table(title: Option<&str>, headers: &[&str], rows: Vec<Vec<String>>) -> Out {
        Out::Table { title: title.map(String::from), headers: headers.iter().map(|h| h.to_string()).collect(), rows }
    }

    pub fn fields(pairs: &[(&str, String)]) -> Out {
        Out::Fields(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    /// Text for people.
    pub fn text(&self) -> String {
        match self {
            Out::Done(msg) => msg.clone(),
            Out::Fields(pairs) => {
                let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                pairs.iter().map(|(k, v)| format!("{k:<w$}  {v}")).collect::<Vec<_>>().join("\n")
            }
            Out::Table { title, headers, rows } => {
                let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
                for r in rows {
                    for (i, c) in r.iter().enumerate() {
                        widths[i] = widths[i].max(c.chars().count());
                    }
                }
                let line = |cells: &[String]| cells.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect::<Vec<_>>().join("  ").trim_end().to_string();
                let mut out = Vec::new();
                if let Some(t) = title {
                    out.push(t.clone());
                }
                out.push(line(&headers.iter().map(|h| h.to_uppercase()).collect::<Vec<_>>()));
                out.extend(rows.iter().map(|r| line(r)));
                if rows.is_empty() {
                    out.push("(none)".into());
                }
                out.join("\n")
            }
            Out::Many(parts) => parts.iter().map(Out::text).filter(|t| !t.is_empty()).collect::<Vec<_>>().join("\n\n"),
        }
    }

    /// JSON for scripts: fields become an object, a table an array of objects keyed by its
    /// headers (under its title when it has one).
    pub fn json(&self) -> Value {
        match self {
            Out::Done(msg) => json!({ "result": msg }),
            Out::Fields(pairs) => Value::Object(pairs.iter().map(|(k, v)| (k.replace(' ', "_"), Value::String(v.clone()))).collect()),
            Out::Table { headers, rows, .. } => Value::Array(
                rows.iter()
                    .map(|r| Value::Object(headers.iter().zip(r).map(|(h, c)| (h.replace(' ', "_"), Value::String(c.clone()))).collect::<Map<_, _>>()))
                    .collect(),
            ),
            Out::Many(parts) => {
                let mut obj = Map::new();
                for (i, p) in parts.iter().enumerate() {
                    let key = match p {
                        Out::Table { title: Some(t), .. } => t.to_lowercase().replace(' ', "_"),
                        Out::Fields(_) if i == 0 => "summary".into(),
                        _ => format!("part{i}"),
                    };
                    obj.insert(key, p.json());
                }
                Value::Object(obj)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn tables_align_and_json_keys_follow_headers() {
        let t = Out::table(None, &["name", "partitions"], vec![vec!["logs".into(), "6".into()], vec!["a-long-name".into(), "1".into()]]);
        assert_eq!(t.text(), "NAME         PARTITIONS\nlogs         6\na-long-name  1");
        assert_eq!(t.json(), json!([{"name": "logs", "partitions": "6"}, {"name": "a-long-name", "partitions": "1"}]));
    }
}

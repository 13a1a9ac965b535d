//! A small reader of the Prometheus text format, for assertions.

use std::collections::BTreeMap;

/// Samples by metric name and sorted label pairs.
pub(crate) type Samples = BTreeMap<(String, Vec<(String, String)>), f64>;

/// Parses an exposition; comment lines are skipped.
pub(crate) fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        out.insert((name.to_owned(), labels), value.parse().expect("sample value"));
    }
    out
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = &after[end..];
    }
    labels.sort();
    labels
}

/// The value of `name` with exactly `labels` (0 if absent).
pub(crate) fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> =
        labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    key.sort();
    samples.get(&(name.to_owned(), key)).copied().unwrap_or(0.0)
}

/// All samples of `name` whose labels include `filter`.
pub(crate) fn matching<'a>(
    samples: &'a Samples,
    name: &'a str,
    filter: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = (&'a Vec<(String, String)>, f64)> + 'a {
    samples.iter().filter_map(move |((n, labels), v)| {
        let all = filter.iter().all(|(k, val)| labels.iter().any(|(lk, lv)| lk == k && lv == val));
        (n == name && all).then_some((labels, *v))
    })
}

//! Columns of a table as the CLI prints them (ps, pod ls, fn ls, ps --format table …):
//! each as wide as its widest cell, `gap` spaces before the next (docker's tabwriter
//! pads with three).

/// The lines of `rows`: every cell but a row's last padded to its column's width (in
/// characters) and followed by `gap` spaces. Rows may have fewer cells than others.
pub(crate) fn columns<R: AsRef<[S]>, S: AsRef<str>>(rows: &[R], gap: usize) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for r in rows {
        for (i, cell) in r.as_ref().iter().enumerate() {
            let n = cell.as_ref().chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(n),
                None => widths.push(n),
            }
        }
    }
    rows.iter()
        .map(|r| {
            let r = r.as_ref();
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                let cell = cell.as_ref();
                line.push_str(cell);
                if i + 1 < r.len() {
                    let pad = widths[i] - cell.chars().count() + gap;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_all_but_the_last_cell() {
        let rows = vec![
            vec!["ID", "NAME", "X"],
            vec!["abcdef", "n", ""],
            vec!["é", "long name"],
        ];
        assert_eq!(
            columns(&rows, 3),
            [
                "ID       NAME        X",
                "abcdef   n           ",
                "é        long name"
            ]
        );
        assert_eq!(columns(&[["a", "b"]], 2), ["a  b"]);
        assert!(columns::<[&str; 1], &str>(&[], 3).is_empty());
    }
}

//! Subcommands of the `weir` binary beyond `run` and `validate`.

pub mod admin_client;
pub mod checkpoint;
pub mod health;
pub mod nats_args;
pub mod nexmark;
pub mod pipeline;
pub mod plugin;
pub mod progress;
pub mod registry;
pub mod serve;
pub mod top;

/// `rows` (the first one a header) as text, columns aligned, two spaces apart.
pub fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

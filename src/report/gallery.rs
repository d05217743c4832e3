//! `report.html`: a self-contained gallery (inline CSS and script, no network, works from
//! `file://`). Prompts run down with their text, swept parameters across, each named once in its
//! header; each cell holds the job's video (unmuted when it was made with sound), a link to its
//! file, its cost and status, or the error of a failed job. Headers stay put while the grid
//! scrolls both ways; filters by status and by each swept parameter hide what is not wanted. A
//! header gives the totals; paid videos the manifest no longer has follow the grid.

use super::plan::cell;
use super::status::RunStatus;
use crate::plan::{JobSpec, Plan};
use crate::runner::{JobPhase, JobRun};
use std::collections::HashMap;
use std::fmt::Write;

/// Which parameters name the rows and which the columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Axes {
    pub rows: Vec<String>,
    pub columns: Vec<String>,
}

impl Axes {
    /// Rows: the prompt and its template variables; columns: the matrix's parameters.
    pub(crate) fn default_for(plan: &Plan) -> Axes {
        let vars: Vec<String> = plan
            .jobs
            .iter()
            .flat_map(|j| j.params.keys())
            .filter(|k| !crate::kling::is_request_key(k))
            .map(str::to_string)
            .collect();
        let mut rows = vec!["prompt".to_string()];
        for v in vars {
            if !rows.contains(&v) {
                rows.push(v);
            }
        }
        let columns = plan.swept.iter().filter(|s| !rows.contains(s)).cloned().collect();
        Axes { rows, columns }
    }
}

fn value_of(job: &JobSpec, axis: &str) -> String {
    match axis {
        "prompt" => job.label.to_string(),
        "endpoint" => job.endpoint.to_string(),
        _ => job
            .params
            .get(axis)
            .cloned()
            .or_else(|| job.request.get(axis))
            .map_or("-".to_string(), |v| cell(Some(&v))),
    }
}

fn key(job: &JobSpec, axes: &[String]) -> Vec<String> {
    axes.iter().map(|a| value_of(job, a)).collect()
}

pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A row's or column's header: each of its axes named with its value (a parameter its jobs do
/// not set says so, never an empty header). The prompt is named by its label.
fn label(axes: &[String], values: &[String]) -> String {
    let parts: Vec<String> = axes
        .iter()
        .zip(values)
        .map(|(a, v)| match (a.as_str(), v.as_str()) {
            ("prompt", _) => escape(v),
            (_, "-") => format!("{}: not set", escape(a)),
            _ => format!("{}={}", escape(a), escape(v)),
        })
        .collect();
    if parts.is_empty() {
        "all jobs".to_string()
    } else {
        parts.join("<br>")
    }
}

/// A prompt's label shown where the full text is shown too: an id is kept, a cut copy of the
/// text itself is not (the text says it all).
fn label_beside(spec: &JobSpec, text: &str) -> Option<String> {
    let label = spec.label.trim_end_matches('…');
    (!text.starts_with(label)).then(|| spec.label.to_string())
}

/// The distinct keys in first-seen order, and each item's index into them.
fn index_keys(keys: impl Iterator<Item = Vec<String>>) -> (Vec<Vec<String>>, Vec<usize>) {
    let mut seen: HashMap<Vec<String>, usize> = HashMap::new();
    let mut distinct = Vec::new();
    let indices = keys
        .map(|k| {
            *seen.entry(k).or_insert_with_key(|k| {
                distinct.push(k.clone());
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, indices)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}\
h1{font-size:1.4rem;margin:0 0 .3rem}.totals{color:#555;margin:0 0 .6rem}\
.filters{display:flex;flex-wrap:wrap;gap:.8rem;margin:0 0 .8rem;font-size:13px}.filters label{display:flex;gap:.3rem;align-items:center}\
.scroll{overflow:auto;max-height:85vh;width:max-content;max-width:100%;border:1px solid #ddd;background:#fff}\
table.grid{border-collapse:separate;border-spacing:0}th,td{border-right:1px solid #ddd;border-bottom:1px solid #ddd;padding:.4rem;vertical-align:top}\
thead th{position:sticky;top:0;z-index:2;background:#f0f0f0;font-weight:600;text-align:left;white-space:nowrap}\
th.row{position:sticky;left:0;z-index:1;background:#f7f7f7;min-width:14rem;max-width:20rem;text-align:left;font-weight:500}\
thead th:first-child{left:0;z-index:3}.prompt{display:block;font-weight:400;color:#333;margin-top:.3rem;white-space:normal}\
figure.cell{margin:0 0 .4rem;width:240px}figure video{width:240px;height:135px;background:#000;display:block}\
figcaption{font-size:12px;color:#444;word-break:break-all}figcaption a{color:#0645ad}\
.failed .error{color:#a00;background:#fee;padding:.5rem;min-height:4rem}\
.pending{color:#666;background:#eee;padding:.5rem;min-height:4rem}.hidden{display:none}\
section.chains{margin-top:1.5rem}.chain{display:flex;align-items:center;gap:.4rem;margin:0 0 .6rem}\
figure.link{margin:0;width:240px}.arrow{font-size:1.5rem;color:#888}\
section.removed{margin-top:1.5rem}section.removed figure{display:inline-block;margin:0 .6rem .6rem 0;width:240px}";

/// Filters: one select for the status and one per swept parameter; a cell is shown when it
/// matches them all, a row when it shows a cell. `#filter=key:value` in the address sets one
/// (a link to a filtered view; the browser test uses it).
const SCRIPT: &str = "(function(){var sels=document.querySelectorAll('.filters select');function apply(){\
var want={};sels.forEach(function(s){if(s.value)want[s.dataset.key]=s.value;});\
document.querySelectorAll('figure.cell').forEach(function(f){var ok=true;for(var k in want){if(f.dataset[k]!==want[k])ok=false;}f.classList.toggle('hidden',!ok);});\
document.querySelectorAll('tbody tr').forEach(function(r){r.classList.toggle('hidden',!r.querySelector('figure.cell:not(.hidden)'));});}\
sels.forEach(function(s){s.addEventListener('change',apply);});window.klingFilter=function(k,v){sels.forEach(function(s){if(s.dataset.key===k){s.value=v;}});apply();};\
var m=/^#filter=([a-z0-9]+):(.+)$/.exec(decodeURIComponent(location.hash));if(m){window.klingFilter(m[1],m[2]);}})();";

/// report.html, a table row at a time into `out` (a large sweep's page is tens of megabytes).
pub(crate) fn write_gallery(
    plan: &Plan,
    jobs: &[JobRun],
    removed: &[super::Removed],
    axes: &Axes,
    status: &RunStatus,
    verdicts: Option<&super::Verdicts>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    // Linear in the jobs: each job's row and column found once, then the jobs bucketed by cell.
    let (rows, row_of) = index_keys(plan.jobs.iter().map(|j| key(j, &axes.rows)));
    let (columns, column_of) = index_keys(plan.jobs.iter().map(|j| key(j, &axes.columns)));
    // The jobs in cell order (row, then column; plan order within a cell), read with a cursor:
    // a map of cells held a vector per cell, 9 MB for 100,000 jobs.
    let mut order: Vec<usize> = (0..plan.jobs.len()).collect();
    order.sort_by_key(|&i| (row_of[i], column_of[i]));
    let mut next = order.into_iter().peekable();
    let title = escape(plan.name.as_deref().unwrap_or("kling-batch run"));
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title} — kling-batch</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    let count = |s: &str| status.states.get(s).copied().unwrap_or(0);
    let cap = status.cap_usd.map_or(String::new(), |c| format!(" of ${c:.2} cap"));
    let _ = writeln!(
        html,
        "<header><h1>{title}</h1><p class=\"totals\">{} jobs · {} completed · {} failed · spent ${:.2}{cap}</p></header>",
        status.jobs,
        count("completed"),
        count("failed"),
        status.spent_usd
    );
    html.push_str(&filters(plan, jobs, &axes.columns));
    html.push_str("<div class=\"scroll\"><table class=\"grid\">\n<thead><tr><th>");
    html.push_str(&axes.rows.iter().map(|a| escape(a)).collect::<Vec<_>>().join(" / "));
    html.push_str("</th>");
    for column in &columns {
        let _ = write!(html, "<th>{}</th>", label(&axes.columns, column));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    // When the rows are prompts, each row's header holds its prompt's full text (from its first
    // job), after the prompt's id; the cut copy of the text that labels a prompt without an id is
    // not repeated. Rows of other axes hold jobs of several prompts: their cells name theirs.
    let prompt_rows = axes.rows.iter().any(|a| a == "prompt");
    let mut first_of: Vec<Option<usize>> = vec![None; rows.len()];
    for (i, r) in row_of.iter().enumerate() {
        first_of[*r].get_or_insert(i);
    }
    for (r, row) in rows.iter().enumerate() {
        let spec = first_of[r].and_then(|i| plan.jobs.get(i));
        let header = match (prompt_rows, spec, spec.and_then(JobSpec::prompt)) {
            (true, Some(spec), Some(text)) => {
                let mut parts: Vec<String> = Vec::new();
                if let Some(id) = label_beside(spec, &text) {
                    parts.push(escape(&id));
                }
                // (A variable this prompt does not have is left out: its row is the prompt's.)
                for (a, v) in axes.rows.iter().zip(row) {
                    if a != "prompt" && v != "-" {
                        parts.push(label(std::slice::from_ref(a), std::slice::from_ref(v)));
                    }
                }
                parts.push(format!("<span class=\"prompt\">{}</span>", escape(&text)));
                parts.join("<br>")
            }
            _ => label(&axes.rows, row),
        };
        let _ = write!(html, "<tr><th class=\"row\">{header}</th>");
        for c in 0..columns.len() {
            html.push_str("<td>");
            while let Some(i) = next.next_if(|&i| (row_of[i], column_of[i]) == (r, c)) {
                if let (Some(spec), Some(job)) = (plan.jobs.get(i), jobs.get(i)) {
                    html.push_str(&cell_html(
                        spec,
                        job,
                        axes,
                        verdicts.and_then(|v| v.get(spec.id.as_str())),
                    ));
                }
            }
            html.push_str("</td>");
        }
        html.push_str("</tr>\n");
        out.write_all(html.as_bytes())?;
        html.clear();
    }
    html.push_str("</tbody>\n</table></div>\n");
    chains_html(plan, jobs, &mut html);
    let kept: Vec<_> = removed
        .iter()
        .filter_map(|r| r.facts.video.as_ref().map(|v| (r, v)))
        .collect();
    if !kept.is_empty() {
        html.push_str("<section class=\"removed\"><h2>No longer in the manifest (paid, kept)</h2>\n");
        for (job, video) in kept {
            let cost = job.facts.cost.map_or(String::new(), |c| format!("<br>{c}"));
            let _ = writeln!(
                html,
                "<figure class=\"removed\"><video src=\"{}\" controls muted loop playsinline preload=\"metadata\"></video><figcaption>{}{cost}</figcaption></figure>",
                escape(&video.path),
                escape(&job.id)
            );
        }
        html.push_str("</section>\n");
    }
    let _ = writeln!(html, "<script>{SCRIPT}</script>");
    // Counts the cells once rendered; the browser test reads these attributes.
    html.push_str("<script>document.body.dataset.cells=document.querySelectorAll('figure.cell').length;document.body.dataset.videos=document.querySelectorAll('figure.cell video').length;</script>\n");
    html.push_str("</body>\n</html>\n");
    out.write_all(html.as_bytes())
}

/// With steps (`needs:`): every chain from a first job to its last step, one row each, in order.
fn chains_html(plan: &Plan, jobs: &[JobRun], html: &mut String) {
    if !plan.has_steps() {
        return;
    }
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, job) in plan.jobs.iter().enumerate() {
        if let Some(p) = job.parent {
            children.entry(p).or_default().push(i);
        }
    }
    html.push_str("<section class=\"chains\"><h2>Chains</h2>\n");
    for root in (0..plan.jobs.len()).filter(|&i| plan.jobs[i].parent.is_none() && children.contains_key(&i)) {
        // Depth first: each path from the root to a job without steps is one row.
        let mut stack: Vec<Vec<usize>> = vec![vec![root]];
        while let Some(path) = stack.pop() {
            let last = path[path.len() - 1];
            match children.get(&last) {
                Some(kids) => {
                    for &k in kids.iter().rev() {
                        let mut next = path.clone();
                        next.push(k);
                        stack.push(next);
                    }
                }
                None => {
                    html.push_str("<div class=\"chain\">");
                    for (n, &i) in path.iter().enumerate() {
                        if n > 0 {
                            html.push_str("<span class=\"arrow\">→</span>");
                        }
                        if let (Some(spec), Some(job)) = (plan.jobs.get(i), jobs.get(i)) {
                            html.push_str(&link_html(spec, job));
                        }
                    }
                    html.push_str("</div>\n");
                }
            }
        }
    }
    html.push_str("</section>\n");
}

/// One job of a chain: its video (or where it stands), its step and id.
fn link_html(spec: &JobSpec, job: &JobRun) -> String {
    let body = match job.video() {
        Some(video) => format!(
            "<video src=\"{}\" controls muted loop playsinline preload=\"metadata\"></video>",
            escape(&video.path)
        ),
        None => format!(
            "<div class=\"pending\">{}</div>",
            escape(&job.error().unwrap_or_else(|| job.state_name().to_string()))
        ),
    };
    format!(
        "<figure class=\"link {}\">{body}<figcaption>{}<br>{}</figcaption></figure>",
        job.state_name(),
        escape(&spec.label),
        escape(spec.id.as_str())
    )
}

fn cell_html(spec: &JobSpec, job: &JobRun, axes: &Axes, verdict: Option<&super::Verdict>) -> String {
    // The axes already name the row's and column's parameters; a cell repeats only the others,
    // and names its prompt unless the rows or columns do.
    let mut caption = escape(spec.id.as_str());
    if !axes.rows.iter().chain(&axes.columns).any(|a| a == "prompt") {
        let _ = write!(
            caption,
            "<br><span class=\"cell-prompt\">{}</span>",
            escape(&spec.label)
        );
    }
    for (name, value) in spec.params.iter() {
        if !axes.rows.iter().chain(&axes.columns).any(|a| a == name) {
            let _ = write!(caption, "<br>{}={}", escape(name), escape(&cell(Some(value))));
        }
    }
    let _ = write!(caption, "<br>{}", job.state_name());
    if let Some(cost) = job.facts.cost {
        let _ = write!(caption, " · {cost}");
    }
    if let Some(video) = job.video() {
        let _ = write!(caption, " · <a href=\"{}\">file</a>", escape(&video.path));
    }
    // What reviewers said of it (`kling-batch review`).
    if let Some(v) = verdict {
        let mut said = Vec::new();
        if v.picked {
            said.push("♥ picked".to_string());
        }
        if let Some(r) = v.rating {
            said.push(format!("rated {r:.1}"));
        }
        if v.wins + v.losses > 0 {
            said.push(format!("{}W {}L", v.wins, v.losses));
        }
        if let Some(s) = v.score {
            said.push(format!("score {s:.2}"));
        }
        if !said.is_empty() {
            let _ = write!(caption, "<br><span class=\"review\">{}</span>", said.join(" · "));
        }
    }
    let sound = spec.request.get("enable_sound") == Some(serde_json::Value::Bool(true));
    let body = match (job.phase(), job.video()) {
        (JobPhase::Done, Some(video)) => format!(
            "<video src=\"{}\" controls{} loop playsinline preload=\"metadata\" title=\"{}\"></video>",
            escape(&video.path),
            // A clip made with sound is not muted.
            if sound { "" } else { " muted" },
            escape(spec.prompt().as_deref().unwrap_or(""))
        ),
        (JobPhase::Failed | JobPhase::Skipped, _) => {
            let error = job.error().unwrap_or_else(|| "failed".to_string());
            format!("<div class=\"error\">{}</div>", escape(&error))
        }
        (phase, _) => format!("<div class=\"pending\">{}</div>", phase.as_str()),
    };
    let class = match job.phase() {
        JobPhase::Done => "completed",
        JobPhase::Failed | JobPhase::Skipped => "failed",
        _ => "pending",
    };
    // What the filters compare: the status, and each swept parameter's value.
    let mut data = format!(" data-status=\"{class}\"");
    for (name, value) in spec.params.iter() {
        let _ = write!(data, " data-{}=\"{}\"", data_key(name), escape(&cell(Some(value))));
    }
    format!("<figure class=\"cell {class}\"{data}>{body}<figcaption>{caption}</figcaption></figure>")
}

/// A parameter name as an HTML `data-` attribute (and the script's `dataset` key): lowercase
/// letters and digits only.
fn data_key(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The filter bar: the status, then each column parameter with its values.
fn filters(plan: &Plan, jobs: &[JobRun], columns: &[String]) -> String {
    let mut html = String::from("<form class=\"filters\">");
    let mut statuses: Vec<&str> = jobs
        .iter()
        .map(|j| match j.phase() {
            JobPhase::Done => "completed",
            JobPhase::Failed | JobPhase::Skipped => "failed",
            _ => "pending",
        })
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    let select = |key: &str, label: &str, values: &[String]| {
        let mut s = format!(
            "<label>{} <select data-key=\"{}\"><option value=\"\">all</option>",
            escape(label),
            data_key(key)
        );
        for v in values {
            let _ = write!(s, "<option>{}</option>", escape(v));
        }
        s.push_str("</select></label>");
        s
    };
    html.push_str(&select(
        "status",
        "status",
        &statuses.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
    ));
    for name in columns.iter().filter(|c| plan.swept.contains(c)) {
        let mut values: Vec<String> = plan
            .jobs
            .iter()
            .filter_map(|j| j.params.get(name).map(|v| cell(Some(v))))
            .collect();
        values.sort();
        values.dedup();
        html.push_str(&select(name, name, &values));
    }
    html.push_str("</form>\n");
    html
}

/// Parses `--rows`/`--columns` lists, checking each name is a parameter the plan has.
pub(crate) fn parse_axes(plan: &Plan, rows: Option<&str>, columns: Option<&str>) -> Result<Axes, String> {
    let defaults = Axes::default_for(plan);
    let known = |name: &str| {
        name == "prompt"
            || name == "endpoint"
            || plan.swept.iter().any(|s| s == name)
            || plan.jobs.iter().any(|j| j.request.fields().contains_key(name))
    };
    let list = |text: Option<&str>, fallback: Vec<String>| -> Result<Vec<String>, String> {
        let Some(text) = text else { return Ok(fallback) };
        let names: Vec<String> = text
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        match names.iter().find(|n| !known(n)) {
            Some(bad) => Err(format!(
                "`{bad}` is not a parameter of this run (try prompt, model or one of: {})",
                plan.swept.join(", ")
            )),
            None => Ok(names),
        }
    };
    let rows = list(rows, defaults.rows)?;
    let columns = list(
        columns,
        defaults.columns.into_iter().filter(|c| !rows.contains(c)).collect(),
    )?;
    Ok(Axes { rows, columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Spend;
    use crate::util::money::Money;

    /// Cells of several jobs (two samples of each prompt, rows by aspect ratio): every job once,
    /// in its own row and column, and in plan order within its cell.
    #[test]
    fn each_cell_holds_its_jobs_in_plan_order() {
        let text = "defaults: { model: kling-3.0, duration_seconds: 5 }\nrepeat: 2\n\
                    prompts: [\"a lake\", \"a river\", \"a sea\"]\nmatrix: { aspect_ratio: [\"16:9\", \"9:16\"] }\n";
        let manifest = crate::manifest::from_yaml(text, std::path::Path::new("m.yaml")).unwrap();
        let plan = crate::plan::expand(&manifest).unwrap();
        assert_eq!(plan.jobs.len(), 12);
        let jobs: Vec<JobRun> = plan.jobs.iter().map(|_| JobRun::queued()).collect();
        let spend = Spend {
            spent: Money::ZERO,
            reserved: Money::ZERO,
            cap: None,
        };
        let status = RunStatus::of_run(&plan, &jobs, spend, 0);
        let axes = Axes {
            rows: vec!["aspect_ratio".into()],
            columns: vec!["prompt".into()],
        };
        let mut page = Vec::new();
        write_gallery(&plan, &jobs, &[], &axes, &status, None, &mut page).unwrap();
        let page = String::from_utf8(page).unwrap();
        // Expected: rows and columns in order of first appearance, plan order inside a cell.
        let (rows, row_of) = index_keys(plan.jobs.iter().map(|j| key(j, &axes.rows)));
        let (columns, column_of) = index_keys(plan.jobs.iter().map(|j| key(j, &axes.columns)));
        assert_eq!((rows.len(), columns.len()), (2, 3));
        let mut expected = Vec::new();
        for r in 0..rows.len() {
            for c in 0..columns.len() {
                let cell: Vec<&str> = (0..plan.jobs.len())
                    .filter(|&i| row_of[i] == r && column_of[i] == c)
                    .map(|i| plan.jobs[i].id.as_str())
                    .collect();
                assert_eq!(cell.len(), 2, "two samples in every cell");
                expected.extend(cell);
            }
        }
        let mut found: Vec<(usize, &str)> = plan
            .jobs
            .iter()
            .map(|j| {
                let caption = format!("<figcaption>{}<br>", j.id);
                assert_eq!(page.matches(&caption).count(), 1, "{} shown once", j.id);
                (page.find(&caption).unwrap(), j.id.as_str())
            })
            .collect();
        found.sort();
        let shown: Vec<&str> = found.into_iter().map(|(_, id)| id).collect();
        assert_eq!(shown, expected);
    }
}

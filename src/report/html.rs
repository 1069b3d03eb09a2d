//! `--html FILE`: the graph of a run or of `tlspeek report` as ONE self-contained HTML page
//! (docs/html.md): inline CSS, an inline SVG drawn here, a small inline script for the details,
//! the readings table under it. Nothing is fetched: no URL appears in the page.
//!
//! Layout (computed here, deterministic: the same graph gives the same bytes): three columns,
//! clients on the left, servers on the right, nodes that are both in the middle; within a
//! column nodes are grouped by Kubernetes namespace (a box per namespace, sorted by name, the
//! nodes without one last), and within a namespace ordered by the barycenter of their
//! neighbours in the column to their left (name breaks ties), which keeps edges short and few
//! crossings. Bounded: at most [`MAX_DRAWN_NODES`] nodes and [`MAX_DRAWN_EDGES`] edges are drawn
//! (the busiest; the rest summarised in a line), at most [`MAX_EXAMPLES_PER_EDGE`] example
//! flows per edge and [`MAX_EXAMPLES_TOTAL`] in all are embedded.
//!
//! Every string from packets (names, reasons) is HTML-escaped in the page, and the data the
//! script reads sits in a `<script type="application/json">` block with `<`, `>`, `&` and
//! U+2028/U+2029 escaped; the script writes it with `textContent` only.

use crate::mesh::graph::{Edge, EdgeClass, Example, GraphLists, Node};
use crate::mesh::ServerVerdict;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Nodes drawn (the most flows first); the others are counted in a line under the graph.
pub const MAX_DRAWN_NODES: usize = 500;
/// Edges drawn (the most flows first, between drawn nodes).
pub const MAX_DRAWN_EDGES: usize = 2_000;
/// Example flows embedded per edge.
pub const MAX_EXAMPLES_PER_EDGE: usize = 10;
/// Example flows embedded in all (each about 300 bytes).
pub const MAX_EXAMPLES_TOTAL: usize = 5_000;
/// Rows of each readings table.
pub const MAX_READING_ROWS: usize = 1_000;
/// Characters of a node label (12 px monospace in a 270 px box); the full name is in its
/// tooltip and details.
const MAX_LABEL_CHARS: usize = 35;

const NODE_W: f64 = 270.0;
const NODE_H: f64 = 24.0;
const ROW: f64 = 30.0;
const GROUP_GAP: f64 = 34.0;
const COL_GAP: f64 = 260.0;
const MARGIN: f64 = 20.0;
const TOP: f64 = 40.0;

/// The verdict classes in legend order, with their colours and words.
const CLASSES: [(EdgeClass, &str, &str); 6] = [
    (EdgeClass::ProvenMtls, "#1a9850", "proven mTLS"),
    (EdgeClass::InferredMtls, "#91cf60", "inferred mTLS (TLS 1.3 record sizes)"),
    (EdgeClass::TlsNoClientCert, "#fdae61", "TLS without client certificate"),
    (EdgeClass::Plaintext, "#d73027", "plaintext"),
    (EdgeClass::Refused, "#7b3294", "refused / failed handshake"),
    (EdgeClass::Unknown, "#969696", "unknown"),
];
/// Colour of an edge made only of loopback legs inside a pod (plaintext by design).
const LEG_COLOUR: &str = "#4575b4";

fn colour(c: EdgeClass) -> &'static str {
    CLASSES.iter().find(|(k, _, _)| *k == c).map_or("#969696", |(_, col, _)| col)
}

/// The class an edge is drawn with: its dominant verdict, or `legs` when it has only legs.
fn edge_class(e: &Edge) -> &'static str {
    if e.flows == e.legs && e.legs > 0 {
        "legs"
    } else {
        e.dominant.as_str()
    }
}

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters from packets: shown as their code, never raw.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// JSON made safe inside a `<script>` element (no `</script>`, no `<!--`, no line
/// separators that old parsers take for newlines).
fn script_json<T: Serialize>(v: &T) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(s.len() + 64);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A label of at most [`MAX_LABEL_CHARS`] characters: the start and the end of the name.
/// A SPIFFE identity loses its `spiffe://TRUST-DOMAIN/` head: the namespace box around the node
/// already says where it is, and `ns/NS/sa/SA` is what tells workloads apart.
fn label(name: &str) -> String {
    let name =
        name.strip_prefix("spiffe://").and_then(|rest| rest.split_once('/')).map_or(name, |(_, path)| path);
    let n = name.chars().count();
    if n <= MAX_LABEL_CHARS {
        return name.to_string();
    }
    let head = 14;
    let tail = MAX_LABEL_CHARS - head - 1;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// Where a drawn node is.
#[derive(Clone, Copy)]
struct Place {
    x: f64,
    y: f64,
    col: usize,
}

/// A namespace box.
struct GroupBox {
    name: String,
    x: f64,
    y: f64,
    h: f64,
}

/// The layout: a place per drawn node (indexed by node id), the namespace boxes, the size.
struct Layout {
    places: BTreeMap<usize, Place>,
    boxes: Vec<GroupBox>,
    width: f64,
    height: f64,
}

fn layout(nodes: &[&Node], edges: &[&Edge]) -> Layout {
    // Column: 0 clients only, 1 both, 2 servers only.
    let col_of = |n: &Node| match (n.flows_out > 0, n.flows_in > 0) {
        (true, false) => 0,
        (true, true) => 1,
        _ => 2,
    };
    let mut columns: [Vec<&Node>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    for n in nodes {
        columns[col_of(n)].push(n);
    }
    let used: Vec<usize> = (0..3).filter(|&c| !columns[c].is_empty()).collect();
    let mut places: BTreeMap<usize, Place> = BTreeMap::new();
    let mut boxes = Vec::new();
    let mut height: f64 = TOP;
    for (slot, &c) in used.iter().enumerate() {
        let x = MARGIN + slot as f64 * (NODE_W + COL_GAP);
        // Barycenter of the neighbours already placed (the columns to the left).
        let mut bary: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
        for e in edges {
            let (a, b) = (e.client_node, e.server_node);
            for (me, other) in [(a, b), (b, a)] {
                if let Some(p) = places.get(&other) {
                    let w = bary.entry(me).or_insert((0.0, 0.0));
                    w.0 += p.y;
                    w.1 += 1.0;
                }
            }
        }
        let key = |n: &Node| -> f64 {
            bary.get(&n.id).map_or(f64::MAX, |&(s, k)| if k > 0.0 { s / k } else { f64::MAX })
        };
        let mut groups: BTreeMap<(bool, String), Vec<&Node>> = BTreeMap::new();
        for n in &columns[c] {
            let ns = n.namespace.clone();
            groups.entry((ns.is_none(), ns.unwrap_or_default())).or_default().push(n);
        }
        let mut y = TOP;
        for ((none, ns), mut members) in groups {
            members.sort_by(|a, b| key(a).total_cmp(&key(b)).then_with(|| a.name.cmp(&b.name)));
            let top = y;
            y += 20.0;
            for n in members {
                places.insert(n.id, Place { x, y, col: slot });
                y += ROW;
            }
            let name = if none { "no namespace".to_string() } else { format!("namespace {ns}") };
            boxes.push(GroupBox { name, x: x - 8.0, y: top, h: y - top });
            y += GROUP_GAP;
        }
        height = height.max(y);
    }
    let cols = used.len().max(1) as f64;
    let width = 2.0 * MARGIN + cols * NODE_W + (cols - 1.0) * COL_GAP + 40.0;
    Layout { places, boxes, width, height: height + MARGIN }
}

/// An edge as the script reads it.
#[derive(Serialize)]
struct EdgeData<'a> {
    client: &'a str,
    server: &'a str,
    flows: u64,
    legs: u64,
    class: &'static str,
    verdicts: &'a crate::mesh::graph::Verdicts,
    first_ts: Option<&'a str>,
    last_ts: Option<&'a str>,
    reasons: &'a [String],
    examples: &'a [Example],
    examples_not_embedded: usize,
}

/// A node as the script reads it.
#[derive(Serialize)]
struct NodeData<'a> {
    name: &'a str,
    kind: &'static str,
    namespace: Option<&'a str>,
    flows_in: u64,
    flows_out: u64,
}

#[derive(Serialize)]
struct PageData<'a> {
    nodes: Vec<NodeData<'a>>,
    edges: Vec<EdgeData<'a>>,
}

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 6px} h2{font-size:15px;margin:18px 0 6px}
.legend span{display:inline-block;margin-right:14px;font-size:13px}
.legend i{display:inline-block;width:22px;height:4px;margin-right:5px;vertical-align:middle}
.wrap{display:flex;gap:12px;align-items:flex-start}
.graph{overflow:auto;border:1px solid #ddd;max-height:80vh;flex:1 1 auto}
#details{flex:0 0 420px;font-size:12px;border:1px solid #ddd;padding:8px;max-height:80vh;overflow:auto;overflow-wrap:anywhere}
.flows{padding-left:22px} .flows li{margin-bottom:6px} .flows div{color:#444}
svg text{font-size:12px;font-family:ui-monospace,Menlo,Consolas,monospace}
.node rect{fill:#f7f7f7;stroke:#555;stroke-width:1}
.node.identity rect{fill:#e8f0fe} .node.service rect{fill:#fef6e4} .node.pod rect{fill:#eee;stroke-dasharray:3 2}
.node:hover rect,.node.sel rect{stroke:#000;stroke-width:2}
.ns rect{fill:none;stroke:#bbb;stroke-dasharray:4 3} .ns text{fill:#777;font-size:11px}
.edge path{fill:none;stroke-opacity:.75} .edge:hover path,.edge.sel path{stroke-opacity:1;stroke-width:5}
.edge text{font-size:11px;fill:#333;paint-order:stroke;stroke:#fff;stroke-width:3px}
.edge.dim,.node.dim{opacity:.15}
table{border-collapse:collapse;font-size:12px;margin-bottom:10px}
th,td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.n{text-align:right}
.note{font-size:12px;color:#555}
"#;

const SCRIPT: &str = r#"
(function(){
try{
var data=JSON.parse(document.getElementById('tlspeek-data').textContent);
var det=document.getElementById('details');
function el(tag,text){var e=document.createElement(tag);if(text!==undefined&&text!==null)e.textContent=String(text);return e;}
function clear(){while(det.firstChild)det.removeChild(det.firstChild);
 document.querySelectorAll('.sel,.dim').forEach(function(x){x.classList.remove('sel');x.classList.remove('dim');});}
function row(t,k,v){var r=el('tr');r.appendChild(el('th',k));r.appendChild(el('td',v));t.appendChild(r);}
var classes=['proven_mtls','inferred_mtls','tls_no_client_cert','plaintext','refused','unknown'];
function showEdge(i,g){var e=data.edges[i];clear();g.classList.add('sel');
 det.appendChild(el('h2',e.client+' \u2192 '+e.server));
 var t=el('table');row(t,'flows',e.flows);row(t,'legs inside a pod',e.legs);
 classes.forEach(function(c){if(e.verdicts[c])row(t,c,e.verdicts[c]);});
 row(t,'first',e.first_ts||'-');row(t,'last',e.last_ts||'-');det.appendChild(t);
 if(e.reasons.length){det.appendChild(el('h2','reasons'));var u=el('ul');e.reasons.forEach(function(r){u.appendChild(el('li',r));});det.appendChild(u);}
 det.appendChild(el('h2','flows ('+e.examples.length+(e.examples_not_embedded?' shown, '+e.examples_not_embedded+' more':'')+')'));
 var x=el('ol');x.className='flows';var d=function(v){return v===null||v===undefined?'-':v;};
 e.examples.forEach(function(f){var li=el('li');li.appendChild(el('b',d(f.verdict)+(f.mtls?' ('+f.mtls+')':'')+': '+d(f.reason)));
  li.appendChild(el('div',d(f.client)+' \u2192 '+d(f.server)));li.appendChild(el('div',d(f.first_ts)+' \u2013 '+d(f.last_ts)));
  li.appendChild(el('div','flow '+d(f.id)+' of '+d(f.source)));x.appendChild(li);});
 det.appendChild(x);}
function showNode(i,g){var n=data.nodes[i];clear();g.classList.add('sel');
 det.appendChild(el('h2',n.name));var t=el('table');row(t,'kind',n.kind);row(t,'namespace',n.namespace||'-');
 row(t,'flows sent',n.flows_out);row(t,'flows received',n.flows_in);det.appendChild(t);
 document.querySelectorAll('g.edge').forEach(function(x){if(x.dataset.client!==n.name&&x.dataset.server!==n.name)x.classList.add('dim');});}
var edges=document.querySelectorAll('g.edge');
edges.forEach(function(g){var i=+g.dataset.index;g.addEventListener('click',function(){showEdge(i,g);});});
document.querySelectorAll('g.node').forEach(function(g){var i=+g.dataset.index;g.addEventListener('click',function(){showNode(i,g);});});
var m=/^#(edge|node)[-=](\d+)$/.exec(location.hash);
if(m){var g=document.getElementById(m[1]+'-'+m[2]);if(g)(m[1]==='edge'?showEdge:showNode)(+m[2],g);}
if(edges.length!==data.edges.length)throw new Error('edges drawn '+edges.length+' but data has '+data.edges.length);
document.body.dataset.edges=String(edges.length);
document.body.dataset.nodes=String(document.querySelectorAll('g.node').length);
document.body.dataset.ok='1';
}catch(err){document.body.dataset.error=String(err&&err.stack||err);}
})();
"#;

/// The page: graph, legend, details panel, readings.
pub(crate) fn render(
    g: &GraphLists,
    servers: &[ServerVerdict],
    services: &[ServerVerdict],
    title: &str,
) -> String {
    // Nodes drawn: the busiest (then by id, the order met); edges drawn: the busiest between them.
    let mut by_flows: Vec<&Node> = g.nodes.iter().collect();
    by_flows
        .sort_by(|a, b| (b.flows_in + b.flows_out).cmp(&(a.flows_in + a.flows_out)).then(a.id.cmp(&b.id)));
    by_flows.truncate(MAX_DRAWN_NODES);
    let drawn: std::collections::BTreeSet<usize> = by_flows.iter().map(|n| n.id).collect();
    let nodes: Vec<&Node> = g.nodes.iter().filter(|n| drawn.contains(&n.id)).collect();
    let edges: Vec<&Edge> = g
        .edges
        .iter()
        .filter(|e| drawn.contains(&e.client_node) && drawn.contains(&e.server_node))
        .take(MAX_DRAWN_EDGES)
        .collect();
    let edge_flows: u64 = edges.iter().map(|e| e.flows).sum();
    let all_flows: u64 = g.edges.iter().map(|e| e.flows).sum::<u64>() + g.flows_not_listed;
    let lay = layout(&nodes, &edges);

    let mut budget = MAX_EXAMPLES_TOTAL;
    let node_pos: BTreeMap<usize, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let data = PageData {
        nodes: nodes
            .iter()
            .map(|n| NodeData {
                name: &n.name,
                kind: n.kind.as_str(),
                namespace: n.namespace.as_deref(),
                flows_in: n.flows_in,
                flows_out: n.flows_out,
            })
            .collect(),
        edges: edges
            .iter()
            .map(|e| {
                let k = e.examples.len().min(MAX_EXAMPLES_PER_EDGE).min(budget);
                budget -= k;
                EdgeData {
                    client: &e.client,
                    server: &e.server,
                    flows: e.flows,
                    legs: e.legs,
                    class: edge_class(e),
                    verdicts: &e.verdicts,
                    first_ts: e.first_ts.as_deref(),
                    last_ts: e.last_ts.as_deref(),
                    reasons: &e.reasons,
                    examples: &e.examples[..k],
                    examples_not_embedded: usize::try_from(e.flows).unwrap_or(usize::MAX).saturating_sub(k),
                }
            })
            .collect(),
    };

    let mut h = String::with_capacity(64 * 1024);
    let t = esc(title);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{t}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{t}</h1>\n"
    );
    let _ = writeln!(
        h,
        "<p class=\"note\">{} nodes, {} edges, {} flows (legs inside a pod included). Click an edge for its flows, a node for its edges.</p>",
        g.nodes.len(),
        g.edges.len(),
        all_flows
    );
    h.push_str("<div class=\"legend\">");
    for (c, col, words) in CLASSES {
        let _ = write!(
            h,
            "<span data-class=\"{}\"><i style=\"background:{col}\"></i>{}</span>",
            c.as_str(),
            esc(words)
        );
    }
    let _ = write!(
        h,
        "<span data-class=\"legs\"><i style=\"background:{LEG_COLOUR}\"></i>loopback legs inside a pod (plaintext by design)</span>"
    );
    h.push_str("</div>\n");
    if nodes.len() < g.nodes.len() || edges.len() < g.edges.len() || g.flows_not_listed > 0 {
        let _ = writeln!(
            h,
            "<p class=\"note\" id=\"not-drawn\">Not drawn: {} nodes, {} edges ({} flows); drawn: the busiest {} nodes and {} edges.</p>",
            g.nodes.len() - nodes.len(),
            g.edges.len() - edges.len(),
            all_flows - edge_flows,
            nodes.len(),
            edges.len()
        );
    }

    // The graph.
    let _ = writeln!(
        h,
        "<div class=\"wrap\"><div class=\"graph\"><svg id=\"graph\" width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {:.0} {:.0}\">",
        lay.width, lay.height, lay.width, lay.height
    );
    for b in &lay.boxes {
        let _ = writeln!(
            h,
            "<g class=\"ns\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"6\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            b.x,
            b.y,
            NODE_W + 16.0,
            b.h,
            b.x + 6.0,
            b.y + 14.0,
            esc(&label(&b.name))
        );
    }
    let max_flows = edges.iter().map(|e| e.flows).max().unwrap_or(1).max(1) as f64;
    for (i, e) in edges.iter().enumerate() {
        let (Some(a), Some(b)) = (lay.places.get(&e.client_node), lay.places.get(&e.server_node)) else {
            continue;
        };
        let (x1, y1) = (a.x + NODE_W, a.y + NODE_H / 2.0);
        let (x2, y2, path) = if b.col > a.col {
            let (x2, y2) = (b.x, b.y + NODE_H / 2.0);
            let mx = (x1 + x2) / 2.0;
            (x2, y2, format!("M{x1:.1},{y1:.1} C{mx:.1},{y1:.1} {mx:.1},{y2:.1} {x2:.1},{y2:.1}"))
        } else {
            // Same column (both client and server): a loop out to the right.
            let (x2, y2) = (b.x + NODE_W, b.y + NODE_H / 2.0);
            let bulge = 60.0 + (y1 - y2).abs().min(400.0) / 4.0;
            (
                x2 + bulge / 2.0,
                y2,
                format!(
                    "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                    x1 + bulge,
                    x2 + bulge
                ),
            )
        };
        let class = edge_class(e);
        let col = if class == "legs" { LEG_COLOUR } else { colour(e.dominant) };
        let width = 1.5 + 4.5 * ((e.flows as f64).ln_1p() / max_flows.ln_1p());
        let v = &e.verdicts;
        let counts: String = CLASSES
            .iter()
            .filter(|(c, _, _)| v.get(*c) > 0)
            .map(|(c, _, _)| format!("{}:{}", c.as_str(), v.get(*c)))
            .collect::<Vec<_>>()
            .join(" ");
        let tip = format!(
            "{} → {}: {} flows ({}{}legs {})",
            e.client,
            e.server,
            e.flows,
            counts,
            if counts.is_empty() { "" } else { ", " },
            e.legs
        );
        // The count sits near the server end, where edges fan in less than at the clients.
        let (lx, ly) =
            if b.col > a.col { (x1 + (x2 - x1) * 0.72, y1 + (y2 - y1) * 0.85) } else { (x2, y2 - 4.0) };
        let _ = writeln!(
            h,
            "<g class=\"edge {class}\" id=\"edge-{i}\" data-index=\"{i}\" data-client=\"{}\" data-server=\"{}\" data-class=\"{class}\" data-flows=\"{}\" data-legs=\"{}\" data-verdicts=\"{}\"><title>{}</title><path d=\"{path}\" stroke=\"{col}\" stroke-width=\"{width:.1}\"/><text x=\"{lx:.1}\" y=\"{ly:.1}\">{}</text></g>",
            esc(&e.client),
            esc(&e.server),
            e.flows,
            e.legs,
            esc(&counts),
            esc(&tip),
            e.flows
        );
    }
    for n in &nodes {
        let Some(p) = lay.places.get(&n.id) else { continue };
        let i = node_pos[&n.id];
        let _ = writeln!(
            h,
            "<g class=\"node {kind}\" id=\"node-{i}\" data-index=\"{i}\" data-name=\"{}\" data-kind=\"{kind}\" data-namespace=\"{}\" data-flows-in=\"{}\" data-flows-out=\"{}\"><title>{}</title><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"4\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
            esc(&n.name),
            esc(n.namespace.as_deref().unwrap_or("")),
            n.flows_in,
            n.flows_out,
            esc(&format!("{} ({}): {} flows sent, {} received", n.name, n.kind.as_str(), n.flows_out, n.flows_in)),
            p.x,
            p.y,
            p.x + 6.0,
            p.y + 16.0,
            esc(&label(&n.name)),
            kind = n.kind.as_str(),
        );
    }
    h.push_str(
        "</svg></div>\n<div id=\"details\"><p class=\"note\">Click an edge or a node.</p></div></div>\n",
    );

    // Readings.
    for (id, heading, list) in
        [("servers", "Per server", servers), ("services", "Per Istio service", services)]
    {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(h, "<h2>{heading}</h2>\n<table id=\"{id}\">");
        h.push_str("<tr><th>name</th><th>service</th><th>leg</th><th>flows</th><th>mTLS</th><th>of which inferred</th><th>TLS no client cert</th><th>TLS unverified</th><th>TLS failed</th><th>plaintext</th><th>plaintext refused</th><th>other</th><th>no data</th><th>legs</th><th>reading</th><th>policy</th></tr>\n");
        for s in list.iter().take(MAX_READING_ROWS) {
            let _ = write!(
                h,
                "<tr data-name=\"{}\"><td>{}</td><td>{}</td><td>{}</td>",
                esc(&s.name),
                esc(&s.name),
                esc(s.service.as_deref().unwrap_or("-")),
                s.leg.as_str()
            );
            for n in [
                s.flows,
                s.mtls,
                s.mtls_inferred,
                s.tls_no_client_cert,
                s.tls_unverified,
                s.tls_failed,
                s.plaintext,
                s.plaintext_refused,
                s.other,
                s.no_data,
                s.legs,
            ] {
                let _ = write!(h, "<td class=\"n\">{n}</td>");
            }
            let policy = s.policy.as_ref().map_or("-", |p| p.text.as_str());
            let _ = writeln!(h, "<td>{}</td><td>{}</td></tr>", esc(&s.reading), esc(policy));
        }
        h.push_str("</table>\n");
        if list.len() > MAX_READING_ROWS {
            let _ = writeln!(h, "<p class=\"note\">{} more not listed.</p>", list.len() - MAX_READING_ROWS);
        }
    }
    let _ = write!(
        h,
        "<script type=\"application/json\" id=\"tlspeek-data\">{}</script>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        script_json(&data)
    );
    h
}

/// Writes the page to `path` (`title` heads it: the captures or JSON Lines files read).
pub(crate) fn write_html(
    path: &Path,
    graph: &GraphLists,
    servers: &[ServerVerdict],
    services: &[ServerVerdict],
    title: &str,
) -> io::Result<()> {
    std::fs::write(path, render(graph, servers, services, title))
}

/// The page's title for these inputs.
pub(crate) fn title_of(files: &[String]) -> String {
    let mut t = String::from("tlspeek mesh graph");
    if !files.is_empty() {
        t.push_str(": ");
        let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
        t.push_str(&shown.join(", "));
        if files.len() > 5 {
            let _ = write!(t, " and {} more", files.len() - 5);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::tls::MtlsVerdict;
    use crate::mesh::graph::{Flow, Graph};

    fn graph() -> GraphLists {
        let mut g = Graph::default();
        let f = Flow {
            source: "a<b>.pcap".into(),
            client: Some("10.0.0.1:4000".parse().unwrap()),
            server: Some("10.0.0.2:443".parse().unwrap()),
            mtls_reason: Some("</script><script>alert(1)</script>\u{2028}".into()),
            bytes: (1, 1),
            ..Default::default()
        };
        g.add(&f);
        let mut f2 = f.clone();
        f2.client_identity =
            Some("spiffe://cluster.local/ns/default/sa/a-very-long-service-account-name-here".into());
        f2.mtls_reason = Some("client certificate seen".into());
        let _ = MtlsVerdict::Yes;
        g.add(&f2);
        g.finish()
    }

    #[test]
    fn escapes_and_is_deterministic() {
        let g = graph();
        let a = render(&g, &[], &[], "t <x>");
        let b = render(&graph(), &[], &[], "t <x>");
        assert_eq!(a, b);
        assert!(!a.contains("<script>alert"));
        assert!(!a.contains('\u{2028}'));
        assert!(a.contains("<title>t &lt;x&gt;</title>"));
        assert!(a.contains("\\u003c/script\\u003e"));
        assert_eq!(a.matches("<script").count(), 2);
        assert!(!a.contains("https://") && !a.contains(" src="));
        assert_eq!(a.matches("<g class=\"edge ").count(), 2);
        assert_eq!(a.matches("<g class=\"node ").count(), 3);
    }

    /// 200 workloads in 10 namespaces calling 40 services: every node and edge drawn, grouped
    /// by namespace (one box per namespace and column), no two nodes overlapping.
    #[test]
    fn two_hundred_nodes_are_all_drawn_in_namespace_boxes() {
        let mut g = Graph::default();
        for k in 0..200u32 {
            let ns = format!("team{}", k % 10);
            let svc = k % 40;
            let f = Flow {
                id: u64::from(k),
                source: "big.pcap".into(),
                client: Some(format!("10.1.{}.{}:40000", k / 250, k % 250).parse().unwrap()),
                server: Some(format!("10.2.0.{svc}:9080").parse().unwrap()),
                client_identity: Some(format!("spiffe://cluster.local/ns/{ns}/sa/client-{k}")),
                sni: crate::classify::istio::parse_sni(&format!(
                    "outbound_.9080_._.svc{svc}.team{}.svc.cluster.local",
                    svc % 10
                )),
                mtls: Some(if k % 7 == 0 { MtlsVerdict::No } else { MtlsVerdict::Yes }),
                bytes: (100, 100),
                ..Default::default()
            };
            g.add(&f);
        }
        let g = g.finish();
        assert_eq!(g.nodes.len(), 240);
        let page = render(&g, &[], &[], "big");
        if let Ok(dir) = std::env::var("TLSPEEK_HTML_OUT") {
            std::fs::write(std::path::Path::new(&dir).join("big.html"), &page).unwrap();
        }
        assert_eq!(page.matches("<g class=\"node ").count(), 240);
        assert_eq!(page.matches("<g class=\"edge ").count(), 200);
        assert!(!page.contains("id=\"not-drawn\""));
        // Namespace boxes: 10 of clients, 10 of services.
        assert_eq!(page.matches("<g class=\"ns\">").count(), 20);
        // Node rectangles: (x, y) of each, none closer than a row in the same column.
        let mut spots: Vec<(i64, i64)> = page
            .match_indices("<rect x=\"")
            .filter(|(i, _)| page[..*i].ends_with("</title>"))
            .map(|(i, m)| {
                let rest = &page[i + m.len()..];
                let x: f64 = rest[..rest.find('"').unwrap()].parse().unwrap();
                let rest = &rest[rest.find("y=\"").unwrap() + 3..];
                let y: f64 = rest[..rest.find('"').unwrap()].parse().unwrap();
                (x as i64, y as i64)
            })
            .collect();
        assert_eq!(spots.len(), 240);
        spots.sort_unstable();
        for w in spots.windows(2) {
            assert!(w[0].0 != w[1].0 || w[1].1 - w[0].1 >= NODE_H as i64, "overlap {w:?}");
        }
    }

    #[test]
    fn labels_keep_both_ends() {
        let l = label("spiffe://cluster.local/ns/default/sa/a-very-long-service-account-name-here");
        assert_eq!(l.chars().count(), MAX_LABEL_CHARS);
        assert_eq!(l, "ns/default/sa/…ce-account-name-here");
        assert_eq!(label("spiffe://cluster.local/ns/default/sa/reviews"), "ns/default/sa/reviews");
        assert_eq!(label("short"), "short");
    }
}

//! Embeddable SVG world map of countries, generated from Natural Earth 110m data.
//!
//! Input is the TopoJSON `countries-110m.json` of the npm package `world-atlas@2.0.2`
//! (public domain Natural Earth 4.1.0 admin-0 boundaries) and Debian's
//! `/usr/share/iso-codes/json/iso_3166-1.json` for the ISO 3166-1 numeric to alpha-2 mapping.
//! Output is one `<svg>` element with one class-free, style-free
//! `<path data-country="XX" d="..."/>` per country, meant to be inlined into a page
//! that styles it with CSS and adds tooltips itself.
//!
//! Choices made here:
//!
//! * Projection: [Equal Earth](https://doi.org/10.1080/13658816.2018.1504949), scaled so that
//!   the whole globe is [`WIDTH`] units wide; the height follows from the data.
//! * Antarctica (`AQ`) is kept (about 1 kB of the output); [`EXCLUDED`] can drop it.
//! * Features without a numeric id are mapped by name (see [`BY_NAME`]): Kosovo is `XK`
//!   (user-assigned code in common use, not in iso-codes); "N. Cyprus" and "Somaliland" have no
//!   ISO code of their own and are merged into the country ISO 3166 places them in (`CY` and
//!   `SO`), with their shared inner border dissolved, so the map has no holes there.
//! * Simplification: Douglas-Peucker on each TopoJSON arc (shared borders are simplified once,
//!   so neighbours stay gap-free) with a tolerance of [`TOLERANCE`] output units, then rounding
//!   to whole output units. A closed arc (an island) keeps at least a triangle. Rings that
//!   still end up with fewer than 3 distinct points, or no area, vanish. With world-atlas 2.0.2
//!   no country vanishes (test `vanished_countries`); three rings do: the sliver of Vanua Levu
//!   (FJ) east of 180°, a zero-area sliver that North Korea (KP) has in the source data, and a
//!   thin Canadian Arctic island near 77.6°N 95°W that rounds to a line.
//! * Antimeridian: world-atlas 2 ships *stitched* (spherical) polygons, so Russia (Chukotka,
//!   Wrangel Island), Fiji (Vanua Levu) and Antarctica have rings that jump from +180° to -180°.
//!   Rings are cut at the antimeridian here, and rings that enclose a pole are closed along it.
//! * Paths use relative commands (`m`, `l`, `z`) only, with integer coordinates; output is
//!   deterministic (paths sorted by code, no hash-order iteration).

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

/// Width of the SVG `viewBox` in user units (the globe's full width at the equator, plus padding).
pub(crate) const WIDTH: u32 = 1000;

/// Douglas-Peucker tolerance in output units (a unit is 1/[`WIDTH`] of the map width).
pub(crate) const TOLERANCE: f64 = 0.6;

/// Countries (alpha-2 codes) that are not drawn; `&["AQ"]` would drop Antarctica and make the
/// map about 11% less tall and about 1 kB smaller.
pub(crate) const EXCLUDED: &[&str] = &[];

/// Codes for features that have no ISO 3166-1 numeric id, by their `properties.name`.
pub(crate) const BY_NAME: &[(&str, &str)] =
    &[("Kosovo", "XK"), ("N. Cyprus", "CY"), ("Somaliland", "SO")];

/// Debian's ISO 3166-1 table (package `iso-codes`).
pub(crate) const ISO_3166_PATH: &str = "/usr/share/iso-codes/json/iso_3166-1.json";

/// The map the agent embeds.
pub(crate) const MAP_FILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../tracer-user/web/world.svg");

/// `cargo xtask world-map`: regenerates [`MAP_FILE`] from the world-atlas package setup
/// fetched and Debian's iso-codes.
pub(crate) fn run(_ready: &crate::setup::Ready) -> Result<()> {
    let atlas = crate::setup::world_atlas_path();
    let topojson =
        std::fs::read_to_string(&atlas).with_context(|| format!("reading {}", atlas.display()))?;
    let iso = std::fs::read_to_string(ISO_3166_PATH)
        .with_context(|| format!("reading {ISO_3166_PATH} (Debian package iso-codes)"))?;
    let map = render(&topojson, &iso)?;
    std::fs::write(MAP_FILE, &map.svg).with_context(|| format!("writing {MAP_FILE}"))?;
    println!("world-map: {} countries, {} bytes: {MAP_FILE}", map.countries.len(), map.svg.len());
    Ok(())
}

/// Padding around the drawing inside the `viewBox`, in output units.
const PAD: f64 = 1.0;

/// A rendered world map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorldMap {
    /// The complete `<svg>` element, ready to be inlined into HTML.
    pub svg: String,
    /// Sorted ISO 3166-1 alpha-2 codes that have a `<path>` in [`WorldMap::svg`].
    pub countries: Vec<String>,
}

/// Renders the countries of a world-atlas TopoJSON file as an SVG world map.
///
/// `topojson` is the text of `countries-110m.json` (world-atlas 2), `iso_3166_json` the text of
/// iso-codes' `iso_3166-1.json`. Fails with a descriptive error on malformed JSON, a missing or
/// invalid `transform`, arc indices out of range, or features whose code cannot be determined.
pub(crate) fn render(topojson: &str, iso_3166_json: &str) -> Result<WorldMap> {
    let numeric_to_alpha2 = parse_iso(iso_3166_json)?;
    let topo: Value = serde_json::from_str(topojson).context("TopoJSON is not valid JSON")?;
    let arcs = decode_arcs(&topo)?;
    let features = parse_countries(&topo, arcs.quantized.len())?;

    // Group rings by country code; the BTreeMap gives the sorted, deterministic order.
    let mut by_code: BTreeMap<String, Vec<Vec<Vec<i64>>>> = BTreeMap::new();
    for feature in features {
        let code = match &feature.id {
            Some(id) => numeric_to_alpha2.get(id).cloned().with_context(|| {
                format!("feature {:?} has numeric id {id} unknown to iso-codes", feature.name)
            })?,
            None => BY_NAME
                .iter()
                .find(|(name, _)| *name == feature.name)
                .map(|(_, code)| (*code).to_string())
                .with_context(|| {
                    format!("feature {:?} has no id and no known code by name", feature.name)
                })?,
        };
        if EXCLUDED.contains(&code.as_str()) {
            continue;
        }
        by_code.entry(code).or_default().push(feature.rings);
    }

    let simplified = simplify_arcs(&arcs);

    // Project everything first (the y extent decides the height), round afterwards.
    let mut projected: Vec<(String, Vec<Vec<[f64; 2]>>)> = Vec::new();
    for (code, group) in by_code {
        let rings = if group.len() > 1 {
            dissolve(group.concat(), &arcs.quantized)
        } else {
            group.concat()
        };
        let mut out = Vec::new();
        for ring in &rings {
            let lonlat = assemble_ring(ring, &simplified);
            for piece in cut_antimeridian(&lonlat) {
                out.push(piece.iter().map(|p| equal_earth(p[0], p[1])).collect());
            }
        }
        projected.push((code, out));
    }

    let (half_width, scale) = (equal_earth(180.0, 0.0)[0], output_scale());
    let (mut y_min, mut y_max) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in projected.iter().flat_map(|(_, rings)| rings.iter().flatten()) {
        y_min = y_min.min(p[1]);
        y_max = y_max.max(p[1]);
    }
    ensure!(y_min <= y_max, "TopoJSON contains no drawable country");
    let height = ((y_max - y_min) * scale + 2.0 * PAD).ceil();

    let mut svg = String::new();
    write!(svg, r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}">"#)?;
    svg.push('\n');
    let mut countries = Vec::new();
    for (code, rings) in projected {
        let rounded: Vec<Vec<[i64; 2]>> = rings
            .iter()
            .filter_map(|ring| {
                let pts = ring
                    .iter()
                    .map(|p| {
                        [
                            round_to_i64((p[0] + half_width) * scale + PAD),
                            round_to_i64((y_max - p[1]) * scale + PAD),
                        ]
                    })
                    .collect::<Vec<_>>();
                clean_ring(pts)
            })
            .collect();
        if rounded.is_empty() {
            continue;
        }
        write!(svg, r#"<path data-country="{code}" d=""#)?;
        write_path(&mut svg, &rounded);
        svg.push_str("\"/>\n");
        countries.push(code);
    }
    svg.push_str("</svg>\n");
    Ok(WorldMap { svg, countries })
}

/// Parses iso-codes' `iso_3166-1.json` into a numeric ("156") to alpha-2 ("CN") map.
fn parse_iso(text: &str) -> Result<HashMap<String, String>> {
    let v: Value = serde_json::from_str(text).context("ISO 3166-1 file is not valid JSON")?;
    let entries = v
        .get("3166-1")
        .and_then(Value::as_array)
        .context("ISO 3166-1 file has no \"3166-1\" array")?;
    let mut map = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let field = |name: &str| {
            e.get(name)
                .and_then(Value::as_str)
                .with_context(|| format!("ISO 3166-1 entry {i} has no string {name:?}"))
        };
        map.insert(field("numeric")?.to_string(), field("alpha_2")?.to_string());
    }
    Ok(map)
}

/// Decoded TopoJSON arcs.
struct Arcs {
    /// Absolute quantized positions of each arc (exact, used to match arc endpoints).
    quantized: Vec<Vec<[i64; 2]>>,
    /// The transform: longitude = q[0] * scale[0] + translate[0], same for latitude.
    scale: [f64; 2],
    translate: [f64; 2],
}

impl Arcs {
    fn lonlat(&self, q: [i64; 2]) -> [f64; 2] {
        [
            q[0] as f64 * self.scale[0] + self.translate[0],
            q[1] as f64 * self.scale[1] + self.translate[1],
        ]
    }
}

fn number_pair(v: Option<&Value>, what: &str) -> Result<[f64; 2]> {
    let a = v
        .and_then(Value::as_array)
        .with_context(|| format!("TopoJSON {what} is missing or not an array"))?;
    match a.as_slice() {
        [x, y] => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) if x.is_finite() && y.is_finite() => Ok([x, y]),
            _ => bail!("TopoJSON {what} must hold two numbers"),
        },
        _ => bail!("TopoJSON {what} must hold two numbers"),
    }
}

/// Reads `transform` and decodes the delta-encoded, quantized `arcs`.
fn decode_arcs(topo: &Value) -> Result<Arcs> {
    let transform = topo
        .get("transform")
        .context("TopoJSON has no \"transform\" (only quantized topologies are supported)")?;
    let scale = number_pair(transform.get("scale"), "transform.scale")?;
    let translate = number_pair(transform.get("translate"), "transform.translate")?;
    let raw =
        topo.get("arcs").and_then(Value::as_array).context("TopoJSON has no \"arcs\" array")?;
    let mut quantized = Vec::with_capacity(raw.len());
    for (i, arc) in raw.iter().enumerate() {
        let positions =
            arc.as_array().with_context(|| format!("TopoJSON arc {i} is not an array"))?;
        ensure!(positions.len() >= 2, "TopoJSON arc {i} has fewer than 2 positions");
        let (mut x, mut y) = (0i64, 0i64);
        let mut pts = Vec::with_capacity(positions.len());
        for (j, p) in positions.iter().enumerate() {
            let d = p.as_array().map(Vec::as_slice);
            let Some([dx, dy, ..]) = d else {
                bail!("TopoJSON arc {i} position {j} is not a coordinate pair");
            };
            let (Some(dx), Some(dy)) = (dx.as_i64(), dy.as_i64()) else {
                bail!("TopoJSON arc {i} position {j} is not an integer pair (quantized)");
            };
            x = x.checked_add(dx).with_context(|| format!("TopoJSON arc {i} overflows"))?;
            y = y.checked_add(dy).with_context(|| format!("TopoJSON arc {i} overflows"))?;
            pts.push([x, y]);
        }
        quantized.push(pts);
    }
    let arcs = Arcs { quantized, scale, translate };
    for (i, arc) in arcs.quantized.iter().enumerate() {
        for (j, &q) in arc.iter().enumerate() {
            let [lon, lat] = arcs.lonlat(q);
            ensure!(
                (-180.000_001..=180.000_001).contains(&lon)
                    && (-90.000_001..=90.000_001).contains(&lat),
                "TopoJSON arc {i} position {j} is at ({lon}, {lat}), outside longitude/latitude \
                 range (the topology must be unprojected, in degrees)"
            );
        }
    }
    Ok(arcs)
}

/// One country feature: its numeric id (if any), name and rings (lists of arc references).
struct Feature {
    id: Option<String>,
    name: String,
    rings: Vec<Vec<i64>>,
}

fn parse_countries(topo: &Value, arc_count: usize) -> Result<Vec<Feature>> {
    let geometries = topo
        .pointer("/objects/countries/geometries")
        .and_then(Value::as_array)
        .context("TopoJSON has no objects.countries.geometries array")?;
    let mut features = Vec::new();
    for (i, g) in geometries.iter().enumerate() {
        let name = g
            .pointer("/properties/name")
            .and_then(Value::as_str)
            .map_or_else(|| format!("#{i}"), str::to_string);
        let id = match g.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(n) => Some(format!("{n:03}")),
                None => bail!("feature {name:?} has an invalid id {n}"),
            },
            Some(other) => bail!("feature {name:?} has an invalid id {other}"),
        };
        let ty = g.get("type").and_then(Value::as_str);
        let polygons: Vec<&Value> = match ty {
            Some("Polygon") => vec![g.get("arcs").context("Polygon without arcs")?],
            Some("MultiPolygon") => g
                .get("arcs")
                .and_then(Value::as_array)
                .with_context(|| format!("feature {name:?}: MultiPolygon arcs is not an array"))?
                .iter()
                .collect(),
            // Null geometries and non-areal types draw nothing.
            None | Some(_) => continue,
        };
        let mut rings = Vec::new();
        for polygon in polygons {
            let polygon = polygon
                .as_array()
                .with_context(|| format!("feature {name:?}: polygon is not an array of rings"))?;
            for ring in polygon {
                let refs = ring
                    .as_array()
                    .with_context(|| format!("feature {name:?}: ring is not an array"))?;
                let mut out = Vec::with_capacity(refs.len());
                for r in refs {
                    let r = r.as_i64().with_context(|| {
                        format!("feature {name:?}: arc index {r} is no integer")
                    })?;
                    let index = if r < 0 { !r } else { r };
                    ensure!(
                        usize::try_from(index).is_ok_and(|i| i < arc_count),
                        "feature {name:?}: arc index {r} out of range (topology has {arc_count} arcs)"
                    );
                    out.push(r);
                }
                if !out.is_empty() {
                    rings.push(out);
                }
            }
        }
        features.push(Feature { id, name, rings });
    }
    Ok(features)
}

/// The arc an arc reference points to (TopoJSON: `~i`, i.e. `!i`, is arc `i` reversed).
fn arc_index(r: i64) -> usize {
    // Indices were range-checked in `parse_countries`.
    usize::try_from(if r < 0 { !r } else { r }).unwrap_or(usize::MAX)
}

/// First and last quantized position of an arc reference, in the direction of use.
fn endpoints(r: i64, quantized: &[Vec<[i64; 2]>]) -> ([i64; 2], [i64; 2]) {
    let arc = &quantized[arc_index(r)];
    let (first, last) = (arc[0], arc[arc.len() - 1]);
    if r < 0 { (last, first) } else { (first, last) }
}

/// Merges the rings of several features of one country: arcs used in both directions are
/// inner borders and are dropped, the rest is stitched back into closed rings. Falls back to
/// the rings as given if they cannot be stitched.
fn dissolve(rings: Vec<Vec<i64>>, quantized: &[Vec<[i64; 2]>]) -> Vec<Vec<i64>> {
    let used: BTreeSet<i64> = rings.iter().flatten().copied().collect();
    let kept: Vec<i64> = rings.iter().flatten().copied().filter(|r| !used.contains(&!r)).collect();
    let mut by_start: HashMap<[i64; 2], Vec<usize>> = HashMap::new();
    for (i, &r) in kept.iter().enumerate() {
        by_start.entry(endpoints(r, quantized).0).or_default().push(i);
    }
    let mut done = vec![false; kept.len()];
    let mut out = Vec::new();
    for first in 0..kept.len() {
        if done[first] {
            continue;
        }
        done[first] = true;
        let start = endpoints(kept[first], quantized).0;
        let mut ring = vec![kept[first]];
        let mut end = endpoints(kept[first], quantized).1;
        while end != start {
            let next = by_start.get(&end).and_then(|c| c.iter().copied().find(|&i| !done[i]));
            let Some(next) = next else {
                return rings;
            };
            done[next] = true;
            ring.push(kept[next]);
            end = endpoints(kept[next], quantized).1;
        }
        out.push(ring);
    }
    out
}

/// Output units per Equal Earth unit: the globe's width at the equator fills the `viewBox`.
fn output_scale() -> f64 {
    (f64::from(WIDTH) - 2.0 * PAD) / (2.0 * equal_earth(180.0, 0.0)[0])
}

/// Simplifies every arc with Douglas-Peucker in (unwrapped) projected output units and returns
/// the kept positions in longitude/latitude. Arc endpoints are always kept.
fn simplify_arcs(arcs: &Arcs) -> Vec<Vec<[f64; 2]>> {
    let scale = output_scale();
    arcs.quantized
        .iter()
        .map(|arc| {
            let lonlat: Vec<[f64; 2]> = arc.iter().map(|&q| arcs.lonlat(q)).collect();
            let projected: Vec<[f64; 2]> = unwrap_longitudes(&lonlat)
                .iter()
                .map(|p| {
                    let [x, y] = equal_earth(p[0], p[1]);
                    [x * scale, y * scale]
                })
                .collect();
            let mut keep = douglas_peucker(&projected, TOLERANCE);
            keep_triangle(&projected, &mut keep);
            lonlat.into_iter().zip(keep).filter_map(|(p, k)| k.then_some(p)).collect()
        })
        .collect()
}

/// Marks the points to keep; the first and last are always kept.
fn douglas_peucker(pts: &[[f64; 2]], tolerance: f64) -> Vec<bool> {
    let mut keep = vec![false; pts.len()];
    if pts.is_empty() {
        return keep;
    }
    keep[0] = true;
    keep[pts.len() - 1] = true;
    let mut stack = vec![(0, pts.len() - 1)];
    while let Some((a, b)) = stack.pop() {
        let mut best = (0.0, 0);
        for i in a + 1..b {
            let d = segment_distance(pts[i], pts[a], pts[b]);
            if d > best.0 {
                best = (d, i);
            }
        }
        if best.0 > tolerance {
            keep[best.1] = true;
            stack.push((a, best.1));
            stack.push((best.1, b));
        }
    }
    keep
}

/// A closed arc (a whole island) that Douglas-Peucker reduced to a line keeps one more point,
/// the one farthest from that line, so that small islands stay triangles instead of vanishing.
fn keep_triangle(pts: &[[f64; 2]], keep: &mut [bool]) {
    let n = pts.len();
    if n < 4 || pts[0] != pts[n - 1] || keep.iter().filter(|&&k| k).count() >= 4 {
        return;
    }
    let Some(middle) = (1..n - 1).find(|&i| keep[i]) else {
        return;
    };
    let mut best = (0.0, 0);
    for (i, &p) in pts.iter().enumerate().take(n - 1).skip(1) {
        let d = segment_distance(p, pts[0], pts[middle]);
        if d > best.0 {
            best = (d, i);
        }
    }
    if best.1 != 0 {
        keep[best.1] = true;
    }
}

/// Distance from `p` to the segment `a`-`b` (to `a` if the segment is a point, as for a
/// closed arc).
fn segment_distance(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> f64 {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    (p[0] - a[0] - t * dx).hypot(p[1] - a[1] - t * dy)
}

/// Concatenates the (simplified) arcs of a ring into a closed list of lon/lat points.
fn assemble_ring(refs: &[i64], simplified: &[Vec<[f64; 2]>]) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = Vec::new();
    for &r in refs {
        let arc = &simplified[arc_index(r)];
        let skip = usize::from(!out.is_empty());
        if r < 0 {
            out.extend(arc.iter().rev().skip(skip));
        } else {
            out.extend(arc.iter().skip(skip));
        }
    }
    out
}

/// Makes longitudes continuous: each point is moved by a multiple of 360° to within 180° of
/// the previous one.
fn unwrap_longitudes(pts: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut out: Vec<[f64; 2]> = Vec::with_capacity(pts.len());
    for &[lon, lat] in pts {
        let mut lon = lon;
        if let Some(prev) = out.last() {
            lon -= 360.0 * ((lon - prev[0]) / 360.0).round();
        }
        out.push([lon, lat]);
    }
    out
}

/// Splits a closed lon/lat ring at the antimeridian into rings within [-180°, 180°]. A ring
/// that winds around a pole (Antarctica) is closed along the antimeridian and the pole.
fn cut_antimeridian(ring: &[[f64; 2]]) -> Vec<Vec<[f64; 2]>> {
    let n = ring.len();
    if n < 4 {
        return Vec::new();
    }
    let mut pts = unwrap_longitudes(ring);
    let offset = pts[n - 1][0] - pts[0][0];
    if offset.abs() > 180.0 {
        // Around a pole. Start right after a crossing segment so that the ring runs once from
        // one side of the map to the other, then close it via the pole.
        let open = &ring[..n - 1];
        let start = (0..open.len())
            .find(|&i| (open[i][0] - open[(i + open.len() - 1) % open.len()][0]).abs() > 180.0)
            .unwrap_or(0);
        let mut rotated: Vec<[f64; 2]> =
            open[start..].iter().chain(&open[..start]).copied().collect();
        rotated.push(rotated[0]);
        pts = unwrap_longitudes(&rotated);
        let (first, before, last) = (pts[0], pts[n - 2], pts[n - 1]);
        // The last segment crosses the antimeridian: find where, as an odd multiple of 180°
        // in unwrapped longitudes.
        let (lo, hi) = (before[0].min(last[0]), before[0].max(last[0]));
        let seam = (360.0 * ((lo - 180.0) / 360.0).ceil() + 180.0).min(hi);
        let cross_lat = if hi > lo {
            before[1] + (seam - before[0]) / (last[0] - before[0]) * (last[1] - before[1])
        } else {
            before[1]
        };
        let mean_lat = ring.iter().map(|p| p[1]).sum::<f64>() / n as f64;
        let pole = 90.0_f64.copysign(mean_lat);
        let winding = last[0] - first[0];
        pts.truncate(n - 1);
        pts.extend(densify([seam, cross_lat], [seam, pole]));
        pts.extend(densify([seam, pole], [seam - winding, pole]));
        pts.extend(densify([seam - winding, pole], [seam - winding, cross_lat]));
        pts.push([seam - winding, cross_lat]);
        pts.push(first);
    }
    let (min, max) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
    let mut out = Vec::new();
    let first_band = ((min + 180.0) / 360.0).floor() as i64;
    let last_band = ((max - 180.0) / 360.0).ceil() as i64;
    for band in first_band..=last_band {
        let shift = 360.0 * band as f64;
        let clipped = clip_x(&clip_x(&pts, shift - 180.0, true), shift + 180.0, false);
        if clipped.len() >= 3 {
            out.push(clipped.iter().map(|p| [p[0] - shift, p[1]]).collect());
        }
    }
    out
}

/// Points from `a` (exclusive) to `b` (exclusive) at most 10° apart.
fn densify(a: [f64; 2], b: [f64; 2]) -> Vec<[f64; 2]> {
    let span = (b[0] - a[0]).abs().max((b[1] - a[1]).abs());
    let steps = (span / 10.0).ceil().max(1.0) as usize;
    (0..steps)
        .map(|i| {
            let t = i as f64 / steps as f64;
            [a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])]
        })
        .collect()
}

/// Sutherland-Hodgman clipping of a closed ring against `x >= bound` (`keep_above`) or
/// `x <= bound`. The result is closed again (first point repeated at the end).
fn clip_x(ring: &[[f64; 2]], bound: f64, keep_above: bool) -> Vec<[f64; 2]> {
    let inside = |p: &[f64; 2]| {
        if keep_above { p[0] >= bound } else { p[0] <= bound }
    };
    let mut out = Vec::new();
    for w in ring.windows(2) {
        let (a, b) = (w[0], w[1]);
        match (inside(&a), inside(&b)) {
            (true, true) => out.push(b),
            (true, false) => out.push(crossing(a, b, bound)),
            (false, true) => {
                out.push(crossing(a, b, bound));
                out.push(b);
            }
            (false, false) => {}
        }
    }
    if let Some(&first) = out.first() {
        out.push(first);
    }
    out
}

fn crossing(a: [f64; 2], b: [f64; 2], x: f64) -> [f64; 2] {
    let t = (x - a[0]) / (b[0] - a[0]);
    [x, a[1] + t * (b[1] - a[1])]
}

/// The Equal Earth projection (Šavrič, Patterson, Jenny 2018) of degrees, in radians-based
/// units, y pointing north.
fn equal_earth(lon: f64, lat: f64) -> [f64; 2] {
    const A1: f64 = 1.340_264;
    const A2: f64 = -0.081_106;
    const A3: f64 = 0.000_893;
    const A4: f64 = 0.003_796;
    let m = 3.0_f64.sqrt() / 2.0;
    let theta = (m * lat.to_radians().sin()).asin();
    let t2 = theta * theta;
    let t6 = t2 * t2 * t2;
    let x = lon.to_radians() * theta.cos()
        / (m * (A1 + 3.0 * A2 * t2 + t6 * (7.0 * A3 + 9.0 * A4 * t2)));
    let y = theta * (A1 + A2 * t2 + t6 * (A3 + A4 * t2));
    [x, y]
}

fn round_to_i64(v: f64) -> i64 {
    v.round() as i64
}

/// Drops consecutive duplicates (and the closing point); `None` if fewer than 3 points or no
/// area remain.
fn clean_ring(pts: Vec<[i64; 2]>) -> Option<Vec<[i64; 2]>> {
    let mut out: Vec<[i64; 2]> = Vec::with_capacity(pts.len());
    for p in pts {
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    while out.len() > 1 && out.first() == out.last() {
        out.pop();
    }
    let twice_area: i64 = (0..out.len())
        .map(|i| {
            let (a, b) = (out[i], out[(i + 1) % out.len()]);
            a[0] * b[1] - b[0] * a[1]
        })
        .sum();
    (out.len() >= 3 && twice_area != 0).then_some(out)
}

/// Writes rings as relative path data: `m dx dy l dx dy ... z` per ring.
fn write_path(out: &mut String, rings: &[Vec<[i64; 2]>]) {
    // After `z` the current point is the start of the closed subpath.
    let mut current = [0i64, 0];
    for ring in rings {
        out.push('m');
        push_pair(out, ring[0], current, true);
        out.push('l');
        let mut first = true;
        for w in ring.windows(2) {
            push_pair(out, w[1], w[0], first);
            first = false;
        }
        out.push('z');
        current = ring[0];
    }
}

fn push_pair(out: &mut String, p: [i64; 2], from: [i64; 2], after_command: bool) {
    push_number(out, p[0] - from[0], after_command);
    push_number(out, p[1] - from[1], false);
}

fn push_number(out: &mut String, v: i64, after_command: bool) {
    if !after_command && v >= 0 {
        out.push(' ');
    }
    // Writing to a String cannot fail.
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topojson() -> String {
        let path = crate::setup::world_atlas_path();
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (cargo xtask setup fetches it)", path.display()))
    }

    /// The iso-codes file (Debian's `iso-codes`, which setup installs).
    fn iso() -> Option<String> {
        Some(std::fs::read_to_string(ISO_3166_PATH).expect("iso-codes (cargo xtask setup)"))
    }

    fn real_map() -> Option<WorldMap> {
        Some(render(&topojson(), &iso()?).expect("real data renders"))
    }

    #[test]
    fn the_embedded_map_is_what_the_data_gives() {
        let map = real_map().unwrap();
        let committed = std::fs::read_to_string(MAP_FILE).expect("the committed map");
        assert!(committed == map.svg, "{MAP_FILE} is stale: run `cargo xtask world-map`");
    }

    /// (code, d) of every path.
    fn paths(svg: &str) -> Vec<(String, String)> {
        svg.split("<path data-country=\"")
            .skip(1)
            .map(|rest| {
                let (code, rest) = rest.split_once("\" d=\"").expect("d attribute");
                let (d, _) = rest.split_once('"').expect("closing quote");
                (code.to_string(), d.to_string())
            })
            .collect()
    }

    /// Parses the path data written by `write_path` into absolute subpaths.
    fn subpaths(d: &str) -> Vec<Vec<[i64; 2]>> {
        let mut out: Vec<Vec<[i64; 2]>> = Vec::new();
        let mut current = [0i64, 0];
        let mut numbers = Vec::new();
        let mut command = ' ';
        let mut token = String::new();
        let flush = |token: &mut String, numbers: &mut Vec<i64>| {
            if !token.is_empty() {
                numbers.push(token.parse::<i64>().expect("integer"));
                token.clear();
            }
        };
        let mut apply = |command: char, numbers: &mut Vec<i64>, out: &mut Vec<Vec<[i64; 2]>>| {
            assert_eq!(numbers.len() % 2, 0, "odd number count in {d}");
            for pair in numbers.chunks(2) {
                let base = match command {
                    'm' => current,
                    'l' => *out.last().and_then(|r| r.last()).expect("l after m"),
                    other => panic!("unexpected command {other}"),
                };
                let p = [base[0] + pair[0], base[1] + pair[1]];
                if command == 'm' {
                    out.push(vec![p]);
                    current = p;
                } else {
                    out.last_mut().expect("subpath").push(p);
                }
            }
            numbers.clear();
        };
        for c in d.chars() {
            match c {
                'm' | 'l' | 'z' => {
                    flush(&mut token, &mut numbers);
                    if command != ' ' {
                        apply(command, &mut numbers, &mut out);
                    }
                    command = c;
                }
                '-' => {
                    flush(&mut token, &mut numbers);
                    token.push(c);
                }
                ' ' => flush(&mut token, &mut numbers),
                '0'..='9' => token.push(c),
                other => panic!("unexpected character {other:?} in path"),
            }
        }
        assert_eq!(command, 'z', "path must end with z");
        out
    }

    fn view_box(svg: &str) -> (i64, i64) {
        let rest = svg.split_once("viewBox=\"0 0 ").expect("viewBox").1;
        let (vb, _) = rest.split_once('"').expect("viewBox end");
        let (w, h) = vb.split_once(' ').expect("w h");
        (w.parse().expect("w"), h.parse().expect("h"))
    }

    #[test]
    fn codes_are_known_alpha2() {
        let Some(iso) = iso() else { return };
        let map = render(&topojson(), &iso).expect("renders");
        let known: BTreeSet<String> = parse_iso(&iso).expect("iso").into_values().collect();
        let in_svg: Vec<String> = paths(&map.svg).into_iter().map(|(c, _)| c).collect();
        assert_eq!(in_svg, map.countries, "countries lists exactly the paths, sorted");
        for code in &in_svg {
            assert!(code.len() == 2 && code.chars().all(|c| c.is_ascii_uppercase()), "{code}");
            assert!(known.contains(code) || code == "XK", "{code} not in iso-codes");
        }
        let sorted: BTreeSet<&String> = in_svg.iter().collect();
        assert_eq!(sorted.len(), in_svg.len(), "one path per code");
        for code in
            ["CN", "US", "RU", "DE", "NL", "BR", "AU", "IN", "JP", "ZA", "XK", "CY", "SO", "AQ"]
        {
            assert!(map.countries.iter().any(|c| c == code), "{code} missing");
        }
        eprintln!("{} countries", map.countries.len());
    }

    #[test]
    fn svg_shape_and_size() {
        let Some(map) = real_map() else { return };
        let svg = &map.svg;
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 "#));
        assert!(svg.ends_with("</svg>\n"));
        for forbidden in ["style", "class", "id=", "<title", "fill", "stroke"] {
            assert!(!svg.contains(forbidden), "SVG contains {forbidden}");
        }
        eprintln!("SVG is {} bytes", svg.len());
        assert!(svg.len() <= 80_000, "SVG is {} bytes", svg.len());
    }

    #[test]
    fn no_segment_spans_half_the_map() {
        let Some(map) = real_map() else { return };
        let (w, h) = view_box(&map.svg);
        for (code, d) in paths(&map.svg) {
            for ring in subpaths(&d) {
                assert!(ring.len() >= 3, "{code}: ring with {} points", ring.len());
                for (i, p) in ring.iter().enumerate() {
                    assert!((0..=w).contains(&p[0]) && (0..=h).contains(&p[1]), "{code}: {p:?}");
                    let q = ring[(i + 1) % ring.len()];
                    assert!((p[0] - q[0]).abs() <= w / 2, "{code}: segment {p:?} -> {q:?}");
                }
            }
        }
    }

    #[test]
    fn russia_is_cut_at_the_antimeridian() {
        let Some(map) = real_map() else { return };
        let (w, _) = view_box(&map.svg);
        let (_, d) = paths(&map.svg).into_iter().find(|(c, _)| c == "RU").expect("RU present");
        // Chukotka east of 180° is drawn at the left edge, the rest of Russia on the right.
        let xs: Vec<i64> = subpaths(&d).into_iter().flatten().map(|p| p[0]).collect();
        let (min, max) = (xs.iter().min().expect("x"), xs.iter().max().expect("x"));
        assert!(*min < w / 4 && *max > w * 3 / 4, "RU: x from {min} to {max}");
    }

    #[test]
    fn deterministic() {
        let Some(iso) = iso() else { return };
        let a = render(&topojson(), &iso).expect("renders");
        let b = render(&topojson(), &iso).expect("renders");
        assert_eq!(a, b);
    }

    /// Countries of the input that are drawn as nothing after simplification.
    #[test]
    fn vanished_countries() {
        let Some(iso) = iso() else { return };
        let map = render(&topojson(), &iso).expect("renders");
        let numeric = parse_iso(&iso).expect("iso");
        let topo: Value = serde_json::from_str(&topojson()).expect("json");
        let arcs = decode_arcs(&topo).expect("arcs");
        let mut input: BTreeSet<String> = BTreeSet::new();
        for f in parse_countries(&topo, arcs.quantized.len()).expect("features") {
            let code = match f.id {
                Some(id) => numeric[&id].clone(),
                None => BY_NAME.iter().find(|(n, _)| *n == f.name).expect("known").1.to_string(),
            };
            input.insert(code);
        }
        let drawn: BTreeSet<String> = map.countries.iter().cloned().collect();
        let vanished: Vec<&String> =
            input.difference(&drawn).filter(|c| !EXCLUDED.contains(&c.as_str())).collect();
        assert!(vanished.is_empty(), "vanished: {vanished:?}");
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let iso = r#"{"3166-1":[{"alpha_2":"CN","numeric":"156","name":"China"}]}"#;
        let ok_topo = r#"{"type":"Topology","transform":{"scale":[1,1],"translate":[0,0]},
            "arcs":[[[0,0],[10,0],[0,10],[-10,-10]]],
            "objects":{"countries":{"type":"GeometryCollection","geometries":[
                {"type":"Polygon","arcs":[[0]],"id":"156","properties":{"name":"China"}}]}}}"#;
        let map = render(ok_topo, iso).expect("minimal topology renders");
        assert_eq!(map.countries, ["CN"]);

        let edit = |from: &str, to: &str| ok_topo.replace(from, to);
        let cases = [
            ("not json".to_string(), iso, "not valid JSON"),
            (ok_topo.to_string(), "[", "ISO 3166-1 file is not valid JSON"),
            (ok_topo.to_string(), "{}", "no \"3166-1\" array"),
            (r#"{"arcs":[],"objects":{}}"#.to_string(), iso, "no \"transform\""),
            (edit("\"scale\":[1,1]", "\"scale\":[1]"), iso, "transform.scale"),
            (edit("\"arcs\":[[0]]", "\"arcs\":[[1]]"), iso, "arc index 1 out of range"),
            (edit("\"arcs\":[[0]]", "\"arcs\":[[-2]]"), iso, "arc index -2 out of range"),
            (edit("[10,0]", "[1.5,0]"), iso, "not an integer pair"),
            (edit("[0,0],[10,0]", "[0,0],[1000,0]"), iso, "outside longitude/latitude"),
            (edit("\"scale\":[1,1]", "\"scale\":[1e300,1]"), iso, "outside longitude/latitude"),
            (edit("[[0,0],[10,0],[0,10],[-10,-10]]", "[[0,0]]"), iso, "fewer than 2 positions"),
            (
                edit("\"Polygon\",\"arcs\":[[0]]", "\"Polygon\",\"arcs\":[0]"),
                iso,
                "ring is not an array",
            ),
            (
                edit("\"geometries\":[", "\"geometries\":[{\"type\":\"Polygon\",\"arcs\":[[0]]},"),
                iso,
                "\"#0\" has no id",
            ),
            (edit("\"156\"", "\"999\""), iso, "unknown to iso-codes"),
            (edit("\"id\":\"156\",", ""), iso, "no id and no known code"),
            (edit("countries", "land"), iso, "objects.countries.geometries"),
        ];
        for (topo, iso, expected) in cases {
            let err = render(&topo, iso).expect_err(expected);
            let message = format!("{err:#}");
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
    }

    #[test]
    fn antimeridian_cut_splits_a_crossing_ring() {
        let ring = [[170.0, 0.0], [-170.0, 0.0], [-170.0, 10.0], [170.0, 10.0], [170.0, 0.0]];
        let pieces = cut_antimeridian(&ring);
        assert_eq!(pieces.len(), 2);
        for piece in &pieces {
            let xs: Vec<f64> = piece.iter().map(|p| p[0]).collect();
            let span = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                - xs.iter().copied().fold(f64::INFINITY, f64::min);
            assert!((span - 10.0).abs() < 1e-9, "{piece:?}");
        }
        // A ring around the south pole becomes one ring closed along the bottom.
        let polar: Vec<[f64; 2]> = (0..=36)
            .map(|i| [(f64::from(i) * 10.0 + 180.0).rem_euclid(360.0) - 180.0, -70.0])
            .collect();
        let pieces = cut_antimeridian(&polar);
        assert_eq!(pieces.len(), 1, "{pieces:?}");
        assert!(pieces[0].iter().any(|p| p[1] == -90.0));
        assert!(pieces[0].iter().all(|p| (-180.0..=180.0).contains(&p[0])));
    }
}
